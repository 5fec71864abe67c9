"""What every task shares: a small MLP and the masked-mean helper."""

from __future__ import annotations

import torch
from torch import nn

from ..models.dropout import Dropout


def mlp(in_dim: int, hidden: int, out_dim: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, out_dim))


def masked_mean(values: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """Mean of ``values`` where ``mask`` is true; 0 when nothing is selected."""
    mask = mask.float()
    return (values * mask).sum() / mask.sum().clamp(min=1.0)
