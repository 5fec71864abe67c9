"""Metrics of one evaluation side, computed from a model's predictions for it.

Every model — polyrec's own, a baseline, an ensemble — hands its predictions for a side
as a :data:`SidePredictions` dict; the metrics come from here, so all of them are scored
by the same code:

- ``"rating"``, ``"ctr"``: one value per pair of ``side.pairs`` (protocol A); ``ctr`` is
  a probability or any engagement score (AUC only then);
- ``"profile.<attribute>"``: (len(side.profile_users), C) class probabilities (protocol A);
- ``"next_item"``: (len(side.next_users), I) scores over the catalogue (protocol B), or,
  where the catalogue is too large to keep them, ``"next_item.ranks"``: the target ranks.
"""

from __future__ import annotations

import numpy as np

from ..train.protocol_data import EvalSide, ProtocolData
from .metrics import auc, classification_metrics, logloss, mae, rmse
from .ranking import ranking_metrics, target_ranks

SidePredictions = dict[str, np.ndarray]
PROFILE = "profile."


def pair_metrics(
    prefix: str, ratings: np.ndarray, labels: np.ndarray, pred: dict[str, np.ndarray], rating_range: tuple[float, float] | None
) -> dict[str, float]:
    """rating RMSE/MAE (clipped to the rating range) and ctr AUC/logloss where both sides exist."""
    out: dict[str, float] = {}
    if "rating" in pred:
        known = ~np.isnan(ratings)
        if known.any():
            p = pred["rating"][known]
            if rating_range is not None:
                p = np.clip(p, *rating_range)
            out[f"{prefix}.rating.rmse"] = rmse(ratings[known], p)
            out[f"{prefix}.rating.mae"] = mae(ratings[known], p)
    if "ctr" in pred:
        known = ~np.isnan(labels)
        if known.any():
            out[f"{prefix}.ctr.auc"] = auc(labels[known], pred["ctr"][known])
            scores = pred["ctr"][known]
            if scores.min() >= 0.0 and scores.max() <= 1.0:  # a probability; scores have no logloss
                out[f"{prefix}.ctr.logloss"] = logloss(labels[known], scores)
    return out


def profile_metrics(prefix: str, data: ProtocolData, users: np.ndarray, proba: dict[str, np.ndarray]) -> dict[str, float]:
    out: dict[str, float] = {}
    for name, p in proba.items():
        y = data.profile_true[name][users]
        known = y >= 0
        if known.sum() == 0 or len(np.unique(y[known])) < 2:
            continue
        for metric, value in classification_metrics(y[known], p[known]).items():
            out[f"{prefix}.profile.{name}.{metric}"] = value
    return out


def profile_part(pred: SidePredictions) -> dict[str, np.ndarray]:
    """The per-attribute probabilities of a side's predictions, keyed by attribute."""
    return {k[len(PROFILE) :]: v for k, v in pred.items() if k.startswith(PROFILE)}


def next_item_side_ranks(side: EvalSide, pred: SidePredictions) -> np.ndarray | None:
    """Target ranks of the side's next-item users (history items excluded unless the side
    ranks them, ``EvalSide.excluded``), if predicted."""
    if "next_item.ranks" in pred:
        return pred["next_item.ranks"]
    if "next_item" not in pred or side.next_users is None:
        return None
    return target_ranks(pred["next_item"], side.next_items, side.excluded(side.next_users))


def side_metrics(
    data: ProtocolData, side: EvalSide, pred: SidePredictions, rating_range: tuple[float, float] | None
) -> dict[str, float]:
    """``"<protocol>.<task>.<metric>"`` for whatever tasks ``pred`` holds."""
    p = data.protocol
    out: dict[str, float] = {}
    if side.pairs is not None and len(side.pairs):
        out.update(pair_metrics(p, side.pairs.ratings, side.pairs.labels, pred, rating_range))
    proba = profile_part(pred)
    if proba and side.profile_users is not None and len(side.profile_users):
        out.update(profile_metrics(p, data, side.profile_users, proba))
    ranks = next_item_side_ranks(side, pred)
    if ranks is not None and len(ranks):
        out.update({f"{p}.next_item.{k}": v for k, v in ranking_metrics(ranks).items()})
    return out



class ProfilePool:
    """Profile predictions of every seed's test users, scored at once: the seeds' test
    folds are disjoint, so pooling gives a steadier figure than a mean over seeds."""

    def __init__(self) -> None:
        self.users: list[np.ndarray] = []
        self.proba: dict[str, list[np.ndarray]] = {}
        self.reference: ProtocolData | None = None  # the true attribute codes (any seed's)

    def add(self, data: ProtocolData, test_pred: SidePredictions) -> None:
        proba = profile_part(test_pred)
        if not proba:
            return
        for name, p in proba.items():
            self.proba.setdefault(name, []).append(p)
        self.users.append(data.test.profile_users)
        self.reference = data

    def metrics(self) -> dict[str, float]:
        """``A.profile.<attr>.pooled_<metric>``, with two seeds or more."""
        if self.reference is None or len(self.users) < 2:
            return {}
        users = np.concatenate(self.users)
        pooled = profile_metrics("A", self.reference, users, {k: np.concatenate(v) for k, v in self.proba.items()})
        return {f"{k.rsplit('.', 1)[0]}.pooled_{k.rsplit('.', 1)[1]}": v for k, v in pooled.items()}
