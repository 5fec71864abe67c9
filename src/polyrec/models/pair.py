"""What a user's history says about one target item: the features rating and ctr read."""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
from torch import nn


@dataclass
class PairContext:
    """The state-free part of a batch of pair features, each (B, T, d) but ``dev`` (B, T)."""

    attended: torch.Tensor  # target-aware attention over the visible history tokens
    summary: torch.Tensor  # mean of the visible history tokens
    target: torch.Tensor  # the target item vectors
    dev: torch.Tensor  # shrunk mean rating deviation over the visible history
    rated_sum: torch.Tensor | None = None  # rating-weighted history summary (see PairEncoder)


class PairEncoder(nn.Module):
    """Target-aware attention over the history, a history summary and the user's state.

    Each target comes with ``visible`` (B, T, L): the history positions it may read. In
    training the targets are the history's own items and each sees every *other* item of the
    history (leave-one-out), so no target ever reads itself or its rating; at inference a
    target sees the whole history. That makes training and inference the same computation.
    ``state_index`` picks the causal user state a target reads (−1: none); in training it is
    the state just before the target, which has not seen the target either.

    ``rated_summary`` adds ``e · Σ_j (r_j − μ) x_j / (n + s)``, elementwise: the rating-weighted
    sum of the visible history (asymmetric SVD's user factor, Koren 2008). Attention and the
    plain summary mix item and rating *additively*; an item's vector scaled by how far its
    rating sits from the mean is a product neither forms in one step, and it is what a
    factor model predicts a rating from.
    """

    def __init__(self, dim: int, shrinkage: float = 5.0, rated_summary: bool = False):
        super().__init__()
        self.dim = dim
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        # A "null" slot gives an empty history somewhere to attend to.
        self.null_k = nn.Parameter(torch.zeros(dim))
        self.null_v = nn.Parameter(torch.zeros(dim))
        self.empty_user = nn.Parameter(torch.zeros(dim))
        self.shrinkage = shrinkage
        self.x = nn.Linear(dim, dim, bias=False) if rated_summary else None
        self.out_dim = (8 if rated_summary else 7) * dim + 1

    def forward(
        self,
        tokens: torch.Tensor,  # (B, L, d) history tokens (item + rating) before mixing
        states: torch.Tensor,  # (B, L, d) causal user states
        rating_centered: torch.Tensor,  # (B, L) rating − μ, 0 where none
        rated: torch.Tensor,  # (B, L) bool
        target_vecs: torch.Tensor,  # (B, T, d)
        visible: torch.Tensor,  # (B, T, L) bool
        state_index: torch.Tensor,  # (B, T) int, −1 for none
    ) -> torch.Tensor:
        return self.features(self.context(tokens, rating_centered, rated, target_vecs, visible), states, state_index)

    def context(
        self,
        tokens: torch.Tensor,
        rating_centered: torch.Tensor,
        rated: torch.Tensor,
        target_vecs: torch.Tensor,
        visible: torch.Tensor,
    ) -> PairContext:
        """The features that read no user state (shapes as in ``forward``): computed once even
        when several tasks each bring their own state (expert layers, models/experts.py)."""
        d = tokens.shape[-1]
        q = self.q(target_vecs)  # (B, T, d)
        k, v = self.k(tokens), self.v(tokens)  # (B, L, d)
        scores = (q @ k.transpose(1, 2) / math.sqrt(d)).masked_fill(~visible, float("-inf"))  # (B, T, L)
        null = (q * self.null_k).sum(-1, keepdim=True) / math.sqrt(d)  # (B, T, 1)
        w = torch.softmax(torch.cat([null, scores], dim=-1), dim=-1)
        attended = w[..., 1:] @ v + w[..., :1] * self.null_v  # (B, T, d)

        vis = visible.float()
        n = vis.sum(-1, keepdim=True)  # (B, T, 1)
        # SVD++-style summary: the mean of the visible history tokens.
        summary = (vis @ tokens) / n.clamp(min=1.0)  # (B, T, d)

        # The user's mean rating deviation over the visible history, shrunk towards 0 for
        # users with few ratings (the classic baseline predictor, computed leak-free).
        dev_sum = (vis @ rating_centered.unsqueeze(-1)).squeeze(-1)
        dev_n = (vis @ rated.float().unsqueeze(-1)).squeeze(-1)
        dev = dev_sum / (dev_n + self.shrinkage)
        rated_sum = None
        if self.x is not None:
            rated_sum = (vis @ (rating_centered.unsqueeze(-1) * self.x(tokens))) / (dev_n.unsqueeze(-1) + self.shrinkage)
        return PairContext(attended, summary, target_vecs, dev, rated_sum)

    def features(self, ctx: PairContext, states: torch.Tensor, state_index: torch.Tensor) -> torch.Tensor:
        """``ctx`` plus the user state at ``state_index`` (B, T) of ``states`` (B, L, d) → (B, T, F)."""
        d = states.shape[-1]
        idx = state_index.clamp(min=0)
        user = states.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))  # (B, T, d)
        user = torch.where(state_index.unsqueeze(-1) >= 0, user, self.empty_user)
        e, attended, summary = ctx.target, ctx.attended, ctx.summary
        parts = [user, attended, summary, e, user * e, attended * e, summary * e]
        if ctx.rated_sum is not None:
            parts.append(ctx.rated_sum * e)
        return torch.cat([*parts, ctx.dev.unsqueeze(-1)], dim=-1)
