"""The best ``k`` of a row of scores: what every recommendation path returns.

One rule everywhere (``Recommender.recommend``, batch recommendations, the serving blend):
best first, ties in item order, and an item scored −inf (excluded) or NaN is never shown, even where
fewer than ``k`` remain. A partial sort finds the k-th best score; only the items at or above
it are sorted, so a row of 100,000 items costs a partition, not a whole sort.
"""

from __future__ import annotations

import numpy as np


def top_indices(scores: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best finite scores of ``scores`` (1-d), best first, ties in index order."""
    n = len(scores)
    k = min(k, n)
    if k <= 0:
        return np.zeros(0, dtype=np.int64)
    if np.isnan(scores).any():  # a NaN would sort above every score: it is never shown instead
        scores = np.where(np.isnan(scores), -np.inf, scores)
    threshold = np.partition(scores, n - k)[n - k]  # the k-th best
    candidates = np.flatnonzero(scores >= threshold)  # ties at the threshold included, in index order
    top = candidates[np.argsort(-scores[candidates], kind="stable")][:k]
    return top[np.isfinite(scores[top])]


def top_k_allowed(
    scores: np.ndarray, k: int, exclude: np.ndarray | None = None, allowed: np.ndarray | None = None
) -> tuple[np.ndarray, np.ndarray]:
    """Ids and scores of the best ``k`` items of a whole-catalogue row: ``exclude`` (item
    indices) never shown, and only items where ``allowed`` (a mask) is True, where given."""
    scores = scores.astype(np.float64, copy=True)
    if exclude is not None and len(exclude):
        scores[exclude] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    top = top_indices(scores, k)
    return top, scores[top]
