"""A user's interests: the categories of the items they engaged with, by share."""

from __future__ import annotations

import numpy as np
import pandas as pd

INTEREST_COLUMNS = ("genres", "categories", "category", "item_type")  # the first one present is read


def category_shares(items: pd.DataFrame, history: np.ndarray, labels: np.ndarray, top: int = 5) -> list[tuple[str, float]]:
    """The categories a user engages with most, with their share of the user's liked items.

    ``history``: the user's item indices; ``labels``: their engagement labels (1: liked;
    rating ≥ the ctr threshold, or the label column; NaN: none). Where no item is liked, every
    item of the history counts. Categories come from the first column of ``INTEREST_COLUMNS``
    in ``items`` (values split on "|" or ","); empty when there is none.
    """
    column = next((c for c in INTEREST_COLUMNS if c in items.columns), None)
    if column is None:
        return []
    liked = history[labels == 1] if np.any(labels == 1) else history
    counts: dict[str, int] = {}
    for value in items[column].to_numpy()[liked]:
        if pd.isna(value):
            continue
        for cat in str(value).replace("|", ",").split(","):
            if cat.strip():
                counts[cat.strip()] = counts.get(cat.strip(), 0) + 1
    ranked = sorted(counts.items(), key=lambda kv: (-kv[1], kv[0]))[:top]
    return [(cat, n / max(len(liked), 1)) for cat, n in ranked]
