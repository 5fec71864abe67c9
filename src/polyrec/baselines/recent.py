"""Where users take items again: their own latest items first, then the most popular."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

RECENCY_DECAY = 0.9  # fixed, not chosen: a history item counts decay^k, k steps before the end


def recent_then_popular(
    histories: Sequence[np.ndarray], counts: np.ndarray, decay: float = RECENCY_DECAY
) -> np.ndarray:
    """(len(histories), I) scores: every item of a history (in time order) above every other
    item, history items by their summed ``decay^k`` (k steps before the end: recent and
    frequent first), the rest by their training ``counts``. The "buy it again" baseline that
    ``data.repeat_items`` runs are printed beside."""
    counts = np.asarray(counts, dtype=np.float64)
    scores = np.tile(counts / (counts.max(initial=0.0) + 1.0), (len(histories), 1))  # in [0, 1)
    for row, items in enumerate(histories):
        items = np.asarray(items, dtype=np.int64)
        if len(items):
            np.add.at(scores[row], items, 1.0 + decay ** np.arange(len(items) - 1, -1, -1, dtype=np.float64))
    return scores
