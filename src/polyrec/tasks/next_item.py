"""Task `next_item`: which item a user takes next (softmax over the catalogue; HR/NDCG/MRR)."""

from __future__ import annotations

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
        return self.query(states) @ item_vecs.T + self.item_bias


def loss(
    head: NextItemHead,
    states: torch.Tensor,  # (B, L, d): position t predicts item t+1
    next_items: torch.Tensor,  # (B, L) the item taken after each position
    valid: torch.Tensor,  # (B, L) bool: position t has a next item
    item_vecs: torch.Tensor,  # (I, d)
    sampled_negatives: int = 0,
    history: torch.Tensor | None = None,  # (B, L) items; position t has seen history[:, :t+1]
) -> torch.Tensor:
    """Cross-entropy of the next item, over the full catalogue or ``sampled_negatives`` items.

    With ``history`` (full softmax only), items the user has already taken are masked out of
    the softmax, as they are out of the ranking at evaluation: the model spends no capacity
    on pushing down items that are never candidates. A target seen before stays a candidate.
    """
    h, target = states[valid], next_items[valid]  # (N, d), (N,)
    if h.shape[0] == 0:
        return states.sum() * 0.0
    if sampled_negatives <= 0 or sampled_negatives >= item_vecs.shape[0]:
        logits = head(h, item_vecs)
        if history is not None:
            seen = F.one_hot(history, item_vecs.shape[0]).cumsum(1)[:, : states.shape[1]] > 0  # (B, L, I)
            seen = seen[valid]
            seen[torch.arange(len(target)), target] = False
            logits = logits.masked_fill(seen, float("-inf"))
        return F.cross_entropy(logits, target)
    # Sampled softmax for large catalogues: the target against shared uniform negatives.
    negatives = torch.randint(0, item_vecs.shape[0], (sampled_negatives,), device=h.device)
    q = head.query(h)
    pos = (q * item_vecs[target]).sum(-1) + head.item_bias[target]
    neg = q @ item_vecs[negatives].T + head.item_bias[negatives]
    neg = neg.masked_fill(negatives.unsqueeze(0) == target.unsqueeze(1), float("-inf"))
    logits = torch.cat([pos.unsqueeze(1), neg], dim=1)
    return F.cross_entropy(logits, torch.zeros_like(target))
