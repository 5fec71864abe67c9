"""Validation losses per task, the signal for early stopping (never test data)."""

from __future__ import annotations

import numpy as np
import torch

from ..eval.metrics import logloss
from ..eval.predict import predict_pairs, profile_probabilities, score_users
from ..eval.ranking import ndcg_at
from ..models.polyrec import PolyRecModel
from .data_parallel import DataParallel
from .protocol_data import ProtocolData

NEXT_ITEM_SELECTION = "next_item.ndcg@10"  # a validation metric, not a loss: higher is better


def validation_losses(model: PolyRecModel, data: ProtocolData, parallel: DataParallel | None = None) -> dict[str, float]:
    """MSE (rating), logloss (ctr), cross-entropy (profile, next_item) on the valid side;
    in a data-parallel training (``parallel``) each process predicts a part of it."""
    side = data.valid
    parallel = parallel or DataParallel()
    out: dict[str, float] = {}
    if side.pairs is not None and len(side.pairs) and ("rating" in model.heads or "ctr" in model.heads):
        pairs = side.pairs
        # In parts, by user: a user's history is then encoded in one process only.
        order = np.argsort(pairs.users, kind="stable") if parallel.active else slice(None)
        users, items = pairs.users[order], pairs.items[order]
        pred = parallel.gather_rows(lambda s: predict_pairs(model, side.history, users[s], items[s]), len(pairs))
        if parallel.active:  # back to the pairs' order
            back = np.argsort(order)
            pred = {k: v[back] for k, v in pred.items()}
        if "rating" in pred:
            known = ~np.isnan(side.pairs.ratings)
            out["rating"] = float(np.mean((pred["rating"][known] - side.pairs.ratings[known]) ** 2))
        if "ctr" in pred:
            known = ~np.isnan(side.pairs.labels)
            out["ctr"] = logloss(side.pairs.labels[known], pred["ctr"][known])
    if side.next_users is not None and len(side.next_users) and "next_item" in model.heads:
        users = side.next_users
        scores = parallel.gather_rows(lambda s: score_users(model, side.history, users[s]), len(users))
        seen = side.excluded(side.next_users)
        # The task's main metric, for early stopping: a ranking can improve while CE does not.
        out[NEXT_ITEM_SELECTION] = ndcg_at(scores, side.next_items, seen)
        # Cross-entropy over the candidates of that ranking: the history is not one (the target
        # always is, or the loss of a re-consumed target would be infinite).
        masked = torch.from_numpy(scores)
        targets = torch.from_numpy(side.next_items)
        for row, items in enumerate(seen or []):
            masked[row, items[items != side.next_items[row]]] = float("-inf")
        out["next_item"] = float(torch.nn.functional.cross_entropy(masked, targets))
    if side.profile_users is not None and len(side.profile_users) and "profile" in model.heads:
        profiled = side.profile_users
        proba = parallel.gather_rows(lambda s: profile_probabilities(model, side.history, profiled[s]), len(profiled))
        parts = []
        for name, p in proba.items():
            y = data.profile_true[name][side.profile_users]
            known = y >= 0
            if known.any():
                parts.append(float(-np.mean(np.log(np.clip(p[known, y[known]], 1e-7, 1.0)))))
        if parts:
            out["profile"] = float(np.mean(parts))
    return out
