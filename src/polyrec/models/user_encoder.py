"""A small causal Transformer over a user's history (nanoGPT-style, pre-LayerNorm)."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from .dropout import Dropout


class Block(nn.Module):
    def __init__(self, dim: int, heads: int, dropout: float, attention_dropout: float):
        super().__init__()
        self.heads = heads
        self.ln1 = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, 3 * dim)
        self.out = nn.Linear(dim, dim)
        self.ln2 = nn.LayerNorm(dim)
        self.mlp = nn.Sequential(nn.Linear(dim, 4 * dim), nn.GELU(), nn.Linear(4 * dim, dim))
        self.drop = Dropout(dropout)
        self.attention_dropout = attention_dropout

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        B, L, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).split(d, dim=-1)
        # Causal: position t sees items 0..t only. Histories are right-padded, so a real
        # position never sees padding and the last real position sees the whole history.
        y = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), is_causal=True,
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return self._mix(x, y)

    def forward_at(self, x: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(B, L, d) inputs → (B, d): the block's output at one position per row, what
        ``forward`` gives there. Keys and values still span the row up to that position; the
        query, the attention output and the feed-forward part are computed there only."""
        B, L, d = x.shape
        h = self.ln1(x)
        k, v = F.linear(h, self.qkv.weight[d:], self.qkv.bias[d:]).split(d, dim=-1)
        rows = torch.arange(B, device=x.device)
        q = F.linear(h[rows, positions], self.qkv.weight[:d], self.qkv.bias[:d]).unsqueeze(1)  # (B, 1, d)
        seen = torch.arange(L, device=x.device) <= positions.unsqueeze(1)  # (B, L): causal at that position
        y = F.scaled_dot_product_attention(
            self._heads(q), self._heads(k), self._heads(v), attn_mask=seen[:, None, None, :],
            dropout_p=self.attention_dropout if self.training else 0.0,
        )
        return self._mix(x[rows, positions].unsqueeze(1), y).squeeze(1)

    def _heads(self, t: torch.Tensor) -> torch.Tensor:
        """(B, L, d) → (B, h, L, d/h)."""
        B, L, d = t.shape
        return t.view(B, L, self.heads, d // self.heads).transpose(1, 2)

    def _mix(self, x: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        """The residual attention output, then the residual feed-forward part."""
        B, L, d = x.shape
        x = x + self.drop(self.out(y.transpose(1, 2).reshape(B, L, d)))
        return x + self.drop(self.mlp(self.ln2(x)))


class UserEncoder(nn.Module):
    """History tokens (item vector + rating embedding + position) → contextual states.

    Output position t summarises the history up to and including item t, so it can predict
    anything about item t+1 without seeing it — which makes every interaction of a training
    sequence a leak-free target.
    """

    def __init__(
        self, dim: int, layers: int, heads: int, max_len: int, n_rating_tokens: int, dropout: float,
        attention_dropout: float | None = None,
    ):
        super().__init__()
        self.rating_emb = nn.Embedding(n_rating_tokens, dim)
        self.pos_emb = nn.Embedding(max_len, dim)
        self.drop = Dropout(dropout)
        attention = dropout if attention_dropout is None else attention_dropout
        self.blocks = nn.ModuleList(Block(dim, heads, dropout, attention) for _ in range(layers))
        self.ln = nn.LayerNorm(dim)

    def tokens(self, item_vecs: torch.Tensor, rating_tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, d) input tokens before any mixing across positions."""
        return item_vecs + self.rating_emb(rating_tokens)

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:
        """(B, L, d) tokens → (B, L, d) causal states."""
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(tokens + self.pos_emb(pos))
        for block in self.blocks:
            x = block(x)
        return self.ln(x)

    def forward_at(self, tokens: torch.Tensor, positions: torch.Tensor) -> torch.Tensor:
        """(B, L, d) tokens → (B, d): ``forward``'s state at one position per row (e.g. after
        the whole history, what scoring the catalogue reads). The last block runs at that
        position only: in a one-layer student that is most of the encoder's work."""
        pos = torch.arange(tokens.shape[1], device=tokens.device)
        x = self.drop(tokens + self.pos_emb(pos))
        if not self.blocks:
            return self.ln(x[torch.arange(len(x), device=x.device), positions])
        for block in self.blocks[:-1]:
            x = block(x)
        return self.ln(self.blocks[-1].forward_at(x, positions))
