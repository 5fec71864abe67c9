"""The item-side view of a (user, item) pair: who else took the item, and how they rated it."""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn


class ItemRaters(nn.Module):
    """Attention from the user over a sample of the target item's other raters.

    Each item keeps up to ``max_raters`` (user, rating token) pairs from the training side
    (buffers saved with the model). A rater token is a user embedding plus a rating
    embedding; the query is the target user's own embedding plus the summary of the user's
    history. This is the user-based neighbourhood signal that the user-side history lacks.
    The target user is always masked out of the item's raters, so in training the target's
    own rating never reaches its input.
    """

    def __init__(self, n_users: int, n_items: int, dim: int, n_rating_tokens: int, max_raters: int):
        super().__init__()
        self.users = nn.Embedding(n_users, dim)
        nn.init.normal_(self.users.weight, std=0.01)
        self.ratings = nn.Embedding(n_rating_tokens, dim)
        self.q = nn.Linear(dim, dim)
        self.k = nn.Linear(dim, dim)
        self.v = nn.Linear(dim, dim)
        self.null_k = nn.Parameter(torch.zeros(dim))
        self.null_v = nn.Parameter(torch.zeros(dim))
        self.register_buffer("rater_users", torch.zeros(n_items, max_raters, dtype=torch.long))
        self.register_buffer("rater_tokens", torch.zeros(n_items, max_raters, dtype=torch.long))  # 0 = empty

    def set_raters(self, users: np.ndarray, tokens: np.ndarray) -> None:
        """(I, K) rater users and their rating tokens (0 where an item has fewer raters)."""
        self.rater_users.copy_(torch.from_numpy(users))
        self.rater_tokens.copy_(torch.from_numpy(tokens))

    def forward(self, users: torch.Tensor, summary: torch.Tensor, target_items: torch.Tensor) -> torch.Tensor:
        """(B,) users, (B, T, d) history summaries, (B, T) items → (B, T, d)."""
        d = summary.shape[-1]
        ru, rt = self.rater_users[target_items], self.rater_tokens[target_items]  # (B, T, K)
        visible = (rt != 0) & (ru != users.view(-1, 1, 1))
        tokens = self.users(ru) + self.ratings(rt)  # (B, T, K, d)
        # A user the model was not trained with (models/polyrec.UNKNOWN_USER) has no embedding:
        # the query reads the history's summary alone.
        known = (users < self.users.num_embeddings).unsqueeze(-1)
        own = torch.where(known, self.users(users.clamp(max=self.users.num_embeddings - 1)), torch.zeros(()))
        q = self.q(own.unsqueeze(1) + summary)  # (B, T, d)
        scores = torch.einsum("btd,btkd->btk", q, self.k(tokens)) / math.sqrt(d)
        scores = scores.masked_fill(~visible, float("-inf"))
        null = (q * self.null_k).sum(-1, keepdim=True) / math.sqrt(d)
        w = torch.softmax(torch.cat([null, scores], dim=-1), dim=-1)  # (B, T, 1+K)
        return torch.einsum("btk,btkd->btd", w[..., 1:], self.v(tokens)) + w[..., :1] * self.null_v


def sample_raters(
    item_lists: list[np.ndarray], token_lists: list[np.ndarray], n_items: int, max_raters: int, seed: int
) -> tuple[np.ndarray, np.ndarray]:
    """(I, K) arrays of up to K random raters per item, from per-user training histories."""
    users = np.repeat(np.arange(len(item_lists)), [len(x) for x in item_lists])
    items = np.concatenate(item_lists) if item_lists else np.zeros(0, dtype=np.int64)
    toks = np.concatenate(token_lists) if token_lists else np.zeros(0, dtype=np.int64)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(items))
    order = order[np.argsort(items[order], kind="stable")]  # grouped by item, random within
    items, users, toks = items[order], users[order], toks[order]
    starts = np.searchsorted(items, np.arange(n_items))
    rank = np.arange(len(items)) - starts[items]
    keep = rank < max_raters
    out_users = np.zeros((n_items, max_raters), dtype=np.int64)
    out_tokens = np.zeros((n_items, max_raters), dtype=np.int64)
    out_users[items[keep], rank[keep]] = users[keep]
    out_tokens[items[keep], rank[keep]] = toks[keep]
    return out_users, out_tokens
