"""The distillation objective: each task's true loss plus a soft-label term towards the
teacher, and the cluster objective.

On every step the student runs first (drawing the step's random positions and negatives),
then the frozen teacher runs on the same batch with the same draws, so each soft label is
the teacher's output on exactly the target the student is scored on:

- rating: squared error towards the teacher's predicted rating (with its item autoencoder
  joined, the pair's own rating left out of the item's code: the teacher's whole prediction);
- ctr: binary KL between temperature-scaled engagement probabilities (× τ²);
- profile: KL between temperature-scaled attribute distributions (× τ²), for every user in
  the batch — the teacher reads training histories only, never a held-out attribute;
- next_item: listwise KL between the temperature-scaled softmaxes over the catalogue (× τ²),
  items already taken masked out for both, as in the task's own loss (with
  ``next_item_target: false``, the true next item out of both as well);
- unseen (off by default): soft rating and ctr labels on items drawn outside each user's
  history, scored from the whole training history by both models — the pairs no true label
  covers, where a teacher's predictions are all the student has;
- cluster: the student's pooled user state predicts the user's teacher cluster
  (cross-entropy), and the profile losses (true and soft) weigh each user by
  1 / (K · cluster size), i.e. they are averaged per cluster, then over clusters, so small
  groups of users count as much as large ones.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from ..config import DISTILL_PARTS, DistillConfig
from ..eval.predict import profile_logits
from ..models.polyrec import PolyRecModel
from ..train.losses import TaskOutputs, hard_losses, profile_targets, soft_kl_rows, task_outputs
from ..train.protocol_data import ProtocolData
from ..train.refit_head import SoftProfileTargets
from ..train.sequences import HistoryBatch
from .clusters import UserClusters


def soft_binary_kl(student_logits: torch.Tensor, teacher_logits: torch.Tensor, tau: float) -> torch.Tensor:
    p = torch.sigmoid(teacher_logits / tau)
    cross = F.binary_cross_entropy_with_logits(student_logits / tau, p, reduction="none")
    entropy = F.binary_cross_entropy_with_logits(teacher_logits / tau, p, reduction="none")
    return tau**2 * (cross - entropy).mean()


def without_target(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """(N, C) logits with each row's ``target`` column at −inf: a softmax over the rest."""
    return logits.index_put((torch.arange(len(target)), target), torch.tensor(float("-inf")))


def balanced_profile_loss(
    logits: dict[str, torch.Tensor], labels: dict[str, torch.Tensor], user_weights: torch.Tensor
) -> torch.Tensor | None:
    """Cross-entropy per attribute as a ``user_weights``-weighted mean over users with a
    known value, then the mean over attributes; None when no user has a known value."""
    parts = []
    for name, lg in logits.items():
        known = labels[name] >= 0
        w = user_weights[known]
        if known.any() and w.sum() > 0:
            ce = F.cross_entropy(lg[known], labels[name][known], reduction="none")
            parts.append((w * ce).sum() / w.sum())
    return torch.stack(parts).mean() if parts else None


def _add(losses: dict[str, torch.Tensor], task: str, weight: float, term: torch.Tensor) -> None:
    """``weight · term`` added to ``task``'s loss (which it starts if the task has none)."""
    if weight > 0:
        losses[task] = losses[task] + weight * term if task in losses else weight * term


# The parts that read the teacher's outputs batch by batch (cluster reads its precomputed clusters).
SOFT_PARTS: tuple[str, ...] = tuple(p for p in DISTILL_PARTS if p != "cluster")


@dataclass
class DistillObjective:
    teacher: PolyRecModel
    profile_labels: dict[str, np.ndarray]
    cfg: DistillConfig
    protocol: str  # whose part weights apply (DistillConfig.weights_for)
    student_dim: int  # the student's model.dim: what the cluster head reads
    clusters: UserClusters | None = None  # None: the cluster part is off
    sampled_negatives: int = 0
    cluster_head: nn.Linear | None = field(default=None, init=False)  # trained beside, not saved
    extra_losses: dict[str, float] = field(default_factory=dict, init=False)
    weights: dict[str, float] = field(default_factory=dict, init=False)  # the protocol's part weights

    def __post_init__(self) -> None:
        self.weights = self.cfg.weights_for(self.protocol)
        if self.clusters is not None:
            self.cluster_head = nn.Linear(self.student_dim, self.clusters.k)
            self.extra_losses = {"cluster": float(self.weights.get("cluster", 0.0))}

    def parameters(self) -> list[nn.Parameter]:
        return [] if self.cluster_head is None else list(self.cluster_head.parameters())

    def profile_refit_targets(self, data: ProtocolData) -> SoftProfileTargets | None:
        """The teacher's attribute logits for every user, from the training histories only
        (train/refit_head.py): the profile head is refit on them and the true labels."""
        weight = self.weights.get("profile", 0.0)
        if weight <= 0 or "profile" not in self.teacher.heads:
            return None
        logits = profile_logits(self.teacher, data.train, np.arange(data.train.n_users))
        return SoftProfileTargets(logits, weight, self.cfg.temperature)

    def losses(self, model: PolyRecModel, batch: HistoryBatch, fractions: tuple[float, float]) -> dict[str, torch.Tensor]:
        w, tau = self.weights, self.cfg.temperature
        soft_profile = w.get("profile", 0.0) > 0 and "profile" in self.teacher.heads
        student = task_outputs(model, batch, self.sampled_negatives, *fractions, profile=bool(self.profile_labels) or soft_profile)
        losses = hard_losses(student, batch, self.profile_labels)
        user_weights = self._user_weights(batch)
        if user_weights is not None and student.profile is not None and self.profile_labels:
            balanced = balanced_profile_loss(student.profile, profile_targets(self.profile_labels, batch), user_weights)
            if balanced is not None:
                losses["profile"] = balanced
        if any(w.get(part, 0.0) > 0 for part in SOFT_PARTS):  # otherwise the teacher is not run
            with torch.no_grad():
                teacher = task_outputs(self.teacher, batch, draws=student.draws, profile=student.profile is not None)
                self._join_teacher_pairs(teacher, batch)
            for task, term in self._soft_terms(student, teacher, tau, user_weights).items():
                _add(losses, task, w.get(task, 0.0), term)
            if w.get("unseen", 0.0) > 0:
                for task, term in self._unseen_terms(model, student, teacher, batch, tau).items():
                    _add(losses, task, w["unseen"], term)
        if self.cluster_head is not None:
            losses["cluster"] = self._cluster_loss(student, batch)
        return losses

    def _join_teacher_pairs(self, t: TaskOutputs, batch: HistoryBatch) -> None:
        """The teacher's soft rating and ctr labels are its whole prediction: with an item
        autoencoder, its heads' outputs joined with the autoencoder's left-out deviation."""
        if t.pair_real is None or (t.rating is None and t.ctr is None):
            return
        users = batch.users.unsqueeze(1).expand_as(t.pair_real)[t.pair_real]
        heads = {k: v for k, v in (("rating", t.rating), ("ctr", t.ctr)) if v is not None}
        joined = self.teacher.join_autoencoder(users, t.pair_items, heads, own_ratings=t.ratings)
        t.rating, t.ctr = joined.get("rating"), joined.get("ctr")

    def _unseen_terms(
        self, model: PolyRecModel, s: TaskOutputs, t: TaskOutputs, batch: HistoryBatch, tau: float
    ) -> dict[str, torch.Tensor]:
        """Soft rating and ctr terms on ``unseen_items`` random items per user, those the
        user took (or a user without history) left out."""
        items = torch.randint(0, model.spec.n_items, (batch.items.shape[0], self.cfg.unseen_items))
        taken = ((items.unsqueeze(-1) == batch.items.unsqueeze(1)) & batch.mask.unsqueeze(1)).any(-1)
        fresh = ~taken & (batch.lengths > 0).unsqueeze(1)
        if not fresh.any():
            return {}
        student = model.pair_outputs(s.enc, items)
        with torch.no_grad():
            teacher = self.teacher.pair_outputs(t.enc, items)
        terms: dict[str, torch.Tensor] = {}
        if "rating" in student and "rating" in teacher:
            terms["rating"] = ((student["rating"][fresh] - teacher["rating"][fresh]) ** 2).mean()
        if "ctr" in student and "ctr" in teacher:
            terms["ctr"] = soft_binary_kl(student["ctr"][fresh], teacher["ctr"][fresh], tau)
        return terms

    def _user_weights(self, batch: HistoryBatch) -> torch.Tensor | None:
        if self.clusters is None:
            return None
        return torch.from_numpy(self.clusters.weights[batch.users.numpy()]).float()

    def _soft_terms(
        self, s: TaskOutputs, t: TaskOutputs, tau: float, user_weights: torch.Tensor | None
    ) -> dict[str, torch.Tensor]:
        terms: dict[str, torch.Tensor] = {}
        if s.rating is not None and t.rating is not None:
            terms["rating"] = ((s.rating - t.rating) ** 2).mean()
        if s.ctr is not None and t.ctr is not None:
            terms["ctr"] = soft_binary_kl(s.ctr, t.ctr, tau)
        if s.next_item is not None and t.next_item is not None:
            s_logits, t_logits = s.next_item[0], t.next_item[0]
            if not self.cfg.next_item_target:  # the same target column in both (the same draws)
                s_logits, t_logits = without_target(s_logits, s.next_item[1]), without_target(t_logits, s.next_item[1])
            terms["next_item"] = soft_kl_rows(s_logits, t_logits, tau).mean()
        if s.profile is not None and t.profile is not None:
            per_user = torch.stack([soft_kl_rows(s.profile[a], t.profile[a], tau) for a in s.profile]).mean(0)
            if user_weights is None:
                terms["profile"] = per_user.mean()
            else:
                terms["profile"] = (user_weights * per_user).sum() / user_weights.sum().clamp(min=1e-12)
        return terms

    def _cluster_loss(self, s: TaskOutputs, batch: HistoryBatch) -> torch.Tensor:
        m = s.enc.mask.unsqueeze(-1).float()
        pooled = (s.enc.states * m).sum(1) / m.sum(1).clamp(min=1.0)
        target = torch.from_numpy(self.clusters.labels[batch.users.numpy()])
        known = target >= 0
        if not known.any():
            return pooled.sum() * 0.0
        return F.cross_entropy(self.cluster_head(pooled[known]), target[known])
