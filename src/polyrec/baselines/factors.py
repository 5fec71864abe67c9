"""Classical collaborative-filtering models, all stored as one shape: biases + factors.

Every model here predicts ``mu + b_u + b_i + P[u] · Q[i]``: user/item biases alone
(``bias``), matrix factorisation for ratings (SVD and SVD++ from scikit-surprise, the
SVD++ implicit term folded into the user vector), BPR for next-item ranking (the
``implicit`` library; its item bias is a factor column) and popularity (an item bias).
Fitting goes through the libraries; what is kept is the arrays, so a fitted model saves
as one ``.npz`` file, reloads without the library, and scores a catalogue in one matmul.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from .popularity import Popularity
from .rating import UserItemBias


@dataclass
class FactorModel:
    mu: float
    user_bias: np.ndarray  # (U,)
    item_bias: np.ndarray  # (I,)
    user_factors: np.ndarray  # (U, f), f may be 0
    item_factors: np.ndarray  # (I, f)

    def predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        """Score of each (users[k], items[k]) pair."""
        dot = np.einsum("nf,nf->n", self.user_factors[users], self.item_factors[items])
        return self.mu + self.user_bias[users] + self.item_bias[items] + dot

    def score_users(self, users: np.ndarray) -> np.ndarray:
        """(len(users), I) float32 scores over the whole catalogue."""
        s = self.user_factors[users] @ self.item_factors.T + self.item_bias[None, :]
        return (s + self.user_bias[users, None] + self.mu).astype(np.float32)

    def save(self, path: Path) -> None:
        np.savez(path, mu=np.array(self.mu), user_bias=self.user_bias, item_bias=self.item_bias,
                 user_factors=self.user_factors, item_factors=self.item_factors)

    @classmethod
    def load(cls, path: Path) -> "FactorModel":
        with np.load(path) as z:
            return cls(float(z["mu"]), z["user_bias"], z["item_bias"], z["user_factors"], z["item_factors"])


def _no_factors(n: int) -> np.ndarray:
    return np.zeros((n, 0), dtype=np.float32)


def fit_bias(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int) -> FactorModel:
    est = UserItemBias().fit(users, items, ratings, n_users, n_items)
    return FactorModel(est.mean_, est.user_bias_, est.item_bias_, _no_factors(n_users), _no_factors(n_items))


def fit_popularity(users: np.ndarray, items: np.ndarray, n_users: int, n_items: int) -> FactorModel:
    counts = Popularity().fit(users, items, n_users, n_items).score_items()
    return FactorModel(0.0, np.zeros(n_users), counts, _no_factors(n_users), _no_factors(n_items))


def fit_surprise(
    kind: str, users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int,
    rating_range: tuple[float, float], seed: int,
) -> FactorModel:
    """SVD or SVD++ (``kind`` "svd" / "svdpp") with scikit-surprise's published defaults."""
    import pandas as pd
    from surprise import SVD, Dataset, Reader, SVDpp

    frame = pd.DataFrame({"u": users, "i": items, "r": ratings})
    trainset = Dataset.load_from_df(frame, Reader(rating_scale=rating_range)).build_full_trainset()
    algo = (SVDpp if kind == "svdpp" else SVD)(random_state=seed)
    algo.fit(trainset)
    f = algo.n_factors
    bu, bi = np.zeros(n_users), np.zeros(n_items)
    P, Q = np.zeros((n_users, f), dtype=np.float32), np.zeros((n_items, f), dtype=np.float32)
    for inner in range(trainset.n_users):
        raw = trainset.to_raw_uid(inner)
        bu[raw], P[raw] = algo.bu[inner], algo.pu[inner]
        if kind == "svdpp":  # the implicit-feedback term depends on the user's items only
            rated = [j for j, _ in trainset.ur[inner]]
            P[raw] += algo.yj[rated].sum(0) / np.sqrt(len(rated))
    for inner in range(trainset.n_items):
        raw = trainset.to_raw_iid(inner)
        bi[raw], Q[raw] = algo.bi[inner], algo.qi[inner]
    return FactorModel(trainset.global_mean, bu, bi, P, Q)


def fit_bpr(
    users: np.ndarray, items: np.ndarray, n_users: int, n_items: int, seed: int, threads: int = 0,
    factors: int = 64, iterations: int = 100,
) -> FactorModel:
    """Bayesian personalised ranking (Rendle et al., 2009) through ``implicit``."""
    from implicit.cpu.bpr import BayesianPersonalizedRanking

    user_items = sp.csr_matrix((np.ones(len(users), dtype=np.float32), (users, items)), shape=(n_users, n_items))
    user_items.sum_duplicates()
    user_items.data[:] = 1.0  # repeated interactions count once
    model = BayesianPersonalizedRanking(factors=factors, iterations=iterations, random_state=seed, num_threads=threads)
    model.fit(user_items, show_progress=False)
    # implicit appends a constant 1 to user factors and the item bias to item factors.
    return FactorModel(0.0, np.zeros(n_users), np.zeros(n_items), np.asarray(model.user_factors), np.asarray(model.item_factors))
