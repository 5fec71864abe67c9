"""A finished run's metrics scored again from the predictions it kept, without its model.

Every run keeps its validation and test predictions (prediction_store.py); scoring them with
``side_metrics`` gives any side's metrics after the fact — the validation side a study
chooses on, or the test side of a run made before seed records existed.
"""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from ..data.tables import Dataset
from ..train.protocol_data import ProtocolData, prepare_configured
from .evaluate import side_metrics
from .prediction_store import load_predictions

# The split of each (protocol, seed); valid for runs that share data, ctr threshold and rating levels.
Splits = dict[tuple[str, int], ProtocolData]


def stored_metrics(
    folder: Path, cfg: RunConfig, ds: Dataset, seed: int, side: str, splits: Splits | None = None
) -> dict[str, float]:
    """``"<protocol>.<task>.<metric>"`` of run ``folder`` (made with ``cfg`` on ``ds``) for
    ``seed`` on ``side`` ("valid" or "test"), over every protocol of the run. ``splits``, when
    given, caches the splits for other runs on the same data."""
    splits = {} if splits is None else splits
    metrics: dict[str, float] = {}
    for p in cfg.protocols:
        if (p, seed) not in splits:
            splits[p, seed] = prepare_configured(ds, p, seed, cfg, bool(ds.attributes))
        data = splits[p, seed]
        metrics.update(side_metrics(data, getattr(data, side), load_predictions(folder, p, seed, side), ds.rating_range))
    return metrics
