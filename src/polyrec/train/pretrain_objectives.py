"""Self-supervised objectives on behaviour alone: one small function per objective.

Every objective reads item indices only. Each history token is the item vector plus the
*neutral* rating token (``NO_RATING_TOKEN``), so no rating, label or attribute can enter.

The user encoder is causal (state t sees inputs 0..t). Masked item modelling therefore
replaces the input at a masked position t by a learnable [MASK] vector and predicts item t
from state t: that state has seen the items before t (and the mask, not the item), never
item t itself nor anything after it. No bidirectional pass is needed, and the encoder
pretrained is exactly the one fine-tuning uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from ..models.polyrec import PolyRecModel
from .rating_tokens import NO_RATING_TOKEN, PAD_TOKEN


class PretrainExtras(nn.Module):
    """Parameters that exist for pretraining only (not in the fine-tuned model): the [MASK]
    input vector."""

    def __init__(self, dim: int):
        super().__init__()
        self.mask_vec = nn.Parameter(torch.randn(dim) * 0.02)


def sample_mask(mask: torch.Tensor, prob: float, gen: torch.Generator) -> torch.Tensor:
    """(B, L) bool: each real position (``mask``) independently masked with probability ``prob``."""
    return (torch.rand(mask.shape, generator=gen) < prob) & mask


def encode_items(
    model: PolyRecModel, extras: PretrainExtras, items: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor
) -> torch.Tensor:
    """(B, L) items, real positions ``mask``, [MASK]ed positions ``masked`` → (B, L, d) causal states."""
    vecs = model.item_tower(items)  # (B, L, d)
    vecs = torch.where(masked.unsqueeze(-1), extras.mask_vec.expand_as(vecs), vecs)
    neutral = torch.where(mask, NO_RATING_TOKEN, PAD_TOKEN)  # (B, L): no rating is ever read
    return model.user_encoder(model.user_encoder.tokens(vecs, neutral))


def last_states(states: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """(B, L, d) → (B, d) the state after each whole history."""
    return states[torch.arange(len(lengths)), (lengths - 1).clamp(min=0)]


def info_nce(a: torch.Tensor, b: torch.Tensor, temperature: float) -> torch.Tensor:
    """Symmetric InfoNCE: row i of ``a`` (N, d) matches row i of ``b``; the other rows of the
    batch are the negatives."""
    a, b = F.normalize(a, dim=-1), F.normalize(b, dim=-1)
    logits = a @ b.T / temperature  # (N, N)
    target = torch.arange(len(a))
    return 0.5 * (F.cross_entropy(logits, target) + F.cross_entropy(logits.T, target))


def mim_loss(
    model: PolyRecModel, extras: PretrainExtras, items: torch.Tensor, mask: torch.Tensor, masked: torch.Tensor
) -> torch.Tensor:
    """Masked item modelling: cross-entropy of each masked item over the whole catalogue,
    scored by the state at its own (masked) position."""
    states = encode_items(model, extras, items, mask, masked)
    logits = states[masked] @ model.item_tower.all_items().T  # (M, I)
    return F.cross_entropy(logits, items[masked])


def contrastive_loss(
    model: PolyRecModel,
    extras: PretrainExtras,
    views: tuple[tuple[torch.Tensor, ...], tuple[torch.Tensor, ...]],
    temperature: float,
) -> torch.Tensor:
    """Sequence contrastive learning: two augmented views of each history (``augment_views``),
    InfoNCE between their last states, the batch's other users as negatives."""
    last = [last_states(encode_items(model, extras, *v[:3]), v[3]) for v in views]
    return info_nce(last[0], last[1], temperature)


def text_id_loss(
    model: PolyRecModel, items: torch.Tensor, temperature: float, text: torch.Tensor | None = None
) -> torch.Tensor:
    """Text–ID alignment: InfoNCE between each item's ID embedding and its projected text
    vector (items: (N,) distinct indices; the other items are the negatives). ``text`` (N, D):
    the items' vectors from an encoder being adapted (default: the model's cached vectors)."""
    tower = model.item_tower
    assert tower.text_proj is not None, "text_id needs text vectors"
    return info_nce(tower.id_vectors(items), tower.text_proj(tower.text[items] if text is None else text), temperature)
