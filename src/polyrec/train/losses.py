"""The joint objective ``L = Σ_t λ_t · L_t`` on one batch of training histories.

:func:`task_outputs` runs a model over a batch and keeps every head's output together with
the random choices it made (which positions, which negatives); :func:`hard_losses` turns
the outputs into each task's loss against the true labels. Distillation (``polyrec.distill``)
replays the same choices on the teacher, so student and teacher are compared on the very
same targets.
"""

from __future__ import annotations

from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch

from ..models.polyrec import PolyRecModel, UserEncoding
from ..tasks import ctr, next_item, profile, rating
from .sequences import HistoryBatch


@dataclass
class Draws:
    """The random choices of one step: replayed, they give another model the same targets."""

    pair_positions: torch.Tensor | None = None  # (T,) history positions rating/ctr train on
    next_valid: torch.Tensor | None = None  # (B, L−1) positions next_item trains on
    negatives: torch.Tensor | None = None  # (S,) sampled-softmax negatives; None = full catalogue


@dataclass
class TaskOutputs:
    """Every head's output on one batch; a field is None where the task has no target in it."""

    enc: UserEncoding
    draws: Draws
    pair_real: torch.Tensor | None = None  # (B, T) bool: real (not padding) pair targets
    pair_items: torch.Tensor | None = None  # (N,) the item of each real pair target
    ratings: torch.Tensor | None = None  # (N,) true ratings of the N real pair targets (NaN: none)
    labels: torch.Tensor | None = None  # (N,) true engagement labels (NaN: none)
    rating: torch.Tensor | None = None  # (N,) predicted ratings
    ctr: torch.Tensor | None = None  # (N,) engagement logits
    next_item: tuple[torch.Tensor, torch.Tensor] | None = None  # (N', C) logits, (N',) target column
    profile: dict[str, torch.Tensor] | None = None  # attribute → (B, classes) logits


def soft_kl_rows(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    """(N,) τ² · KL(softmax(teacher/τ) ‖ softmax(student/τ)) per row; −inf entries (masked
    items, the same in both) carry no probability and add nothing."""
    p = torch.softmax(teacher_logits / tau, dim=-1)
    log_p = torch.log_softmax(teacher_logits / tau, dim=-1)
    log_q = torch.log_softmax(student_logits / tau, dim=-1)
    terms = torch.where(p > 0, p * (log_p - log_q), torch.zeros_like(p))
    return tau**2 * terms.sum(-1)


def task_outputs(
    model: PolyRecModel,
    batch: HistoryBatch,
    sampled_negatives: int = 0,
    pair_fraction: float = 1.0,
    next_item_fraction: float = 1.0,
    draws: Draws | None = None,
    profile: bool = True,
) -> TaskOutputs:
    """Run ``model`` over ``batch``: every history item is a target of every task.

    ``pair_fraction`` / ``next_item_fraction`` train the rating+ctr / next_item tasks on a
    random share of positions only: the tasks a protocol does not evaluate still learn, at a
    fraction of the cost. ``draws`` replays another run's random choices instead.
    ``profile=False`` skips the profile head (nothing to learn it from).
    """
    replay = draws is not None
    # next_item's full softmax projects the whole catalogue's text (its scores read every
    # item's vector): the history and target items take rows of that projection rather than
    # projecting their own copies (ItemTower.catalogue_text_once). A sampled softmax does not.
    next_runs = "next_item" in model.heads and not (replay and draws.next_valid is None)
    sampled = draws.negatives is not None if replay else next_item.samples_catalogue(model.spec.n_items, sampled_negatives)
    once = next_runs and not sampled and model.item_tower.text_proj is not None
    with model.item_tower.catalogue_text_once() if once else nullcontext():
        return _task_outputs(model, batch, sampled_negatives, pair_fraction, next_item_fraction, draws, profile)


def _task_outputs(
    model: PolyRecModel,
    batch: HistoryBatch,
    sampled_negatives: int,
    pair_fraction: float,
    next_item_fraction: float,
    draws: Draws | None,
    profile: bool,
) -> TaskOutputs:
    replay = draws is not None
    draws = draws if replay else Draws()
    enc = model.encode(batch)
    out = TaskOutputs(enc, draws)
    # A replay runs only the tasks the replayed run drew for: a distillation teacher skips the
    # heads its student lacks (a student that learns its protocol's own tasks alone).
    if ("rating" in model.heads or "ctr" in model.heads) and not (replay and draws.pair_positions is None):
        # Leave-one-out: a target reads every other history item, never itself or its rating.
        if not replay:
            draws.pair_positions = _subsample(batch.items.shape[1], pair_fraction)
        positions = draws.pair_positions
        pair = model.history_pair_features(enc, positions)
        real = batch.mask[:, positions]
        # Heads run on real positions only: (N, F) rather than the padded (B, T, F).
        items = batch.items[:, positions][real]
        out.pair_real, out.pair_items = real, items
        out.ratings, out.labels = batch.ratings[:, positions][real], batch.labels[:, positions][real]
        if "rating" in model.heads and not torch.isnan(out.ratings).all():
            out.rating = model.heads["rating"](pair["rating"][real], items)
        if "ctr" in model.heads and not torch.isnan(out.labels).all():
            out.ctr = model.heads["ctr"](pair["ctr"][real], items)
    if "next_item" in model.heads and not (replay and draws.next_valid is None):
        if not replay:
            valid = batch.mask[:, 1:].clone()
            if next_item_fraction < 1.0:
                valid &= torch.rand(valid.shape) < next_item_fraction
            draws.next_valid = valid
        states = enc.state("next_item")[:, :-1]
        if not replay and draws.next_valid.any():
            draws.negatives = next_item.draw_negatives(model.spec.n_items, sampled_negatives, states.device)
        head, next_items = model.heads["next_item"], batch.items[:, 1:]
        # Where users take items again, the history stays a candidate: nothing is masked.
        history = None if model.spec.repeat_items else batch.items
        if draws.negatives is None:
            out.next_item = next_item.logits(
                head, states, next_items, draws.next_valid, model.item_tower.all_items(), history=history
            )
        else:  # the targets' and the negatives' vectors only: no pass over the catalogue
            out.next_item = next_item.sampled_logits(
                head, states, next_items, draws.next_valid, model.item_tower, draws.negatives, history=history
            )
    if profile and "profile" in model.heads:
        out.profile = model.profile_logits(enc)
    return out


def hard_losses(out: TaskOutputs, batch: HistoryBatch, profile_labels: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    """Each task's loss against the true labels (tasks without a labelled target are left out)."""
    losses: dict[str, torch.Tensor] = {}
    if out.rating is not None:
        losses["rating"] = rating.loss(out.rating, out.ratings)
    if out.ctr is not None:
        losses["ctr"] = ctr.loss(out.ctr, out.labels)
    if out.draws.next_valid is not None:
        # No valid position: a zero that still reaches the graph (as every batch has a loss).
        losses["next_item"] = next_item.loss(out.next_item) if out.next_item is not None else out.enc.states.sum() * 0.0
    if out.profile is not None and profile_labels:
        labels = profile_targets(profile_labels, batch)
        if any((y >= 0).any() for y in labels.values()):
            losses["profile"] = profile.loss(out.profile, labels)
    return losses


def profile_targets(profile_labels: dict[str, np.ndarray], batch: HistoryBatch) -> dict[str, torch.Tensor]:
    """The batch users' attribute labels (−1: unknown)."""
    users = batch.users.numpy()
    return {k: torch.from_numpy(v[users]) for k, v in profile_labels.items()}


def task_losses(
    model: PolyRecModel,
    batch: HistoryBatch,
    profile_labels: dict[str, np.ndarray],
    sampled_negatives: int = 0,
    pair_fraction: float = 1.0,
    next_item_fraction: float = 1.0,
) -> dict[str, torch.Tensor]:
    """Each task's loss on ``batch`` (see :func:`task_outputs` for the fractions)."""
    out = task_outputs(model, batch, sampled_negatives, pair_fraction, next_item_fraction, profile=bool(profile_labels))
    return hard_losses(out, batch, profile_labels)


def joint_loss(losses: dict[str, torch.Tensor], weights: dict[str, float]) -> torch.Tensor:
    return sum(weights.get(name, 1.0) * value for name, value in losses.items())  # type: ignore[return-value]


def _subsample(length: int, fraction: float) -> torch.Tensor:
    """Sorted random positions, a ``fraction`` of ``length`` (all of them at 1.0)."""
    if fraction >= 1.0:
        return torch.arange(length)
    k = max(1, int(round(fraction * length)))
    return torch.randperm(length)[:k].sort().values
