"""Serving a run whose next-item scores blend the model with item-to-item priors.

Such a score is no inner product of a user vector and an item vector (models/item_prior.py),
so no FAISS index ranks it. Running the model again for every request (the run's own
``recommend``) cost about 6 ms on MovieLens-100K, and at 100 requests/s on two cores the
queue grew to a p99 of 0.4 s (docs/results/serve.md). Yet for a known user every part of the
blend is fixed at load: the model's part is ``user_vector · item_vectors`` (the vectors the
index path serves), and a prior's part is the user's weighted history times the prior's map.
:class:`BlendedScorer` keeps both, so a request costs two small products, the per-user
standardisation and a partial sort, and gives ``recommend``'s scores to float rounding.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np
import scipy.sparse as sp

from ..models.prior_maps import PriorMap, blend_rows, decay_weights, latest_positions

if TYPE_CHECKING:
    from ..models.item_prior import ItemPrior


@dataclass(frozen=True)
class PriorPart:
    prior: PriorMap
    users: sp.csr_matrix  # (U, I): each known user's history weights (decay ** steps back)


class BlendedScorer:
    """Exact next-item scores of a run with priors, from what is fixed at load."""

    def __init__(self, item_vectors: np.ndarray, user_vectors: np.ndarray, parts: list[PriorPart], max_history: int):
        self.item_vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        self.user_vectors = user_vectors
        self.parts = parts
        self.max_history = max_history
        self.n = len(item_vectors)

    @classmethod
    def for_histories(
        cls, item_vectors: np.ndarray, user_vectors: np.ndarray, priors: Sequence[ItemPrior | PriorMap],
        histories: list[np.ndarray], max_history: int,
    ) -> "BlendedScorer":
        """``histories``: each known user's item indices, oldest first (the last ``max_history`` are read)."""
        maps = [p if isinstance(p, PriorMap) else PriorMap.of(p) for p in priors]
        positions, shape = latest_positions(histories, max_history), (len(histories), len(item_vectors))
        parts = [PriorPart(m, m.history_weights(positions, shape)) for m in maps]
        return cls(item_vectors, user_vectors, parts, max_history)

    def describe(self) -> dict[str, object]:
        return {"kind": "blend", "items": self.n}

    def _blend(self, vector: np.ndarray, prior_rows: list[sp.csr_matrix]) -> np.ndarray:
        """The vectors' scores blended with each prior's row (a test holds it equal to the model's)."""
        parts = [((row @ part.prior.by_source).toarray()[0], part.prior.share) for part, row in zip(self.parts, prior_rows)]
        return blend_rows(self.item_vectors @ vector, parts)

    def user_scores(self, user: int) -> np.ndarray:
        """(I,) a known user's scores, as the run's ``recommend`` gives them."""
        return self._blend(self.user_vectors[user], [part.users[user] for part in self.parts])

    def history_scores(self, vector: np.ndarray, items: np.ndarray) -> np.ndarray:
        """(I,) scores of an ad-hoc history: ``vector`` is its user vector (``history_vector``),
        ``items`` the catalogue indices of its items, oldest first, −1 for a new item (which
        reads as an item with no prior part)."""
        _, ids, steps_back = latest_positions([np.asarray(items, dtype=np.int64)], self.max_history)
        known = ids >= 0
        where = (np.zeros(known.sum(), dtype=np.int64), ids[known])
        rows = [sp.csr_matrix((decay_weights(steps_back[known], part.prior.decay), where), shape=(1, self.n)) for part in self.parts]
        return self._blend(vector, rows)
