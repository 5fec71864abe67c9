"""Task `rating`: the rating a user gives an item (MSE; RMSE and MAE)."""

from __future__ import annotations

import torch
from torch import nn

from .base import masked_mean, mlp

NAME = "rating"
MAIN_METRIC = "rmse"


class RatingHead(nn.Module):
    """``r̂ = μ + b_item + w·dev_user + MLP(pair features)``: biases plus what the history adds."""

    def __init__(self, pair_dim: int, hidden: int, n_items: int, global_mean: float, dropout: float):
        super().__init__()
        self.register_buffer("global_mean", torch.tensor(float(global_mean)))
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.dev_weight = nn.Parameter(torch.tensor(1.0))
        self.mlp = mlp(pair_dim, hidden, 1, dropout)

    def forward(self, pair: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, T, F) pair features, (B, T) items → (B, T) predicted ratings."""
        dev = pair[..., -1]
        return self.global_mean + self.item_bias(items).squeeze(-1) + self.dev_weight * dev + self.mlp(pair).squeeze(-1)


def loss(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """MSE over the targets that have a rating (NaN = no rating)."""
    known = ~torch.isnan(target)
    return masked_mean((pred - torch.nan_to_num(target)) ** 2, known)
