"""Most-popular baseline: every user gets the items ranked by training interaction count."""

from __future__ import annotations

import numpy as np
from sklearn.base import BaseEstimator
from sklearn.utils.validation import check_is_fitted

from polyrec.baselines.rating import _indices


class Popularity(BaseEstimator):
    """Scores an item by how many training interactions it has, for every user alike.

    Serves as the non-personalised baseline for next-item ranking (``score_users``) and
    for CTR (``predict``: an item's count as its engagement score, for AUC).
    Follows the scikit-learn estimator contract; using it unfitted raises
    ``sklearn.exceptions.NotFittedError``.

    Learned: ``counts_`` (n_items,) int64 training interactions per item,
    ``n_users_``, ``n_items_``.
    """

    def __init__(self) -> None:
        pass

    def fit(self, users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> Popularity:
        """Count interactions from parallel arrays of shape (n,): user index, item index.

        Every row counts, so repeated interactions with an item count each time.
        """
        u = _indices(users, "users", n_users)
        i = _indices(items, "items", n_items)
        if u.size != i.size:
            raise ValueError(f"users and items differ in length: {u.size}, {i.size}")
        self.counts_ = np.bincount(i, minlength=n_items).astype(np.int64)
        self.n_users_ = int(n_users)
        self.n_items_ = int(n_items)
        return self

    def score_items(self) -> np.ndarray:
        """Popularity score of every item: shape (n_items,) float64, the training counts."""
        check_is_fitted(self)
        return self.counts_.astype(np.float64)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Score of each (user, item) pair, shape (n,) float64: the item's training count.

        Items outside the training range (e.g. -1) score 0, like unseen items.
        """
        check_is_fitted(self)
        u = _indices(users, "users")
        i = _indices(items, "items")
        if u.size != i.size:
            raise ValueError(f"users and items differ in length: {u.size}, {i.size}")
        known = (i >= 0) & (i < self.n_items_)
        out = np.zeros(i.size, dtype=np.float64)
        out[known] = self.counts_[i[known]]
        return out

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """Full-catalogue scores for ranking: shape (len(users), n_items) float64.

        Every row is the same popularity vector (a fresh, writable array, so callers may
        mask items in place).
        """
        check_is_fitted(self)
        u = _indices(users, "users")
        return np.tile(self.score_items(), (u.size, 1))
