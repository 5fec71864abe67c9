"""One record per finished seed in a run folder (``progress/seed<k>.json``).

A run that stops part-way, or one asked again with more seeds, picks up where it was: a
seed whose record holds the same configuration (seeds and the speed-only settings aside) is read back — its
metrics, curves, cost and notes, its test predictions for the pooled profile metrics —
instead of being trained again. Long studies run in pieces this way, even side by side:
processes given different seeds of one configuration and one folder write disjoint files
(``seeds/<P>/seed<k>/``, ``predictions/<P>/seed<k>/``, ``progress/seed<k>.json``); a last
run over all the seeds then reads every record and writes the folder's report.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import pandas as pd

from .atomic import replace_atomically
from .config import RunConfig, with_legacy_values
from .data.tables import Dataset

PROGRESS_DIR = "progress"
BASELINE_PREFIX = "baseline."  # metrics.json keys of the simple baselines


def data_fingerprint(ds: Dataset) -> str:
    """A digest of the dataset's three tables: a record is never read back for other data
    under the same configuration (e.g. a `--data` folder whose files changed)."""
    digest = hashlib.sha1()
    for table in (ds.users, ds.items, ds.interactions):
        digest.update(pd.util.hash_pandas_object(table, index=False).to_numpy().tobytes())
        digest.update(",".join(map(str, table.columns)).encode())
    return digest.hexdigest()


def _question(cfg: RunConfig, ds: Dataset, baselines: bool) -> dict[str, Any]:
    """What a seed's record depends on: the configuration's results settings but the seed
    list, the data, and whether the simple baselines were measured beside it."""
    return _question_of(cfg, data_fingerprint(ds), baselines)


def _question_of(cfg: RunConfig, fingerprint: str, baselines: bool) -> dict[str, Any]:
    raw = cfg.what_results_depend_on()
    raw.pop("seeds")
    return {**raw, "baselines": baselines, "data_fingerprint": fingerprint}


def _saved_question(saved: dict[str, Any] | None) -> dict[str, Any] | None:
    """A record's question as asked today: settings added since it was saved take the value
    it was made with (their defaults, or their :data:`config.LEGACY_VALUES`); None if it no
    longer reads."""
    if not saved:
        return None
    # Left out of a question: the record's own keys, and a distill section without a teacher.
    raw = {k: v for k, v in saved.items() if k not in ("baselines", "data_fingerprint") and v is not None}
    try:
        cfg = RunConfig.from_dict(with_legacy_values({**raw, "seeds": [0]}))
    except (ValueError, TypeError):  # a setting since removed or renamed: retrain
        return None
    return _question_of(cfg, saved.get("data_fingerprint", ""), bool(saved.get("baselines")))


class SeedRecords:
    """The seed records of one run folder for one question (computed once: it hashes the data)."""

    def __init__(self, out: Path, cfg: RunConfig, ds: Dataset, baselines: bool):
        self.out = out
        self.question = _question(cfg, ds, baselines)

    def _path(self, seed: int) -> Path:
        return self.out / PROGRESS_DIR / f"seed{seed}.json"

    def save(self, seed: int, record: dict[str, Any]) -> None:
        """``record``: metrics, curves (per protocol), cost and notes."""
        path = self._path(seed)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = json.dumps({"config": self.question, **record})
        replace_atomically(path, lambda tmp: tmp.write_text(text))  # never half a record

    def load(self, seed: int) -> dict[str, Any] | None:
        """The seed's record, if it answers the same question; None otherwise (it is retrained)."""
        path = self._path(seed)
        if not path.is_file():
            return None
        record = json.loads(path.read_text())
        asked, question = _saved_question(record.get("config")), self.question
        if asked == question:
            return record
        if not question["baselines"] and asked == {**question, "baselines": True}:
            # Trained with the simple baselines measured beside it (`polyrec run`): the same
            # trainings, and a run without them (a bench) reads everything but their figures.
            metrics = {k: v for k, v in record["metrics"].items() if not k.startswith(BASELINE_PREFIX)}
            return {**record, "config": self.question, "metrics": metrics}
        return None
