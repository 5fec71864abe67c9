"""A closed-form item-to-item prior joined to the next-item scores.

EASE (Steck, WWW 2019): a linear map from the set of items a user took to a score per item,
``X → X·B`` with ``B = I − P·diag(1/diag P)``, ``P = (XᵀX + λI)⁻¹`` over the training histories
(``diag B = 0``). It ranks by which items go with the whole history, where the sequence model
ranks by the recent items' order; the two err differently, so a blend of both ranks better
than either (MovieLens-100K, protocol B: docs/model.md).

A second prior of the same form can join beside it: the transition map (what tends to come
next after the recent items; train/item_item_solves.py). Each item keeps only its ``neighbors``
strongest incoming weights, so the stored prior grows with the catalogue, not with its square.
The blend is ``(1 − Σ s_k)·z(model) + Σ s_k·z(prior_k)``, each part standardised per user over
the catalogue so that a share means the same whatever the scales. A history item counts
``decay^k`` for k steps back. ``λ``, the decay and ``s`` are chosen on validation
(train/item_prior_fit.py).
"""

from __future__ import annotations

import warnings

import numpy as np
import torch
from torch import nn

from ..standardise import STD_FLOOR



class ItemPrior(nn.Module):
    def __init__(self, n_items: int, neighbors: int):
        super().__init__()
        self.n_items = n_items
        # Row j: the items whose presence in a history adds to item j's score, and by how much.
        self.register_buffer("sources", torch.zeros(n_items, neighbors, dtype=torch.int32))
        self.register_buffer("weights", torch.zeros(n_items, neighbors))
        self.register_buffer("share", torch.tensor(0.0))
        # An item taken k steps before the history's end counts decay**k (its latest time):
        # 1 reads the history as a set, as EASE's fit does; below 1 leans on the recent items.
        self.register_buffer("decay", torch.tensor(1.0))
        self._matrix: torch.Tensor | None = None  # the sparse (target × source) map, built once

    def set(self, sources: np.ndarray, weights: np.ndarray, share: float, decay: float = 1.0) -> None:
        self.sources.copy_(torch.from_numpy(sources).to(torch.int32))
        self.weights.copy_(torch.from_numpy(weights).float())
        self.share.fill_(float(share))
        self.decay.fill_(float(decay))
        self._matrix = None

    def _load_from_state_dict(self, *args, **kwargs) -> None:  # type: ignore[no-untyped-def]
        super()._load_from_state_dict(*args, **kwargs)
        self._matrix = None  # loaded weights: rebuild the sparse map from them

    def __getstate__(self) -> dict[str, object]:
        # Pickled (a trained model sent back from a worker process, a deep copy) without the
        # cached map: it is rebuilt in milliseconds, and sending a sparse CSR tensor between
        # processes makes torch warn about unchecked sparse invariants.
        return {**self.__dict__, "_matrix": None}

    def matrix(self) -> torch.Tensor:
        if self._matrix is None:
            n, k = self.sources.shape
            rows = torch.arange(n).repeat_interleave(k)
            index = torch.stack([rows, self.sources.reshape(-1).long()])
            coo = torch.sparse_coo_tensor(index, self.weights.reshape(-1), (n, n), check_invariants=True).coalesce()
            with warnings.catch_warnings():  # "CSR support is in beta": products with it are 10x COO's speed
                warnings.simplefilter("ignore", UserWarning)
                self._matrix = coo.to_sparse_csr()
        return self._matrix

    def history_scores(self, items: torch.Tensor, mask: torch.Tensor, ends: torch.Tensor | None = None) -> torch.Tensor:
        """(B, I) prior scores of (B, L) histories, oldest item first. ``mask``: real
        positions; ``ends``: each history's last position (default: right-padded, the last
        real one). An item taken twice counts once, at its latest position."""
        if ends is None:
            ends = mask.sum(1) - 1
        age = (ends.unsqueeze(1) - torch.arange(items.shape[1])).clamp(min=0)
        weight = torch.where(mask, self.decay ** age.float(), torch.zeros(()))
        taken = torch.zeros(items.shape[0], self.n_items).scatter_reduce_(1, items, weight, reduce="amax")
        # Row-major again: the transposed product is column-major, and every blend that adds it to
        # row-major scores then reads memory by strides (twice as slow at 5,000 x 12,000).
        return (self.matrix() @ taken.T).T.contiguous()


def standardised(scores: torch.Tensor) -> torch.Tensor:
    """Each row to mean 0 and standard deviation 1 (a constant row, e.g. an empty history's
    prior, to 0)."""
    centred = scores - scores.mean(-1, keepdim=True)
    return centred / scores.std(-1, keepdim=True).clamp(min=STD_FLOOR)


def blend_scores(model_scores: torch.Tensor, prior_scores: torch.Tensor, share: float) -> torch.Tensor:
    """``(1 − share)·z(model) + share·z(prior)``: :func:`blend_parts` with one prior."""
    return blend_parts(model_scores, [(prior_scores, share)])


def blend_parts(model_scores: torch.Tensor, parts: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """``(1 − Σ s_k)·z(model) + Σ s_k·z(part_k)`` for ``parts`` of (prior scores, share s_k),
    each :func:`standardised` per row so that a share means the same whatever the scales."""
    return blend_standardised(standardised(model_scores), [(standardised(scores), share) for scores, share in parts])


def blend_standardised(model_z: torch.Tensor, parts: list[tuple[torch.Tensor, float]]) -> torch.Tensor:
    """:func:`blend_parts` of parts already standardised (the priors' fit standardises each
    part once and blends it at every share of its grids)."""
    out = (1.0 - sum(share for _, share in parts)) * model_z
    for z, share in parts:
        out = out + share * z
    return out
