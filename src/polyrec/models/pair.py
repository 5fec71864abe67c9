"""What a user's history says about one target item: the features rating and ctr read."""

from __future__ import annotations

import math

import torch
from torch import nn


class PairEncoder(nn.Module):
    """Target-aware attention over the history, plus the user's state, for (user, item) pairs.

    Each target comes with a context length ``c``: it may look at history positions ``< c``
    only. In training the targets are the history's own items and ``c`` is their position, so
    no target ever sees itself or its rating; at inference ``c`` is the whole history.
    """

    def __init__(self, dim: int, shrinkage: float = 5.0):
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
        self.out_dim = 5 * dim + 1

    def forward(
        self,
        tokens: torch.Tensor,  # (B, L, d) history tokens before mixing
        states: torch.Tensor,  # (B, L, d) causal user states
        rating_dev: torch.Tensor,  # (B, L+1) prefix sum of (rating − μ) over rated history items
        rating_count: torch.Tensor,  # (B, L+1) prefix count of rated history items
        target_vecs: torch.Tensor,  # (B, T, d)
        ctx_len: torch.Tensor,  # (B, T) int: positions < ctx_len are visible
    ) -> torch.Tensor:
        B, L, d = tokens.shape
        q = self.q(target_vecs)  # (B, T, d)
        k, v = self.k(tokens), self.v(tokens)  # (B, L, d)
        scores = q @ k.transpose(1, 2) / math.sqrt(d)  # (B, T, L)
        visible = torch.arange(L, device=tokens.device).view(1, 1, L) < ctx_len.unsqueeze(-1)
        scores = scores.masked_fill(~visible, float("-inf"))
        null = (q * self.null_k).sum(-1, keepdim=True) / math.sqrt(d)  # (B, T, 1)
        w = torch.softmax(torch.cat([null, scores], dim=-1), dim=-1)
        attended = w[..., 1:] @ v + w[..., :1] * self.null_v  # (B, T, d)

        idx = (ctx_len - 1).clamp(min=0)
        user = states.gather(1, idx.unsqueeze(-1).expand(-1, -1, d))  # (B, T, d)
        user = torch.where(ctx_len.unsqueeze(-1) > 0, user, self.empty_user)

        # The user's mean rating deviation over the visible history, shrunk towards 0 for
        # users with few ratings (the classic baseline predictor, computed leak-free).
        dev = rating_dev.gather(1, ctx_len) / (rating_count.gather(1, ctx_len) + self.shrinkage)
        return torch.cat(
            [user, attended, target_vecs, user * target_vecs, attended * target_vecs, dev.unsqueeze(-1)], dim=-1
        )
