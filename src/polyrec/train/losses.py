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
    pair_fraction: float = 1.0,
    next_item_fraction: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Each task's loss on ``batch``.

    Every history item is a target of every task. ``pair_fraction`` / ``next_item_fraction``
    train the rating+ctr / next_item tasks on a random share of positions only: the tasks a
    protocol does not evaluate still learn, at a fraction of the cost.
    """
    enc = model.encode(batch)
    out: dict[str, torch.Tensor] = {}
    if "rating" in model.heads or "ctr" in model.heads:
        # Leave-one-out: a target reads every other history item, never itself or its rating.
        positions = _subsample(batch.items.shape[1], pair_fraction)
        pair = model.history_pair_features(enc, positions)
        real = batch.mask[:, positions]
        # Heads run on real positions only: (N, F) rather than the padded (B, T, F).
        items = batch.items[:, positions][real]
        ratings, labels = batch.ratings[:, positions][real], batch.labels[:, positions][real]
        if "rating" in model.heads and not torch.isnan(ratings).all():
            out["rating"] = rating.loss(model.heads["rating"](pair["rating"][real], items), ratings)
        if "ctr" in model.heads and not torch.isnan(labels).all():
            out["ctr"] = ctr.loss(model.heads["ctr"](pair["ctr"][real], items), labels)
    if "next_item" in model.heads:
        valid = batch.mask[:, 1:].clone()
        if next_item_fraction < 1.0:
            valid &= torch.rand(valid.shape) < next_item_fraction
        out["next_item"] = next_item.loss(
            model.heads["next_item"],
            enc.state("next_item")[:, :-1],
            batch.items[:, 1:],
            valid,
            model.item_tower.all_items(),
            sampled_negatives,
            history=batch.items,
        )
    if "profile" in model.heads and profile_labels:
        users = batch.users.numpy()
        labels = {k: torch.from_numpy(v[users]) for k, v in profile_labels.items()}
        if any((y >= 0).any() for y in labels.values()):
            out["profile"] = profile.loss(model.profile_logits(enc), labels)
    return out


def joint_loss(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(weights.get(name, 1.0) * value for name, value in losses.items())  # type: ignore[return-value]


def _subsample(length: int, fraction: float) -> torch.Tensor:
    """Sorted random positions, a ``fraction`` of ``length`` (all of them at 1.0)."""
    if fraction >= 1.0:
        return torch.arange(length)
    k = max(1, int(round(fraction * length)))
    return torch.randperm(length)[:k].sort().values
