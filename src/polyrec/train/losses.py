"""The joint objective ``L = Σ_t λ_t · L_t`` on one batch of training histories."""

from __future__ import annotations

import numpy as np
import torch

from ..models.polyrec import PolyRecModel
from ..tasks import ctr, next_item, profile, rating
from .sequences import HistoryBatch


def task_losses(
    model: PolyRecModel,
    batch: HistoryBatch,
    profile_labels: dict[str, np.ndarray],
    sampled_negatives: int = 0,
) -> dict[str, torch.Tensor]:
    """Each task's loss on ``batch``. Every history item is a target, seeing only its past."""
    enc = model.encode(batch)
    B, L = batch.items.shape
    out: dict[str, torch.Tensor] = {}
    if "rating" in model.heads or "ctr" in model.heads:
        # Target at position t sees positions < t: its own rating never enters its input.
        ctx = torch.arange(L).unsqueeze(0).expand(B, L)
        # Heads run on real positions only: (N, F) rather than the padded (B, L, F).
        pair = model.pair_features(enc, batch.items, ctx)[batch.mask]
        items = batch.items[batch.mask]
        ratings, labels = batch.ratings[batch.mask], batch.labels[batch.mask]
        if "rating" in model.heads and not torch.isnan(ratings).all():
            out["rating"] = rating.loss(model.heads["rating"](pair, items), ratings)
        if "ctr" in model.heads and not torch.isnan(labels).all():
            out["ctr"] = ctr.loss(model.heads["ctr"](pair, items), labels)
    if "next_item" in model.heads:
        valid = batch.mask[:, 1:]
        out["next_item"] = next_item.loss(
            model.heads["next_item"],
            enc.states[:, :-1],
            batch.items[:, 1:],
            valid,
            model.item_tower.all_items(),
            sampled_negatives,
        )
    if "profile" in model.heads and profile_labels:
        users = batch.users.numpy()
        labels = {k: torch.from_numpy(v[users]) for k, v in profile_labels.items()}
        if any((y >= 0).any() for y in labels.values()):
            out["profile"] = profile.loss(model.profile_logits(enc), labels)
    return out


def joint_loss(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(weights.get(name, 1.0) * value for name, value in losses.items())  # type: ignore[return-value]
