"""Task `ctr`: whether a user engages with an item (BCE; AUC and logloss)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .base import masked_mean, mlp

NAME = "ctr"
MAIN_METRIC = "auc"


class CtrHead(nn.Module):
    def __init__(self, pair_dim: int, hidden: int, n_items: int, dropout: float):
        super().__init__()
        self.item_bias = nn.Embedding(n_items, 1)
        nn.init.zeros_(self.item_bias.weight)
        self.mlp = mlp(pair_dim, hidden, 1, dropout)

    def forward(self, pair: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(B, T, F) pair features, (B, T) items → (B, T) engagement logits."""
        return self.item_bias(items).squeeze(-1) + self.mlp(pair).squeeze(-1)


def loss(logits: torch.Tensor, label: torch.Tensor) -> torch.Tensor:
    """BCE over the targets that have a label (NaN = none)."""
    known = ~torch.isnan(label)
    bce = F.binary_cross_entropy_with_logits(logits, torch.nan_to_num(label), reduction="none")
    return masked_mean(bce, known)
