"""Task `next_item`: which item a user takes next (softmax over the catalogue; HR/NDCG/MRR)."""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

NAME = "next_item"
MAIN_METRIC = "ndcg@10"


class NextItemHead(nn.Module):
    """Scores = user state · item vectors + an item bias (how often an item is taken next)."""

    def __init__(self, dim: int, n_items: int):
        super().__init__()
        self.query = nn.Linear(dim, dim)
        self.item_bias = nn.Parameter(torch.zeros(n_items))

    def forward(self, states: torch.Tensor, item_vecs: torch.Tensor) -> torch.Tensor:
        """(..., d) states, (I, d) catalogue → (..., I) scores."""
        # One fused product-plus-bias (the values of ``q @ item_vecs.T + bias``, bit for bit):
        # over the whole catalogue at every position, the separate addition was a pass of its own.
        return F.linear(self.query(states), item_vecs, self.item_bias)


def samples_catalogue(n_items: int, sampled_negatives: int) -> bool:
    """Whether ``train.sampled_negatives`` scores a sample of the catalogue (else all of it)."""
    return 0 < sampled_negatives < n_items


def draw_negatives(n_items: int, sampled_negatives: int, device: torch.device | None = None) -> torch.Tensor | None:
    """Shared uniform negatives for the sampled softmax; None for the full catalogue."""
    if not samples_catalogue(n_items, sampled_negatives):
        return None
    return torch.randint(0, n_items, (sampled_negatives,), device=device)


def logits(
    head: NextItemHead,
    states: torch.Tensor,  # (B, L, d): position t predicts item t+1
    next_items: torch.Tensor,  # (B, L) the item taken after each position
    valid: torch.Tensor,  # (B, L) bool: position t has a next item
    item_vecs: torch.Tensor,  # (I, d)
    history: torch.Tensor | None = None,  # (B, L) items; position t has seen history[:, :t+1]
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Full softmax: (N, I) logits of the N valid positions over the catalogue and (N,) the
    target's column; None if N = 0.

    With ``history``, items the user has already taken are masked out (−inf), as they are out
    of the ranking at evaluation: the model spends no capacity on pushing down items that are
    never candidates. For the same reason a position whose target the user took before is no
    target (:func:`fresh_targets`).
    """
    if history is not None:
        valid = valid & fresh_targets(history, next_items)
    h, target = states[valid], next_items[valid]  # (N, d), (N,)
    if h.shape[0] == 0:
        return None
    out = head(h, item_vecs)
    if history is not None:
        seen = seen_before(history, item_vecs.shape[0], states.shape[1])[valid]
        # In place: the product's backward does not read its output, and a copy of an
        # (N, catalogue) tensor was a tenth of the loss's time.
        out.masked_fill_(seen, float("-inf"))
    return out, target


def sampled_logits(
    head: NextItemHead,
    states: torch.Tensor,  # (B, L, d)
    next_items: torch.Tensor,  # (B, L)
    valid: torch.Tensor,  # (B, L) bool
    item_vectors: Callable[[torch.Tensor], torch.Tensor],  # (...,) items → (..., d), e.g. the item tower
    negatives: torch.Tensor,  # (S,) shared negatives
    history: torch.Tensor | None = None,  # (B, L) as in :func:`logits`
) -> tuple[torch.Tensor, torch.Tensor] | None:
    """Sampled softmax: (N, 1 + S) logits, column 0 the target's, then the negatives'; and
    (N,) zeros, the target's column. None if N = 0.

    Only the targets and the negatives get vectors, so a step's cost does not grow with the
    catalogue. A negative that is the target, or that the user took already (with
    ``history``), is masked out as the full softmax masks it, and so is a position whose
    target the user took before.
    """
    if history is not None:
        valid = valid & fresh_targets(history, next_items)
    h, target = states[valid], next_items[valid]
    if h.shape[0] == 0:
        return None
    q = head.query(h)
    pos = (q * item_vectors(target)).sum(-1) + head.item_bias[target]
    neg = F.linear(q, item_vectors(negatives), head.item_bias[negatives])
    masked = negatives.unsqueeze(0) == target.unsqueeze(1)
    if history is not None:
        masked |= negatives_seen_before(history, negatives, states.shape[1])[valid]
    neg = neg.masked_fill(masked, float("-inf"))
    return torch.cat([pos.unsqueeze(1), neg], dim=1), torch.zeros_like(target)


def fresh_targets(history: torch.Tensor, next_items: torch.Tensor) -> torch.Tensor:
    """(B, L) histories and (B, T) next items → (B, T) bool: position t's next item is not
    among history[:, :t+1]. A re-consumed item is never a candidate in the ranking
    (eval/ranking.py), so it is no target in training: kept, it would teach the model that
    scoring the history high pays."""
    T, L = next_items.shape[1], history.shape[1]
    earlier = torch.ones(T, L, dtype=torch.bool, device=history.device).tril()  # [t, j]: j <= t
    return ~((next_items.unsqueeze(2) == history.unsqueeze(1)) & earlier).any(2)


def negatives_seen_before(history: torch.Tensor, negatives: torch.Tensor, length: int) -> torch.Tensor:
    """(B, L) right-padded histories, (S,) items → (B, ``length``, S) bool: negative s is among
    history[:, :t+1]. :func:`seen_before` restricted to the sampled columns, without an
    (B, L, catalogue) tensor."""
    B, L = history.shape
    positions = torch.arange(L, device=history.device).view(1, L, 1)
    first = torch.where(history.unsqueeze(-1) == negatives, positions, L).amin(1)  # (B, S)
    return first.unsqueeze(1) <= torch.arange(length, device=history.device).view(1, -1, 1)


def seen_before(history: torch.Tensor, n_items: int, length: int) -> torch.Tensor:
    """(B, L) right-padded histories → (B, ``length``, I) bool: item i is among history[:, :t+1].

    From each item's first position (padding comes after every real position, so it never
    marks a real one): one comparison instead of a cumulative sum over a one-hot tensor.
    """
    B, L = history.shape
    positions = torch.arange(L, device=history.device).expand(B, L)
    first = torch.full((B, n_items), L, dtype=torch.long, device=history.device)
    first = first.scatter_reduce(1, history, positions, reduce="amin")
    return first.unsqueeze(1) <= torch.arange(length, device=history.device).view(1, -1, 1)


def loss(scores: tuple[torch.Tensor, torch.Tensor]) -> torch.Tensor:
    """Cross-entropy of the next item over :func:`logits`' columns."""
    out, target = scores
    return F.cross_entropy(out, target)
