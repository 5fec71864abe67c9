"""Re-select the profile head on the finished shared model.

Profile labels come from a few hundred users, so their validation loss is too noisy to steer
early stopping of the whole model (it would stop rating and ctr too soon). The joint run
stops on the other tasks; then, with the shared encoder frozen, the profile head alone
trains on and is selected by the profile validation loss (the joint-trained head, epoch 0,
stays if nothing beats it).
"""

from __future__ import annotations

import copy

import numpy as np
import torch

from ..config import TrainConfig
from ..models.polyrec import PolyRecModel
from ..tasks import profile
from .protocol_data import ProtocolData
from .sequences import collate


@torch.no_grad()
def _encode(model: PolyRecModel, data: ProtocolData, users: np.ndarray, size: int = 128) -> list[tuple]:
    """Frozen encodings of ``users``: (states, items, rating_centered, mask, users) per batch."""
    out = []
    for s in range(0, len(users), size):
        u = users[s : s + size]
        enc = model.encode(collate(data.train, u, model.spec.config.max_history))
        out.append((enc.state("profile"), enc.items, enc.rating_centered, enc.mask, u))
    return out


def _labels(source: dict[str, np.ndarray], users: np.ndarray) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(v[users]) for k, v in source.items()}


def refit_profile_head(
    model: PolyRecModel, data: ProtocolData, cfg: TrainConfig, max_epochs: int = 40, patience: int = 5
) -> int:
    """Train only ``model.heads['profile']``; returns the chosen epoch (0 = unchanged)."""
    head = model.heads["profile"]
    model.eval()
    train_users = np.flatnonzero(np.any([v >= 0 for v in data.profile_labels.values()], axis=0))
    valid_users = data.valid.profile_users
    if valid_users is None or len(valid_users) == 0 or len(train_users) == 0:
        return 0
    train_enc = _encode(model, data, train_users)
    valid_enc = _encode(model, data, valid_users)

    def valid_loss() -> float:
        head.eval()
        with torch.no_grad():
            losses = [profile.loss(head(*e[:4]), _labels(data.profile_true, e[4])) for e in valid_enc]
        return float(torch.stack(losses).mean())

    opt = torch.optim.AdamW(head.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    best, best_epoch, best_state = valid_loss(), 0, copy.deepcopy(head.state_dict())
    gen = np.random.default_rng(data.seed)
    for epoch in range(1, max_epochs + 1):
        head.train()
        for k in gen.permutation(len(train_enc)):
            e = train_enc[k]
            loss = profile.loss(head(*e[:4]), _labels(data.profile_labels, e[4]))
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
