"""Item vectors: an ID embedding plus a projection of the item's language-model vector."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def _refresh_after_load(tower: "ItemTower", _incompatible_keys: object) -> None:
    tower._refresh_text_stats()


class ItemTower(nn.Module):
    """``e_i = id_i + W·text_i``.

    The text part lets an item never seen in training (or hidden by ID dropout) still get a
    meaningful vector. ID embeddings start near zero so that, before training, an item is
    described by its text alone. ``ids=False`` leaves them out: ``e_i = W·text_i``.
    ``id_rank`` (0 < r < dim) makes them low-rank, ``id_i = U·v_i`` with an r-wide ``v_i``: a
    small model keeps every item's own vector at r / dim of the parameters.
    """

    def __init__(
        self,
        n_items: int,
        dim: int,
        text_vectors: torch.Tensor | None,
        id_dropout: float = 0.0,
        ids: bool = True,
        id_rank: int = 0,
    ):
        super().__init__()
        if not ids and text_vectors is None:
            raise ValueError("an item tower without ID embeddings needs text vectors (model.item_ids: false, text off)")
        self.n_items = n_items
        self.id_dropout = id_dropout
        self.ids: nn.Embedding | None = None
        self.id_up: nn.Linear | None = None
        if ids:
            low_rank = 0 < id_rank < dim
            self.ids = nn.Embedding(n_items, id_rank if low_rank else dim)
            nn.init.normal_(self.ids.weight, std=0.01)
            if low_rank:
                self.id_up = nn.Linear(id_rank, dim, bias=False)
        if text_vectors is not None:
            self.register_buffer("text", text_vectors.float(), persistent=True)  # (I, D_text), frozen
            self.text_proj: nn.Linear | None = nn.Linear(text_vectors.shape[1], dim)
            # Per-dimension catalogue mean and std of the text vectors (what the profile head's
            # text part standardises by): derived, not saved, and refreshed when a load fills `text`.
            self.register_buffer("text_mean", torch.zeros(text_vectors.shape[1]), persistent=False)
            self.register_buffer("text_std", torch.ones(text_vectors.shape[1]), persistent=False)
            self._refresh_text_stats()
            self.register_load_state_dict_post_hook(_refresh_after_load)
        else:
            self.text = None
            self.text_proj = None
        self.norm = nn.LayerNorm(dim)
        # Within ``catalogue_text_once``: [the catalogue's projected text, made at first need].
        self._catalogue_text: list[torch.Tensor] | None = None

    @torch.no_grad()
    def _refresh_text_stats(self) -> None:
        self.text_mean.copy_(self.text.mean(0))
        self.text_std.copy_(self.text.std(0).clamp(min=1e-6))

    def id_vectors(self, items: torch.Tensor) -> torch.Tensor:
        """(...,) item indices → (..., d) ID parts (widened where ``id_rank`` narrows them)."""
        vec = self.ids(items)
        return vec if self.id_up is None else self.id_up(vec)

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(...,) item indices → (..., d) vectors."""
        vec = None
        if self.ids is not None:
            vec = self.id_vectors(items)
            if self.training and self.id_dropout > 0 and self.text_proj is not None:
                keep = (torch.rand(items.shape, device=items.device) >= self.id_dropout).unsqueeze(-1)
                vec = vec * keep
        if self.text_proj is not None:
            text_vec = self.text_part(items)
            vec = text_vec if vec is None else vec + text_vec
        return self.norm(vec)

    def text_part(self, items: torch.Tensor) -> torch.Tensor:
        """(...,) item indices → (..., d) projections of their language-model vectors."""
        if self._catalogue_text is None:
            return self.text_proj(self.text[items])
        if not self._catalogue_text:
            self._catalogue_text.append(self.text_proj(self.text))
        return self._catalogue_text[0][items]

    @contextmanager
    def catalogue_text_once(self) -> Iterator[None]:
        """Within: every text part is a row of one projection of the whole catalogue, made at
        the first need and kept to the end (gradients flow back through all its uses).

        For a pass that projects the catalogue anyway (a training step of next item, whose
        scores read every item's vector): the history and target items then take rows of it
        instead of projecting their own copies of the text, which spares a (batch × history)
        × text-width product and a gather of as many text vectors. The same values up to
        float rounding; the ID part and its dropout are untouched."""
        outer = self._catalogue_text
        if outer is None:
            self._catalogue_text = []
        try:
            yield
        finally:
            self._catalogue_text = outer

    def all_items(self) -> torch.Tensor:
        """(I, d) vectors of the whole catalogue."""
        return self.forward(torch.arange(self.n_items, device=self.norm.weight.device))
