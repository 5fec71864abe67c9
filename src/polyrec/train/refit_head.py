"""Re-select the profile head on the finished shared model.

Profile labels come from a few hundred users, so their validation loss is too noisy to steer
early stopping of the whole model (it would stop rating and ctr too soon). The joint run
stops on the other tasks; then, with the shared encoder frozen, the profile head alone
trains on and is selected by the profile validation loss (the joint-trained head, epoch 0,
stays if nothing beats it).

A distilled student (``soft``) refits on the same two kinds of signal it trained on: the true
attributes of the training users, and the teacher's attribute distributions for *every* user
with a history — the held-out users too, whose attributes neither model ever sees (their
histories are ordinary training input). That is where a teacher adds what labels cannot.
"""

from __future__ import annotations

import copy
from dataclasses import dataclass

import numpy as np
import torch

from ..config import TrainConfig
from ..models.polyrec import PolyRecModel
from ..tasks import profile
from .losses import soft_kl_rows
from .protocol_data import ProtocolData
from .sequences import collate


@dataclass
class SoftProfileTargets:
    """A teacher's attribute logits for every user, and how much they count in the refit."""

    logits: dict[str, torch.Tensor]  # attribute → (U, C)
    weight: float
    temperature: float

    def loss(self, student: dict[str, torch.Tensor], users: np.ndarray) -> torch.Tensor:
        """weight · τ² · KL(teacher ‖ student) at temperature τ, mean over ``users`` and attributes."""
        idx = torch.from_numpy(users)
        parts = [soft_kl_rows(lg, self.logits[name][idx], self.temperature).mean() for name, lg in student.items()]
        return self.weight * torch.stack(parts).mean()


@torch.no_grad()
def _encode(model: PolyRecModel, data: ProtocolData, users: np.ndarray, size: int = 128) -> list[tuple]:
    """Frozen encodings of ``users``: (states, items, rating_centered, mask, pooled_text, users) per batch."""
    out = []
    for s in range(0, len(users), size):
        u = users[s : s + size]
        enc = model.encode(collate(data.train, u, model.spec.config.max_history))
        out.append((enc.state("profile"), enc.items, enc.rating_centered, enc.mask, model.pooled_text(enc), u))
    return out


def _labels(source: dict[str, np.ndarray], users: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v[users]) for k, v in source.items()}


def refit_profile_head(
    model: PolyRecModel,
    data: ProtocolData,
    cfg: TrainConfig,
    max_epochs: int = 40,
    patience: int = 5,
    soft: SoftProfileTargets | None = None,
) -> int:
    """Train only ``model.heads['profile']``; returns the chosen epoch (0 = unchanged)."""
    head = model.heads["profile"]
    model.eval()
    # With soft labels every user with a history trains; without, those with a known attribute.
    has_signal = data.train.lengths() > 0 if soft is not None else np.any([v >= 0 for v in data.profile_labels.values()], axis=0)
    train_users = np.flatnonzero(has_signal)
    valid_users = data.valid.profile_users
    if valid_users is None or len(valid_users) == 0 or len(train_users) == 0:
        return 0
    train_enc = _encode(model, data, train_users)
    valid_enc = _encode(model, data, valid_users)

    def valid_loss() -> float:
        head.eval()
        with torch.no_grad():
            losses = [profile.loss(head(*e[:5]), _labels(data.profile_true, e[5])) for e in valid_enc]
        return float(torch.stack(losses).mean())

    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state = valid_loss(), 0, copy.deepcopy(head.state_dict())
    gen = np.random.default_rng(data.seed)
    for epoch in range(1, max_epochs + 1):
        head.train()
        for k in gen.permutation(len(train_enc)):
            e = train_enc[k]
            logits = head(*e[:5])
            loss = profile.loss(logits, _labels(data.profile_labels, e[5]))
            if soft is not None:
                loss = loss + soft.loss(logits, e[5])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        current = valid_loss()
        if current < best - 1e-4:
            best, best_epoch, best_state = current, epoch, copy.deepcopy(head.state_dict())
        elif epoch - best_epoch >= patience:
            break
    head.load_state_dict(best_state)
    head.eval()
    return best_epoch
