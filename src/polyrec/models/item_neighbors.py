"""A neighbourhood view of a pair: how the user rated the items most like the target item.

Item-based kNN on baseline residuals (Koren, KDD 2008, "kNNBaseline"; Sarwar et al., WWW
2001). Each training rating becomes a residual ``r̃_uj = r_uj − (μ + b_u + b_j)`` from
regularised user and item biases; two items' similarity is the shrunk Pearson correlation of
their residuals over the users who rated both, ``ρ_ij · n_ij / (n_ij + shrink)``; and a pair
(u, i) reads the similarity-weighted mean of u's residuals on the ``k`` items most similar to
i among those u rated. Nothing here is learned by gradient: it is counted from the training
ratings in one pass.

A second view of the same form takes its neighbours from the language model instead: the
items whose text vectors are nearest the target's (cosine), which finds neighbours for items
too rarely rated to correlate with anything.

Why beside the autoencoders: they encode an item through everyone who rated it; this view
compares the target with each of the user's own items directly, the classic neighbourhood
model that blends of latent-factor models gain from. Joined to the ctr logit like an
engagement view (its value times a weight set on the validation pairs), each raised
MovieLens-100K's validation ctr AUC on every seed (protocol A, seeds 0-2; docs/model.md).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn

from .engagement_autoencoder import EngagementLogit

BIAS_ITERATIONS = 10
USER_BIAS_L2 = 15.0  # Koren's regularisers for the biases (in ratings counted)
ITEM_BIAS_L2 = 10.0
SHRINK = 100.0  # similarity shrinkage: n_ij / (n_ij + SHRINK), n_ij the users who rated both
CHUNK_CELLS = 4_000_000  # item-item similarities computed this many cells at a time


class ItemNeighbors(EngagementLogit, nn.Module):
    """``forward(users, items)`` → the neighbourhood residual of each pair (0 where the user
    rated none of the item's kept neighbours, or is not a training user).

    Each item keeps its ``kept`` most similar items (positive similarities only), so the
    stored lists grow with the catalogue, not with its square; a pair averages over the
    first ``k`` of them the user rated."""

    def __init__(self, n_users: int, n_items: int, n_ratings: int, k: int, kept: int):
        super().__init__()
        self.n_users, self.n_items, self.k = n_users, n_items, k
        kept = max(1, min(kept, n_items - 1))
        self.register_buffer("neighbors", torch.zeros(n_items, kept, dtype=torch.long))
        self.register_buffer("similarity", torch.zeros(n_items, kept))  # 0: no neighbour
        # The training residuals, keyed user × n_items + item and sorted by key, for lookups.
        self.register_buffer("keys", torch.zeros(n_ratings, dtype=torch.long))
        self.register_buffer("residual", torch.zeros(n_ratings))
        self.register_buffer("weight", torch.tensor(0.0))  # its share of the ctr logit
        # The baseline's mean and item biases, from which a new user's residuals are counted
        # (``folded``); not kept in a model saved before.
        self.register_buffer("baseline_mean", torch.tensor(0.0))
        self.register_buffer("item_baseline", torch.zeros(n_items))
        self.register_buffer("baseline_kept", torch.tensor(False))

    def set_baseline(self, mean: float, item_bias: np.ndarray) -> None:
        self.baseline_mean.fill_(mean)
        self.item_baseline.copy_(torch.from_numpy(item_bias).float())
        self.baseline_kept.fill_(True)

    def new_users_residuals(self, items: torch.Tensor, ratings: torch.Tensor) -> torch.Tensor | None:
        """(B, I) the baseline residuals of (B, L) histories of users it was not trained with
        over the catalogue, NaN where a user rated nothing (an item beyond the catalogue, or a
        missing rating, counts nothing; an item rated twice, its latest rating). The user's bias
        is the one the baseline's last step would give them, the item biases held. None: no
        baseline kept."""
        if not bool(self.baseline_kept):
            return None
        B = items.shape[0]
        rated = ~torch.isnan(ratings) & (items < self.n_items)
        at = torch.where(rated, items, torch.zeros_like(items))
        deviation = torch.where(rated, ratings - self.baseline_mean - self.item_baseline[at], torch.zeros_like(ratings))
        user_bias = _user_bias(deviation.sum(1, keepdim=True), rated.sum(1, keepdim=True))
        out = torch.full((B, self.n_items), float("nan"))
        for b in range(B):  # in order: a later rating of an item replaces an earlier one
            out[b, at[b][rated[b]]] = (deviation[b] - user_bias[b])[rated[b]]
        return out

    def folded(self, residuals: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, T) this view's value of (B, T) ``items`` for users given by their (B, I)
        ``residuals`` (``new_users_residuals``): as ``forward`` reads a trained user's."""
        neighbors, similarity = self.neighbors[items], self.similarity[items]  # (B, T, kept)
        own = torch.gather(residuals.unsqueeze(1).expand(-1, items.shape[1], -1), 2, neighbors)
        return self._neighbourhood_mean(similarity, ~torch.isnan(own), torch.nan_to_num(own))

    def set_ratings(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, item_vectors: np.ndarray | None = None
    ) -> None:
        """Count biases, residuals and neighbour lists from the training side's ratings; with
        ``item_vectors`` (I, D), neighbours are the items nearest in them (cosine) instead."""
        mean, b_user, b_item = baseline(users, items, ratings, self.n_users, self.n_items)
        self.set_baseline(mean, b_item)
        self.set_residuals(users, items, ratings - (mean + b_user[users] + b_item[items]), item_vectors)

    def set_residuals(
        self, users: np.ndarray, items: np.ndarray, residual: np.ndarray, item_vectors: np.ndarray | None = None
    ) -> None:
        """``set_ratings`` from ``baseline_residuals`` already counted: both views read the same."""
        keys = users.astype(np.int64) * self.n_items + items.astype(np.int64)
        order = np.argsort(keys)
        self.keys.copy_(torch.from_numpy(keys[order]))
        self.residual.copy_(torch.from_numpy(residual[order]).float())
        if item_vectors is None:
            rows = _rating_similarity(users, items, residual, self.n_users, self.n_items)
        else:
            rows = _text_similarity(item_vectors)
        neighbors, similarity = _top_neighbors(rows, self.n_items, self.neighbors.shape[1])
        self.neighbors.copy_(torch.from_numpy(neighbors))
        self.similarity.copy_(torch.from_numpy(similarity).float())

    def forward(self, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        """Any equal shapes of users and items. ``own`` is accepted for the engagement views'
        interface and not needed: an item is never its own neighbour."""
        shape = users.shape
        users, items = users.reshape(-1), items.reshape(-1)
        neighbors, similarity = self.neighbors[items], self.similarity[items]  # (P, kept)
        keys = users.unsqueeze(-1) * self.n_items + neighbors
        at = torch.searchsorted(self.keys, keys).clamp(max=max(len(self.keys) - 1, 0))
        rated = (self.keys[at] == keys) & (users < self.n_users).unsqueeze(-1)
        return self._neighbourhood_mean(similarity, rated, self.residual[at]).reshape(shape)

    def _neighbourhood_mean(self, similarity: torch.Tensor, rated: torch.Tensor, residuals: torch.Tensor) -> torch.Tensor:
        """(...,) the similarity-weighted mean of the user's ``residuals`` on the ``k`` most
        similar of an item's kept neighbours that they ``rated`` (all (..., kept)); 0 where none."""
        rated = rated & (similarity > 0)
        rated &= rated.cumsum(-1) <= self.k  # the k most similar of those the user rated
        w = similarity * rated
        total = (w * residuals).sum(-1)
        mass = w.sum(-1)
        return torch.where(mass > 0, total / mass.clamp(min=1e-12), torch.zeros_like(total))


def baseline_residuals(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int) -> np.ndarray:
    """Each training rating minus its baseline, what the kNN views average."""
    mean, b_user, b_item = baseline(users, items, ratings, n_users, n_items)
    return ratings - (mean + b_user[users] + b_item[items])


def baseline(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int) -> tuple[float, np.ndarray, np.ndarray]:
    """``μ``, ``b_u`` and ``b_i`` of the baseline ``μ + b_u + b_i``, the biases fitted by
    alternating ridge steps (the users' last)."""
    mean = float(ratings.mean())
    b_user, b_item = np.zeros(n_users), np.zeros(n_items)
    per_user = np.bincount(users, minlength=n_users)
    per_item = np.bincount(items, minlength=n_items)
    for _ in range(BIAS_ITERATIONS):
        b_item = np.bincount(items, ratings - mean - b_user[users], n_items) / (ITEM_BIAS_L2 + per_item)
        b_user = _user_bias(np.bincount(users, ratings - mean - b_item[items], n_users), per_user)
    return mean, b_user, b_item


def _user_bias(deviation: Any, count: Any) -> Any:
    """A user's bias from the sum of their ratings' deviations from ``μ + b_i`` and their
    count, shrunk towards 0 (arrays or tensors alike: training's and a new user's)."""
    return deviation / (USER_BIAS_L2 + count)


def _rating_similarity(
    users: np.ndarray, items: np.ndarray, residual: np.ndarray, n_users: int, n_items: int
) -> Callable[[np.ndarray], np.ndarray]:
    """``rows(block)`` → the shrunk Pearson correlations of the residuals of the items in
    ``block`` with every item, over the users who rated both."""
    shape = (n_users, n_items)
    r = sp.csc_matrix((residual, (users, items)), shape=shape)
    r2 = r.multiply(r).tocsc()
    rated = sp.csc_matrix((np.ones(len(users)), (users, items)), shape=shape)

    def rows(block: np.ndarray) -> np.ndarray:
        cross = (r[:, block].T @ r).toarray()
        spread = np.sqrt((r2[:, block].T @ rated).toarray() * (rated[:, block].T @ r2).toarray())
        common = (rated[:, block].T @ rated).toarray()
        return np.divide(cross, spread, out=np.zeros_like(cross), where=spread > 0) * common / (common + SHRINK)

    return rows


def _text_similarity(vectors: np.ndarray) -> Callable[[np.ndarray], np.ndarray]:
    """``rows(block)`` → the cosine similarities of the items in ``block`` with every item."""
    unit = vectors / np.maximum(np.linalg.norm(vectors, axis=1, keepdims=True), 1e-12)
    return lambda block: unit[block] @ unit.T


def _top_neighbors(rows: Callable[[np.ndarray], np.ndarray], n_items: int, kept: int) -> tuple[np.ndarray, np.ndarray]:
    """Each item's ``kept`` most similar other items by ``rows``, most similar first, and
    their similarities (0 past the positive ones), computed a block of items at a time."""
    neighbors = np.zeros((n_items, kept), dtype=np.int64)
    similarity = np.zeros((n_items, kept))
    step = max(1, CHUNK_CELLS // max(n_items, 1))
    for start in range(0, n_items, step):
        block = np.arange(start, min(start + step, n_items))
        s = np.array(rows(block), dtype=np.float64)
        s[np.arange(len(block)), block] = 0.0  # an item is not its own neighbour
        top = np.argpartition(-s, kept - 1, axis=1)[:, :kept]
        values = np.take_along_axis(s, top, axis=1)
        order = np.argsort(-values, axis=1)
        neighbors[block] = np.take_along_axis(top, order, axis=1)
        similarity[block] = np.clip(np.take_along_axis(values, order, axis=1), 0.0, None)
    return neighbors, similarity
