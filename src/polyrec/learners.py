"""What `polyrec run --model NAME` trains: polyrec's own model or a classical baseline.

Every learner fits on one protocol's training side, predicts an evaluation side in the
shared format of ``eval.evaluate`` (so one metric code scores them all, and an ensemble
can combine them), and saves itself into a run folder that ``polyrec.load`` reads back.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Protocol

import numpy as np

from .config import RunConfig
from .eval.evaluate import SidePredictions
from .train.protocol_data import EvalSide, ProtocolData


@dataclass
class FitInfo:
    train_seconds: float
    best_epoch: int | None = None
    seconds_to_best: float | None = None  # until the best validation score (iterative learners)
    curves: dict = field(default_factory=dict)  # task → {"train": [...], "valid": [...]} per epoch
    pretrain_seconds: float | None = None  # self-supervised pretraining before fit (polyrec, when on)
    metrics: dict[str, float] = field(default_factory=dict)  # more figures for metrics.json (e.g. distill.A.clusters)


class Learner(Protocol):
    name: str
    tasks: list[str]  # the tasks it learned (those of the run it can do)

    def fit(self, data: ProtocolData) -> FitInfo: ...

    def predict(self, data: ProtocolData, side: EvalSide) -> SidePredictions: ...

    def before_test(self, data: ProtocolData) -> dict[str, float]:
        """Called once the validation side is predicted, before the test side: a learner may
        refit what validation has tuned on everything a test input holds (polyrec: its item
        prior). Figures for metrics.json; by default nothing to refit."""
        return {}

    def save(self, folder: Path) -> None: ...

    def cost(self, data: ProtocolData) -> dict[str, float]: ...


@dataclass
class LearnerContext:
    """What a learner may use besides the split: the run's config, catalogue and features."""

    cfg: RunConfig
    tasks: list[str]
    n_items: int
    text_vectors: object | None
    rating_range: tuple[float, float] | None
    seed: int
    progress: bool = True
    item_texts: list[str] | None = None  # each item's text (language-model adaptation reads it)


def users_per_second(score_batch: Callable[[np.ndarray], object], users: np.ndarray, batch_users: int = 256) -> float:
    """Users scored per second against the whole catalogue (batch inference, this machine)."""
    start = time.perf_counter()
    for s in range(0, len(users), batch_users):
        score_batch(users[s : s + batch_users])
    return len(users) / max(time.perf_counter() - start, 1e-9)


def learner_names() -> list[str]:
    from .baselines.learners import BASELINE_LEARNERS

    return ["polyrec", *BASELINE_LEARNERS]


def make_learner(name: str, ctx: LearnerContext) -> Learner:
    from .baselines.learners import BASELINE_LEARNERS
    from .distill.learner import DistilledLearner
    from .train.learner import PolyRecLearner

    if name == "polyrec" and ctx.cfg.distill.teacher:
        return DistilledLearner(ctx)
    factories: dict[str, Callable[[LearnerContext], Learner]] = {"polyrec": PolyRecLearner, **BASELINE_LEARNERS}
    if name not in factories:
        raise ValueError(f"unknown model '{name}'; models: {', '.join(factories)}")
    return factories[name](ctx)
