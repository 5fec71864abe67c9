"""Rating-prediction baselines: the global mean and Koren's user/item bias model.

Both follow the scikit-learn estimator contract (the constructor only stores its
arguments, ``fit`` returns ``self``, learned attributes end in ``_``, using an unfitted
model raises ``sklearn.exceptions.NotFittedError``) and take plain integer indices:
``users`` in ``0 .. n_users-1`` and ``items`` in ``0 .. n_items-1``.
"""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted


def _indices(x: np.ndarray, name: str, n: int | None = None) -> np.ndarray:
    """``x`` as a 1-D int64 array; when ``n`` is given, every entry must lie in ``0 .. n-1``."""
    a = np.asarray(x).reshape(-1)
    if a.size and not np.issubdtype(a.dtype, np.integer):
        raise ValueError(f"{name} must be integer indices, got dtype {a.dtype}")
    a = a.astype(np.int64)
    if n is not None and a.size and (a.min() < 0 or a.max() >= n):
        raise ValueError(f"{name} must lie in 0..{n - 1}, got values in {a.min()}..{a.max()}")
    return a


def _ratings(users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> np.ndarray:
    """Ratings as finite float64, one per (user, item) pair, at least one."""
    r = np.asarray(ratings, dtype=np.float64).reshape(-1)
    if not (len(users) == len(items) == r.size):
        raise ValueError(f"users, items, ratings differ in length: {len(users)}, {len(items)}, {r.size}")
    if r.size == 0:
        raise ValueError("no training ratings")
    if not np.isfinite(r).all():
        raise ValueError("ratings contain NaN or infinity")
    return r


def _clip(pred: np.ndarray, rating_range: tuple[float, float] | None) -> np.ndarray:
    return pred if rating_range is None else np.clip(pred, rating_range[0], rating_range[1])


def _query(users: np.ndarray, items: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The user and item indices of a prediction request, as parallel arrays."""
    u = _indices(users, "users")
    i = _indices(items, "items")
    if u.size != i.size:
        raise ValueError(f"users and items differ in length: {u.size}, {i.size}")
    return u, i


def _lookup(bias: np.ndarray, idx: np.ndarray) -> np.ndarray:
    """``bias[idx]``, with 0 for indices outside the training range (e.g. -1 or new ids)."""
    known = (idx >= 0) & (idx < bias.size)
    out = np.zeros(idx.size, dtype=np.float64)
    out[known] = bias[idx[known]]
    return out


class GlobalMean(BaseEstimator):
    """Predicts the mean training rating for every (user, item) pair.

    ``rating_range``: optional (min, max) to clip predictions to (the mean already lies
    in the observed range; the argument keeps both rating baselines interchangeable).
    Learned: ``mean_`` (float), ``n_users_``, ``n_items_``.
    """

    def __init__(self, rating_range: tuple[float, float] | None = None):
        self.rating_range = rating_range

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> GlobalMean:
        """Fit on parallel arrays of shape (n,): user index, item index, rating."""
        u = _indices(users, "users", n_users)
        i = _indices(items, "items", n_items)
        r = _ratings(u, i, ratings)
        self.mean_ = float(r.mean())
        self.n_users_ = int(n_users)
        self.n_items_ = int(n_items)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, shape (n,) float64, for parallel arrays of user and item indices."""
        check_is_fitted(self)
        u, _ = _query(users, items)
        return _clip(np.full(u.size, self.mean_, dtype=np.float64), self.rating_range)


class UserItemBias(BaseEstimator):
    """Baseline predictor r_ui = mu + b_u + b_i (Koren, "Factor in the Neighbors", 2008, sec. 2.1).

    Biases are fitted by alternating regularised least squares, as Koren does: with
    b_u fixed, each b_i = sum_u (r_ui - mu - b_u) / (reg_item + n_i); then, with b_i
    fixed, each b_u = sum_i (r_ui - mu - b_i) / (reg_user + n_u); repeated ``n_iters``
    times starting from b_u = 0. Each step is the exact minimiser of the regularised
    squared error in its own block, so the loss never increases; the regularisers
    shrink the biases of rarely-rated items and rarely-rating users towards 0.
    A single pass is Koren's original recipe; a few more converge to the joint minimum.

    Users or items without training ratings, and indices outside the training range
    at prediction time (e.g. -1), get bias 0.

    Learned: ``mean_`` (mu), ``user_bias_`` (n_users,), ``item_bias_`` (n_items,).
    """

    def __init__(
        self,
        reg_item: float = 10.0,
        reg_user: float = 15.0,
        n_iters: int = 10,
        rating_range: tuple[float, float] | None = None,
    ):
        self.reg_item = reg_item
        self.reg_user = reg_user
        self.n_iters = n_iters
        self.rating_range = rating_range

    def fit(
        self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int
    ) -> UserItemBias:
        """Fit on parallel arrays of shape (n,): user index, item index, rating."""
        if self.reg_item < 0 or self.reg_user < 0 or self.n_iters < 1:
            raise ValueError("reg_item and reg_user must be >= 0 and n_iters >= 1")
        u = _indices(users, "users", n_users)
        i = _indices(items, "items", n_items)
        r = _ratings(u, i, ratings)
        mu = float(r.mean())
        n_per_user = np.bincount(u, minlength=n_users).astype(np.float64)
        n_per_item = np.bincount(i, minlength=n_items).astype(np.float64)
        # With a zero regulariser an unrated user/item would give 0 / 0; a tiny floor keeps it 0.
        item_den = np.maximum(self.reg_item + n_per_item, 1e-12)
        user_den = np.maximum(self.reg_user + n_per_user, 1e-12)
        b_u = np.zeros(n_users, dtype=np.float64)
        b_i = np.zeros(n_items, dtype=np.float64)
        for _ in range(self.n_iters):
            b_i = np.bincount(i, weights=r - mu - b_u[u], minlength=n_items) / item_den
            b_u = np.bincount(u, weights=r - mu - b_i[i], minlength=n_users) / user_den
        self.mean_ = mu
        self.user_bias_ = b_u
        self.item_bias_ = b_i
        self.n_users_ = int(n_users)
        self.n_items_ = int(n_items)
        return self

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Predicted ratings, shape (n,) float64, for parallel arrays of user and item indices."""
        check_is_fitted(self)
        u, i = _query(users, items)
        pred = self.mean_ + _lookup(self.user_bias_, u) + _lookup(self.item_bias_, i)
        return _clip(pred, self.rating_range)
