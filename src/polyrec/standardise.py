"""Standardising scores per user, in numpy: what the blends and penalties measure in.

A blend of parts on different scales (a model's logits, a prior's sums) or a penalty
"in units of a user's score spread" needs each user's scores to mean 0 and spread 1 over the
catalogue. The torch twin is ``models.item_prior.standardised``; both use the unbiased
standard deviation (torch's default) and the same floor.
"""

from __future__ import annotations

import numpy as np

STD_FLOOR = 1e-6  # a constant row (an empty history's prior) standardises to 0, not to NaN


def catalogue_spread(scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (unbiased, as torch's ``std``, floored) of one user's
    scores over the catalogue."""
    return float(scores.mean()), max(float(scores.std(ddof=1)), STD_FLOOR)


def standardised(scores: np.ndarray) -> np.ndarray:
    """``models.item_prior.standardised`` in numpy: each row (the last axis: one user's
    scores over the catalogue) to mean 0 and standard deviation 1, as :func:`catalogue_spread`."""
    mean = scores.mean(-1, keepdims=True)
    spread = np.maximum(scores.std(-1, ddof=1, keepdims=True), STD_FLOOR)
    return (scores - mean) / spread
