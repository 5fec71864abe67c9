"""Test-side metrics of a trained model, as flat ``"<protocol>.<task>.<metric>"`` keys."""

from __future__ import annotations

import numpy as np

from ..models.polyrec import PolyRecModel
from ..train.protocol_data import EvalSide, ProtocolData
from .metrics import auc, classification_metrics, logloss, mae, rmse
from .predict import next_item_ranks, predict_pairs, profile_probabilities
from .ranking import ranking_metrics


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
            if pred["ctr"][known].max() <= 1.0:  # a probability; popularity counts have no logloss
                out[f"{prefix}.ctr.logloss"] = logloss(labels[known], pred["ctr"][known])
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


def evaluate_model(
    model: PolyRecModel, data: ProtocolData, side: EvalSide, rating_range: tuple[float, float] | None
) -> tuple[dict[str, float], dict[str, np.ndarray]]:
    """Metrics of the protocol's own tasks on ``side``, and the raw profile probabilities
    (kept so that metrics pooled over several seeds' test folds can be computed)."""
    p = data.protocol
    out: dict[str, float] = {}
    raw: dict[str, np.ndarray] = {}
    if p == "A" and side.pairs is not None and len(side.pairs):
        pred = predict_pairs(model, side.history, side.pairs.users, side.pairs.items)
        out.update(pair_metrics(p, side.pairs.ratings, side.pairs.labels, pred, rating_range))
    if p == "A" and "profile" in model.heads and side.profile_users is not None and len(side.profile_users):
        raw = profile_probabilities(model, side.history, side.profile_users)
        out.update(profile_metrics(p, data, side.profile_users, raw))
    if p == "B" and "next_item" in model.heads and side.next_users is not None and len(side.next_users):
        ranks = next_item_ranks(model, side.history, side.next_users, side.next_items)
        out.update({f"{p}.next_item.{k}": v for k, v in ranking_metrics(ranks).items()})
    return out, raw
