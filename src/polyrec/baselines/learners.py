"""Classical baselines as learners: the same fit / predict / save as polyrec's model.

``polyrec run --model NAME`` trains one of these through polyrec's data, splits and
metric code, so its numbers sit in the same table as polyrec's and its predictions can
join an ensemble. Each does the tasks it can of those the run asks for:

- ``bias``: user + item biases — rating (and its prediction as a ctr score);
- ``svd``, ``svdpp``: matrix factorisation (scikit-surprise defaults) — rating, ctr score;
- ``bpr``: Bayesian personalised ranking (``implicit``) — next item;
- ``popularity``: training counts — ctr score, next item;
- ``logreg``: logistic regression on the user × item rating matrix — profile.

A ctr *score* is not a probability: AUC is reported, log loss is not.
"""

from __future__ import annotations

import pickle
import time
from pathlib import Path

import numpy as np
import yaml

from ..config import PROTOCOL_TASKS
from ..eval.baseline_runs import rating_matrix
from ..learners import FitInfo, Learner, LearnerContext, users_per_second
from ..run_loader import LEARNER_FILE
from ..train.protocol_data import EvalSide, ProtocolData
from .factors import FactorModel, fit_bias, fit_bpr, fit_popularity, fit_surprise
from .profile import RatingMatrixLogReg

FACTORS, LOGREG = "factors.npz", "logreg.pkl"


class FactorLearner(Learner):
    """A :class:`FactorModel` fitted by ``_fit``; pair tasks score pairs, next item the catalogue."""

    name = "factors"
    can = ("rating", "ctr", "next_item")

    def __init__(self, ctx: LearnerContext):
        self.ctx = ctx
        self.tasks = [t for t in ctx.tasks if t in self.can]
        self.model: FactorModel | None = None

    def _fit(self, data: ProtocolData, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> FactorModel:
        raise NotImplementedError

    def fit(self, data: ProtocolData) -> FitInfo:
        start = time.perf_counter()
        self.model = self._fit(data, *data.train.flat())
        return FitInfo(time.perf_counter() - start)

    def predict(self, data: ProtocolData, side: EvalSide) -> dict:
        out: dict[str, np.ndarray] = {}
        own = [t for t in self.tasks if t in PROTOCOL_TASKS[data.protocol]]
        if side.pairs is not None and len(side.pairs):
            scores = self.model.predict(side.pairs.users, side.pairs.items)
            out.update({t: scores for t in ("rating", "ctr") if t in own})
        if "next_item" in own and side.next_users is not None and len(side.next_users):
            out["next_item"] = self.model.score_users(side.next_users)
        return out

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.model.save(folder / FACTORS)
        (folder / LEARNER_FILE).write_text(yaml.safe_dump({"model": self.name, "tasks": self.tasks}))

    def cost(self, data: ProtocolData) -> dict[str, float]:
        m = self.model
        n_params = sum(a.size for a in (m.user_bias, m.item_bias, m.user_factors, m.item_factors))
        users = np.flatnonzero(data.test.history.lengths() > 0)
        return {"model.trainable_params": float(n_params), "model.users_per_s": users_per_second(m.score_users, users)}


def _rated(users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> tuple[np.ndarray, ...]:
    keep = ~np.isnan(ratings)
    return users[keep], items[keep], ratings[keep]


class BiasLearner(FactorLearner):
    name = "bias"
    can = ("rating", "ctr")

    def _fit(self, data, users, items, ratings):
        return fit_bias(*_rated(users, items, ratings), data.train.n_users, self.ctx.n_items)


class SVDLearner(FactorLearner):
    name = "svd"
    can = ("rating", "ctr")

    def _fit(self, data, users, items, ratings):
        if self.ctx.rating_range is None:
            raise ValueError(f"model '{self.name}' needs ratings; this data has none")
        return fit_surprise(self.name, *_rated(users, items, ratings), data.train.n_users, self.ctx.n_items,
                            self.ctx.rating_range, self.ctx.seed)


class SVDppLearner(SVDLearner):
    name = "svdpp"


class BPRLearner(FactorLearner):
    name = "bpr"
    can = ("next_item",)

    def _fit(self, data, users, items, ratings):
        return fit_bpr(users, items, data.train.n_users, self.ctx.n_items, self.ctx.seed, self.ctx.cfg.train.threads or 0)


class PopularityLearner(FactorLearner):
    name = "popularity"
    can = ("ctr", "next_item")

    def _fit(self, data, users, items, ratings):
        return fit_popularity(users, items, data.train.n_users, self.ctx.n_items)


class LogRegLearner(Learner):
    """One :class:`RatingMatrixLogReg` per attribute, its C chosen on validation users."""

    name = "logreg"

    def __init__(self, ctx: LearnerContext):
        self.ctx = ctx
        self.tasks = [t for t in ctx.tasks if t == "profile"]
        self.models: dict[str, RatingMatrixLogReg] = {}
        self.classes: dict[str, list[str]] = {}

    def fit(self, data: ProtocolData) -> FitInfo:
        start = time.perf_counter()
        us = data.user_split
        if "profile" not in self.tasks or us is None:
            return FitInfo(0.0)
        X = rating_matrix(data.train, self.ctx.n_items)
        for name, labels in data.profile_labels.items():
            # profile_labels hold training users' attributes only; validation users' come
            # from profile_true, as for polyrec's own model selection.
            y_tr, y_va = labels[us.train], data.profile_true[name][us.valid]
            keep_tr, keep_va = y_tr >= 0, y_va >= 0
            if np.unique(y_tr[keep_tr]).size < 2:
                continue  # one class among this fold's training users: nothing to learn, no prediction
            self.models[name] = RatingMatrixLogReg(n_classes=len(data.attribute_classes[name])).fit(
                X[us.train][keep_tr], y_tr[keep_tr], X[us.valid][keep_va], y_va[keep_va]
            )
            self.classes[name] = list(data.attribute_classes[name])
        return FitInfo(time.perf_counter() - start)

    def predict(self, data: ProtocolData, side: EvalSide) -> dict:
        if not self.models or data.protocol != "A" or side.profile_users is None or not len(side.profile_users):
            return {}
        X = rating_matrix(side.history, self.ctx.n_items)[side.profile_users]
        return {f"profile.{name}": m.predict_proba(X) for name, m in self.models.items()}

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        with open(folder / LOGREG, "wb") as f:  # scikit-learn's documented persistence
            pickle.dump({"models": self.models, "classes": self.classes}, f)
        (folder / LEARNER_FILE).write_text(yaml.safe_dump({"model": self.name, "tasks": self.tasks}))

    def cost(self, data: ProtocolData) -> dict[str, float]:
        n = sum(m.model_.coef_.size + m.model_.intercept_.size for m in self.models.values())
        return {"model.trainable_params": float(n)}


BASELINE_LEARNERS = {
    cls.name: cls for cls in (BiasLearner, SVDLearner, SVDppLearner, BPRLearner, PopularityLearner, LogRegLearner)
}
