"""Batched inference: pair predictions, catalogue ranks and profile probabilities."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace

import numpy as np
import torch

from ..config import PROTOCOL_TASKS
from ..models.polyrec import UNKNOWN_USER, PolyRecModel, UserEncoding
from ..train.protocol_data import EvalSide, ProtocolData
from ..train.sequences import Histories, collate
from .ranking import target_ranks


def _user_batches(users: np.ndarray, size: int):
    for s in range(0, len(users), size):
        yield users[s : s + size]


def _encoded(model: PolyRecModel, history: Histories, users: np.ndarray, as_unknown: bool, own_rows: bool = False) -> UserEncoding:
    """``users``' encoding; ``as_unknown``: read as users the model was not trained with
    (``UNKNOWN_USER``), through their histories alone (the item autoencoder's rows folded in
    from the whole of each), as a new user is served; with ``own_rows`` as a known user
    whose history grew by live events is served: the parts no history gives back read
    their own rows (``FoldedUsers.trained_as``)."""
    batch = collate(history, users, model.spec.config.max_history)
    if not as_unknown:
        return model.encode(batch)
    whole = collate(history, users, max(len(history.items[u]) for u in users))
    folded = model.fold_in(whole)
    if own_rows:
        folded.trained_as = batch.users.clone()
    return model.encode(replace(batch, users=torch.full_like(batch.users, UNKNOWN_USER)), folded=folded)


@torch.no_grad()
def predict_pairs(
    model: PolyRecModel, history: Histories, users: np.ndarray, items: np.ndarray, batch_users: int = 256,
    as_unknown: bool = False, own_rows: bool = False,
) -> dict[str, np.ndarray]:
    """Predicted rating and engagement probability for each (users[k], items[k]) pair;
    ``as_unknown``: each user read from the history alone, ``own_rows`` as in ``_encoded``."""
    model.eval()
    order = np.argsort(users, kind="stable")
    uniq, starts = np.unique(users[order], return_index=True)
    ends = np.r_[starts[1:], len(order)]
    # Users with similar numbers of pairs share a chunk: its (users × most pairs) target grid
    # is then mostly real pairs, not padding behind one heavy rater.
    by_count = np.argsort(ends - starts, kind="stable")
    out: dict[str, np.ndarray] = {}
    for chunk in _user_batches(by_count, batch_users):
        T = int(max(ends[c] - starts[c] for c in chunk))
        targets = np.zeros((len(chunk), T), dtype=np.int64)
        for b, c in enumerate(chunk):
            targets[b, : ends[c] - starts[c]] = items[order[starts[c] : ends[c]]]
        preds = model.predict_pairs(_encoded(model, history, uniq[chunk], as_unknown, own_rows), torch.from_numpy(targets))
        for name, value in preds.items():
            dest = out.setdefault(name, np.zeros(len(users)))
            v = value.numpy()
            for b, c in enumerate(chunk):
                dest[order[starts[c] : ends[c]]] = v[b, : ends[c] - starts[c]]
    return out


@torch.no_grad()
def score_users(model: PolyRecModel, history: Histories, users: np.ndarray, batch_users: int = 256) -> np.ndarray:
    """(len(users), I) next-item scores. Users are encoded in chunks of similar history
    length: each chunk is padded only to its own longest history, not to the longest of all."""
    model.eval()
    users = np.asarray(users)
    item_vecs = model.item_tower.all_items()
    out = np.zeros((len(users), model.item_tower.n_items), dtype=np.float32)
    by_length = np.argsort([len(history.items[u]) for u in users], kind="stable")
    for chunk in _user_batches(by_length, batch_users):
        out[chunk] = model.score_catalogue(collate(history, users[chunk], model.spec.config.max_history), item_vecs).numpy()
    return out


@torch.no_grad()
def next_item_ranks(
    model: PolyRecModel, history: Histories, users: np.ndarray, targets: np.ndarray,
    excluded: Sequence[np.ndarray] | None, batch_users: int = 256,
) -> np.ndarray:
    """Full-catalogue rank of each user's target from what the model reads in ``history``,
    each user's ``excluded`` items (``EvalSide.excluded``; None: none) not candidates (chunked)."""
    model.eval()
    item_vecs = model.item_tower.all_items()
    ranks = []
    for s in range(0, len(users), batch_users):
        u = users[s : s + batch_users]
        scores = model.score_catalogue(collate(history, u, model.spec.config.max_history), item_vecs).numpy()
        left_out = None if excluded is None else excluded[s : s + batch_users]
        ranks.append(target_ranks(scores, targets[s : s + batch_users], left_out))
    return np.concatenate(ranks) if ranks else np.zeros(0, dtype=np.int64)


@torch.no_grad()
def profile_logits(
    model: PolyRecModel, history: Histories, users: np.ndarray, batch_users: int = 256, as_unknown: bool = False,
    own_rows: bool = False,
) -> dict[str, torch.Tensor]:
    """Per attribute, (len(users), C) class logits; ``as_unknown``, ``own_rows`` as in :func:`predict_pairs`."""
    model.eval()
    parts: dict[str, list[torch.Tensor]] = {}
    for u in _user_batches(users, batch_users):
        for name, lg in model.profile_logits(_encoded(model, history, u, as_unknown, own_rows)).items():
            parts.setdefault(name, []).append(lg)
    return {k: torch.cat(v) for k, v in parts.items()}


def profile_probabilities(
    model: PolyRecModel, history: Histories, users: np.ndarray, batch_users: int = 256, as_unknown: bool = False,
    own_rows: bool = False,
) -> dict[str, np.ndarray]:
    """Per attribute, (len(users), C) class probabilities; ``as_unknown``, ``own_rows`` as in :func:`predict_pairs`."""
    logits = profile_logits(model, history, users, batch_users, as_unknown, own_rows)
    return {k: torch.softmax(lg, -1).numpy() for k, lg in logits.items()}


# Above this many (user, item) scores a side keeps ranks only (an ensemble needs scores).
MAX_KEPT_SCORES = 50_000_000


def predict_side(
    model: PolyRecModel, data: ProtocolData, side: EvalSide, as_unknown: bool = False, own_rows: bool = False
) -> dict[str, np.ndarray]:
    """The model's predictions for every target of ``side`` of the protocol's own tasks
    (format: ``eval.evaluate``). ``as_unknown``: its rating, engagement and profile
    predictions read every user as a new one, from the same history (:func:`predict_pairs`);
    ``own_rows``: as a known user whose history grew by live events."""
    out: dict[str, np.ndarray] = {}
    own = PROTOCOL_TASKS[data.protocol]
    if side.pairs is not None and len(side.pairs):
        pred = predict_pairs(model, side.history, side.pairs.users, side.pairs.items, as_unknown=as_unknown, own_rows=own_rows)
        out.update({k: v for k, v in pred.items() if k in own})
    if "profile" in own and "profile" in model.heads and side.profile_users is not None and len(side.profile_users):
        proba = profile_probabilities(model, side.history, side.profile_users, as_unknown=as_unknown, own_rows=own_rows)
        out.update({f"profile.{name}": p for name, p in proba.items()})
    if "next_item" in own and "next_item" in model.heads and side.next_users is not None and len(side.next_users):
        if len(side.next_users) * model.item_tower.n_items <= MAX_KEPT_SCORES:
            out["next_item"] = score_users(model, side.history, side.next_users)
        else:
            out["next_item.ranks"] = next_item_ranks(
                model, side.history, side.next_users, side.next_items, side.excluded(side.next_users)
            )
    return out
