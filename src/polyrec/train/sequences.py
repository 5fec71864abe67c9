"""Per-user histories built from one side of a split, and the tensors a step reads."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from ..data.splits import chronological_order
from ..data.tables import Dataset
from .rating_tokens import PAD_TOKEN, RatingTokens


@dataclass
class Histories:
    """Chronological per-user histories (lists indexed by user)."""

    items: list[np.ndarray]
    ratings: list[np.ndarray]  # float, NaN where the data has none
    labels: list[np.ndarray]  # ctr label 0/1, NaN where none
    tokens: list[np.ndarray]

    @property
    def n_users(self) -> int:
        return len(self.items)

    def lengths(self) -> np.ndarray:
        return np.array([len(x) for x in self.items])

    def flat(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(user, item, rating) of every interaction, as parallel arrays; rating NaN where none."""
        users = np.repeat(np.arange(self.n_users), self.lengths())
        if not any(len(x) for x in self.items):
            return users, np.zeros(0, dtype=np.int64), np.zeros(0)
        return users, np.concatenate(self.items), np.concatenate(self.ratings).astype(np.float64)


def ctr_labels(ds: Dataset, threshold: float | None) -> np.ndarray | None:
    """The engagement label of every interaction: the label column, else rating ≥ threshold
    (None: the data's own, ``Dataset.ctr_threshold``)."""
    if ds.has_label:
        return ds.interactions["label"].to_numpy(dtype=np.float64)
    if ds.has_rating:  # an interaction without a rating has no label either (NaN)
        ratings = ds.interactions["rating"].to_numpy(dtype=np.float64)
        return np.where(np.isnan(ratings), np.nan, (ratings >= ds.ctr_threshold(threshold)).astype(np.float64))
    return None


def build_histories(ds: Dataset, rows: np.ndarray, tokens: RatingTokens, ctr_threshold: float | None) -> Histories:
    """Histories from the interactions at ``rows`` only (one side of a split)."""
    order = chronological_order(ds)
    order = order[np.isin(order, rows)]
    inter = ds.interactions
    users = inter["user"].to_numpy()[order]
    items = inter["item"].to_numpy()[order]
    n = len(order)
    ratings = inter["rating"].to_numpy(dtype=np.float64)[order] if ds.has_rating else np.full(n, np.nan)
    lab = ctr_labels(ds, ctr_threshold)
    labels = lab[order] if lab is not None else np.full(n, np.nan)
    toks = tokens.encode(ratings, labels)
    cuts = np.searchsorted(users, np.arange(ds.n_users + 1))
    split = lambda a: [a[cuts[u] : cuts[u + 1]] for u in range(ds.n_users)]  # noqa: E731
    return Histories(split(items), split(ratings), split(labels), split(toks))


def concat_histories(a: Histories, b: Histories) -> Histories:
    """``a`` followed by ``b`` per user (protocol B: train, then the valid item)."""
    cat = lambda x, y: [np.concatenate([p, q]) for p, q in zip(x, y)]  # noqa: E731
    return Histories(cat(a.items, b.items), cat(a.ratings, b.ratings), cat(a.labels, b.labels), cat(a.tokens, b.tokens))


@dataclass
class HistoryBatch:
    """Right-padded histories of B users: (B, L) tensors."""

    users: torch.Tensor
    items: torch.Tensor
    tokens: torch.Tensor
    ratings: torch.Tensor  # NaN at padding and unrated positions
    labels: torch.Tensor
    mask: torch.Tensor  # bool, True at real positions
    lengths: torch.Tensor


def collate(
    hist: Histories,
    users: np.ndarray,
    max_len: int,
    rng: np.random.Generator | None = None,
    shuffle: bool = False,
) -> HistoryBatch:
    """Tensors for ``users``; histories longer than ``max_len`` keep their most recent items.

    With ``rng`` (training) a longer history keeps a random window of ``max_len`` consecutive
    items instead, so over the epochs every position of a long history is a target, not only
    the most recent ``max_len`` (on MovieLens-100K the last 200 leave out 14% of the targets).
    With ``shuffle`` as well (training under protocol A) each history is put in a random order
    and a random subset of ``max_len`` items is kept.
    """
    B = len(users)
    L = max(1, min(max_len, max(len(hist.items[u]) for u in users)))
    items = np.zeros((B, L), dtype=np.int64)
    tokens = np.full((B, L), PAD_TOKEN, dtype=np.int64)
    ratings = np.full((B, L), np.nan, dtype=np.float32)
    labels = np.full((B, L), np.nan, dtype=np.float32)
    lengths = np.zeros(B, dtype=np.int64)
    for b, u in enumerate(users):
        n = len(hist.items[u])
        idx = np.arange(n)
        if shuffle and rng is not None:
            idx = rng.permutation(n)[:max_len]
        elif rng is not None and n > max_len:
            start = int(rng.integers(0, n - max_len + 1))
            idx = idx[start : start + max_len]
        else:
            idx = idx[-max_len:]
        k = len(idx)
        items[b, :k] = hist.items[u][idx]
        tokens[b, :k] = hist.tokens[u][idx]
        ratings[b, :k] = hist.ratings[u][idx]
        labels[b, :k] = hist.labels[u][idx]
        lengths[b] = k
    mask = np.arange(L)[None, :] < lengths[:, None]
    t = torch.from_numpy
    return HistoryBatch(t(np.asarray(users)), t(items), t(tokens), t(ratings), t(labels), t(mask), t(lengths))


def length_bucketed_batches(
    users: np.ndarray, lengths: np.ndarray, batch_size: int, rng: np.random.Generator, pool: int = 8
) -> list[np.ndarray]:
    """Random batches of users with similar history lengths, so little compute goes to padding.

    Users are shuffled, cut into pools of ``pool`` batches, sorted by length inside a pool,
    and the resulting batches are shuffled again: batches stay random, padding stays small.
    """
    perm = rng.permutation(users)
    size = batch_size * pool
    batches: list[np.ndarray] = []
    for s in range(0, len(perm), size):
        chunk = perm[s : s + size]
        chunk = chunk[np.argsort(lengths[chunk], kind="stable")]
        batches.extend(chunk[k : k + batch_size] for k in range(0, len(chunk), batch_size))
    return [batches[k] for k in rng.permutation(len(batches))]
