"""The rating (or label) of each history item as a token the user encoder embeds.

Kept apart from the torch batches (sequences.py): an exported run (polyrec/export) encodes
an ad-hoc history's ratings the same way where torch is not installed.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PAD_TOKEN, NO_RATING_TOKEN = 0, 1


@dataclass(frozen=True)
class RatingTokens:
    """Maps a rating (or, in data without ratings, a 0/1 label) to an embedding index."""

    levels: tuple[float, ...]  # rating values (bin centres) that get their own token
    labels_only: bool = False

    @property
    def n_tokens(self) -> int:
        return 2 + max(len(self.levels), 2)

    @classmethod
    def fit(cls, ratings: np.ndarray | None, max_levels: int, labels_only: bool = False) -> "RatingTokens":
        if ratings is None or len(ratings) == 0:
            return cls((), labels_only)
        values = np.unique(ratings)
        if len(values) > max_levels:  # e.g. continuous scores: quantile bin centres
            values = np.unique(np.quantile(ratings, (np.arange(max_levels) + 0.5) / max_levels))
        return cls(tuple(float(v) for v in values), labels_only)

    def encode(self, ratings: np.ndarray, labels: np.ndarray) -> np.ndarray:
        tokens = np.full(len(ratings), NO_RATING_TOKEN, dtype=np.int64)
        if self.levels:
            known = ~np.isnan(ratings)
            lv = np.asarray(self.levels)
            tokens[known] = 2 + np.abs(ratings[known, None] - lv[None, :]).argmin(1)
        elif self.labels_only:
            known = ~np.isnan(labels)
            tokens[known] = 2 + labels[known].astype(np.int64)
        return tokens

    def encode_values(self, values: np.ndarray) -> np.ndarray:
        """Tokens of an ad-hoc history's values (NaN: none): its ratings, or in a run on
        labels without ratings its 0/1 labels, each read as the data's were."""
        values = np.asarray(values, dtype=np.float64)
        if self.labels_only and not np.isin(values[~np.isnan(values)], (0.0, 1.0)).all():
            raise ValueError("this run's data had 0/1 labels and no ratings: a history's values must be 0, 1 or missing")
        return self.encode(values, values)  # the labels are read only in a label-only run
