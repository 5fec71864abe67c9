"""How a run ranks cold items: protocol-B test targets whose item the training side barely saw.

An item with at most ``cold_max`` training interactions has an ID embedding that learned
little, so it is ranked mostly by its text vector: the ranks of such targets tell whether
text features carry items that behaviour does not. Scored from a run's kept test
predictions, so any finished run can be compared (with text against without, say).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..data.tables import Dataset
from ..train.protocol_data import prepare_configured
from .evaluate import next_item_side_ranks
from .prediction_store import load_predictions
from .stored import Splits

COLD_MAX = 5  # a test item with at most this many training interactions is cold


def ranks_and_train_counts(
    folder: Path, cfg: RunConfig, ds: Dataset, seed: int, splits: Splits | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """For seed ``seed``'s protocol-B test targets, from run ``folder``: each target's 1-based
    rank (history excluded) and its item's number of interactions on the split's training
    side. ``splits``, when given, caches the splits for other runs on the same data."""
    splits = {} if splits is None else splits
    if ("B", seed) not in splits:
        splits["B", seed] = prepare_configured(ds, "B", seed, cfg, profile=False)
    data = splits["B", seed]
    ranks = next_item_side_ranks(data.test, load_predictions(folder, "B", seed, "test"))
    if ranks is None:
        raise ValueError(f"{folder}: the protocol-B test predictions of seed {seed} hold no next-item scores")
    train_counts = np.bincount(np.concatenate([np.asarray(x) for x in data.train.items]), minlength=ds.n_items)
    return np.asarray(ranks), train_counts[data.test.next_items]


def cold_target_ranks(folder: Path, cfg: RunConfig, ds: Dataset, seed: int, cold_max: int = COLD_MAX) -> np.ndarray:
    """1-based ranks (history excluded) of seed ``seed``'s protocol-B test targets whose item has
    at most ``cold_max`` interactions on that split's training side, from run ``folder``."""
    ranks, counts = ranks_and_train_counts(folder, cfg, ds, seed)
    return ranks[counts <= cold_max]
