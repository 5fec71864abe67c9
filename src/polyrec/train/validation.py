"""Validation losses per task, the signal for early stopping (never test data)."""

from __future__ import annotations

import numpy as np
import torch

from ..eval.metrics import logloss
from ..eval.predict import predict_pairs, profile_probabilities, score_users
from ..eval.ranking import ndcg_at
from ..models.polyrec import PolyRecModel
from .protocol_data import ProtocolData

NEXT_ITEM_SELECTION = "next_item.ndcg@10"  # a validation metric, not a loss: higher is better


def validation_losses(model: PolyRecModel, data: ProtocolData) -> dict[str, float]:
    """MSE (rating), logloss (ctr), cross-entropy (profile, next_item) on the valid side."""
    side = data.valid
    out: dict[str, float] = {}
    if side.pairs is not None and len(side.pairs) and ("rating" in model.heads or "ctr" in model.heads):
        pred = predict_pairs(model, side.history, side.pairs.users, side.pairs.items)
        if "rating" in pred:
            known = ~np.isnan(side.pairs.ratings)
            out["rating"] = float(np.mean((pred["rating"][known] - side.pairs.ratings[known]) ** 2))
        if "ctr" in pred:
            known = ~np.isnan(side.pairs.labels)
            out["ctr"] = logloss(side.pairs.labels[known], pred["ctr"][known])
    if side.next_users is not None and len(side.next_users) and "next_item" in model.heads:
        scores = score_users(model, side.history, side.next_users)
        seen = [side.history.items[u] for u in side.next_users]
        # The task's main metric, for early stopping: a ranking can improve while CE does not.
        out[NEXT_ITEM_SELECTION] = ndcg_at(scores, side.next_items, seen)
        # Cross-entropy over the candidates of that ranking: the history is not one (the target always is).
        masked = torch.from_numpy(scores)
        targets = torch.from_numpy(side.next_items)
        for row, items in enumerate(seen):
            masked[row, items[items != side.next_items[row]]] = float("-inf")
        out["next_item"] = float(torch.nn.functional.cross_entropy(masked, targets))
    if side.profile_users is not None and len(side.profile_users) and "profile" in model.heads:
        proba = profile_probabilities(model, side.history, side.profile_users)
        parts = []
        for name, p in proba.items():
            y = data.profile_true[name][side.profile_users]
            known = y >= 0
            if known.any():
                parts.append(float(-np.mean(np.log(np.clip(p[known, y[known]], 1e-7, 1.0)))))
        if parts:
            out["profile"] = float(np.mean(parts))
    return out
