"""Validation losses per task, the signal for early stopping (never test data)."""

from __future__ import annotations

import numpy as np
import torch

from ..eval.predict import predict_pairs, profile_probabilities, score_users
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
            p = np.clip(pred["ctr"][known], 1e-7, 1 - 1e-7)
            y = side.pairs.labels[known]
            out["ctr"] = float(-np.mean(y * np.log(p) + (1 - y) * np.log(1 - p)))
    if side.next_users is not None and len(side.next_users) and "next_item" in model.heads:
        scores = torch.from_numpy(score_users(model, side.history, side.next_users))
        targets = torch.from_numpy(side.next_items)
        # As in the ranking: the user's history is not a candidate (the target always is).
        for row, u in enumerate(side.next_users):
            seen = torch.from_numpy(side.history.items[u])
            scores[row, seen[seen != targets[row]]] = float("-inf")
        out["next_item"] = float(torch.nn.functional.cross_entropy(scores, targets))
        # The task's main metric, for early stopping: a ranking can improve while CE does not.
        ranks = 1 + (scores > scores.gather(1, targets.view(-1, 1))).sum(1)
        ties = (scores == scores.gather(1, targets.view(-1, 1))).sum(1) - 1
        ranks = (ranks + ties).numpy()  # ties count against the target, as in the test metric
        out[NEXT_ITEM_SELECTION] = float(np.mean(np.where(ranks <= 10, 1.0 / np.log2(ranks + 1.0), 0.0)))
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
