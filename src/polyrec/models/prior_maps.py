"""A next-item prior's parts as sparse maps over item indices, outside the model.

``ItemPrior.history_scores`` reads a history in torch, for batches of padded histories. To
serve (serve/blended.py) and to explain (explain.py) a known user's scores, the same sums are
wanted for one user at a time, or for every user at once, without the model: each history
item's weight (``decay ** steps back``, at its latest position) times the prior's map with
sources as rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from .item_prior import STD_FLOOR, ItemPrior


def decay_weights(steps_back: np.ndarray, decay: float) -> np.ndarray:
    """``decay ** k`` for an item k steps before its history's end (in float32, as the model)."""
    return np.float32(decay) ** steps_back.astype(np.float32)


def latest_positions(histories: list[np.ndarray], max_history: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(user, item, steps back) of each distinct item in each history's last ``max_history``
    items (oldest first, as the model reads them), at its latest position: where
    ``ItemPrior.history_scores`` reads an item. One pass of numpy over all the histories
    (10,000 users in 50 ms: a reload runs beside live requests)."""
    kept = [np.asarray(h, dtype=np.int64)[-max_history:] for h in histories]
    lengths = np.array([len(h) for h in kept], dtype=np.int64)
    users = np.repeat(np.arange(len(kept)), lengths)
    items = np.concatenate(kept) if kept else np.zeros(0, np.int64)
    ends = np.cumsum(lengths)
    steps_back = np.repeat(ends, lengths) - 1 - np.arange(len(items))
    order = np.lexsort((steps_back, items, users))  # by user, then item, the latest first
    users, items, steps_back = users[order], items[order], steps_back[order]
    first = np.ones(len(order), bool)
    first[1:] = (users[1:] != users[:-1]) | (items[1:] != items[:-1])
    return users[first], items[first], steps_back[first]


def by_source(prior: ItemPrior) -> sp.csr_matrix:
    """(I, I) the prior's map with sources as rows: ``weights @ by_source`` is ``history_scores``."""
    n, k = prior.sources.shape
    # Rows are padded with zero weights; they are left out, in torch, which releases the
    # interpreter while it reads the saved arrays (a reload runs beside live requests).
    stored = torch.nonzero(prior.weights.reshape(-1)).squeeze(1)
    weights = prior.weights.reshape(-1)[stored].numpy()
    sources = prior.sources.reshape(-1)[stored].numpy()
    coo = sp.coo_matrix((weights, (sources, (stored // k).numpy())), shape=(n, n))
    return coo.tocsr()  # duplicates sum, as the model's coalesced map does


def catalogue_spread(scores: np.ndarray) -> tuple[float, float]:
    """Mean and standard deviation (unbiased, as torch's ``std``, floored as
    ``item_prior.standardised``) of one user's scores over the catalogue."""
    return float(scores.mean()), max(float(scores.std(ddof=1)), STD_FLOOR)


def standardised(scores: np.ndarray) -> np.ndarray:
    """``item_prior.standardised`` of one user's scores, in numpy."""
    mean, spread = catalogue_spread(scores)
    return (scores - mean) / spread
