"""Which multi-task configuration the study recommends, judged on validation data only.

Every configuration of `polyrec bench mtl` is an ordinary run folder that kept its validation
predictions (``predictions/<protocol>/seed<k>/valid.npz``). Scoring them with the metric code
that scores test gives each configuration's validation main metrics, mean ± std over seeds,
with no retraining. The rule mirrors the issue's bar on the validation side: the fewest tasks
worse than the single-task model by more than one std, then the most tasks better by more than
one std, then the best worst task: the largest smallest gain over the single-task model, in
stds. The tie-break looks at the task that gains least because a multi-task model is meant to
lose on no task (the seesaw), and in stds because the metrics move on different scales
(NDCG@10 by tens of percent where RMSE moves by tenths of one).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data.tables import Dataset
from ..eval.stored import Splits, stored_metrics
from ..pipeline import aggregate

# (task, metrics.json key, higher is better) of the tasks a study compares.
Column = tuple[str, str, bool]


def validation_metrics(folder: Path, ds: Dataset, splits: Splits) -> dict[str, float]:
    """A run folder's validation metrics, mean ± std over its seeds (``splits`` caches the
    split of each (protocol, seed), shared by every configuration of a study)."""
    cfg = RunConfig.load(folder / "config.yaml")
    return aggregate([stored_metrics(folder, cfg, ds, seed, "valid", splits) for seed in cfg.seeds])


def versus_single(multi: dict, single: dict, key: str, higher: bool) -> str:
    """▲ better than the single-task model by more than one std, ▼ worse by more than one,
    = within (std: the larger of the two, over seeds); "" without a std to judge by."""
    if key not in multi or key not in single or f"{key}.std" not in multi or f"{key}.std" not in single:
        return ""
    diff = (multi[key] - single[key]) * (1 if higher else -1)
    std = max(multi[f"{key}.std"], single[f"{key}.std"])
    return " ▲" if diff > std else " ▼" if diff < -std else " ="


@dataclass(frozen=True)
class Verdict:
    """One configuration against the single-task models on one side (validation or test)."""

    marks: tuple[str, ...]  # per column: " ▲", " ▼", " =" or "" (nothing to judge by)
    worst: float  # the smallest per-task gain over the single-task model, in stds (relative without one)

    @property
    def ups(self) -> int:
        return self.marks.count(" ▲")

    @property
    def downs(self) -> int:
        return self.marks.count(" ▼")


def gain(multi: dict, single: dict, key: str, higher: bool) -> float | None:
    """How much better ``multi`` is than ``single`` on ``key``: in stds (the larger of the two)
    with a std to judge by, else relative to the single-task value; None where either lacks it."""
    if key not in multi or not single.get(key):
        return None
    diff = (multi[key] - single[key]) * (1 if higher else -1)
    std = max(multi.get(f"{key}.std", 0.0), single.get(f"{key}.std", 0.0))
    return diff / std if std > 0 else diff / abs(single[key])


def verdict(multi: dict, single: dict[str, dict], columns: Sequence[Column]) -> Verdict:
    marks = tuple(versus_single(multi, single.get(t, {}), key, higher) for t, key, higher in columns)
    gains = [g for t, key, higher in columns if (g := gain(multi, single.get(t, {}), key, higher)) is not None]
    return Verdict(marks, min(gains) if gains else 0.0)


def ranking(verdicts: dict[str, Verdict]) -> list[str]:
    """Configurations, best first: fewest ▼, then most ▲, then the best worst task."""
    return sorted(verdicts, key=lambda name: (verdicts[name].downs, -verdicts[name].ups, -verdicts[name].worst))
