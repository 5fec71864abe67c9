"""Batched inference: pair predictions, catalogue ranks and profile probabilities."""

from __future__ import annotations

import numpy as np
import torch

from ..models.polyrec import PolyRecModel
from ..train.sequences import Histories, collate
from .ranking import target_ranks


def _user_batches(users: np.ndarray, size: int):
    for s in range(0, len(users), size):
        yield users[s : s + size]


@torch.no_grad()
def predict_pairs(
    model: PolyRecModel, history: Histories, users: np.ndarray, items: np.ndarray, batch_users: int = 256
) -> dict[str, np.ndarray]:
    """Predicted rating and engagement probability for each (users[k], items[k]) pair."""
    model.eval()
    order = np.argsort(users, kind="stable")
    uniq, starts = np.unique(users[order], return_index=True)
    ends = np.r_[starts[1:], len(order)]
    out: dict[str, np.ndarray] = {}
    for chunk in _user_batches(np.arange(len(uniq)), batch_users):
        batch = collate(history, uniq[chunk], model.spec.config.max_history)
        T = int(max(ends[c] - starts[c] for c in chunk))
        targets = np.zeros((len(chunk), T), dtype=np.int64)
        for b, c in enumerate(chunk):
            targets[b, : ends[c] - starts[c]] = items[order[starts[c] : ends[c]]]
        preds = model.predict_pairs(model.encode(batch), torch.from_numpy(targets))
        for name, value in preds.items():
            dest = out.setdefault(name, np.zeros(len(users)))
            v = value.numpy()
            for b, c in enumerate(chunk):
                dest[order[starts[c] : ends[c]]] = v[b, : ends[c] - starts[c]]
    return out


@torch.no_grad()
def score_users(model: PolyRecModel, history: Histories, users: np.ndarray) -> np.ndarray:
    """(len(users), I) next-item scores."""
    model.eval()
    item_vecs = model.item_tower.all_items()
    return model.score_catalogue(model.encode(collate(history, users, model.spec.config.max_history)), item_vecs).numpy()


@torch.no_grad()
def next_item_ranks(
    model: PolyRecModel, history: Histories, users: np.ndarray, targets: np.ndarray, batch_users: int = 256
) -> np.ndarray:
    """Full-catalogue rank of each user's target, items in ``history`` excluded (chunked)."""
    model.eval()
    item_vecs = model.item_tower.all_items()
    ranks = []
    for s in range(0, len(users), batch_users):
        u = users[s : s + batch_users]
        enc = model.encode(collate(history, u, model.spec.config.max_history))
        scores = model.score_catalogue(enc, item_vecs).numpy()
        ranks.append(target_ranks(scores, targets[s : s + batch_users], [history.items[x] for x in u]))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def profile_probabilities(
    model: PolyRecModel, history: Histories, users: np.ndarray, batch_users: int = 256
) -> dict[str, np.ndarray]:
    """Per attribute, (len(users), C) class probabilities."""
    model.eval()
    parts: dict[str, list[np.ndarray]] = {}
    for u in _user_batches(users, batch_users):
        logits = model.profile_logits(model.encode(collate(history, u, model.spec.config.max_history)))
        for name, lg in logits.items():
            parts.setdefault(name, []).append(torch.softmax(lg, -1).numpy())
    return {k: np.concatenate(v) for k, v in parts.items()}
