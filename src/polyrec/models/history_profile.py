"""A profile view read straight off the user's ratings: per attribute, a logistic
regression on the tf-idf weighted row of the user's training ratings (Weinsberg et al.,
RecSys 2012, inferred gender from MovieLens ratings with a logistic regression on the rating
vector; the tf-idf weighting is polyrec's).

Why beside the profile head and the autoencoder's user rows: the head reads a user through a
pooled encoding of the history, and the autoencoder's rows are a code fitted to predict
ratings; both are bottlenecks an attribute has to pass through. This view weighs every item
on its own, up-weights the rarer ones that say more about who watched them (idf), and reads
nothing but the training ratings. On MovieLens-100K (protocol A's training ratings, 10-fold
cross-validation over users, seeds 0-2) it alone reached gender AUC 0.798 / 0.794 / 0.784
against 0.780 / 0.774 / 0.772 for a regression on the autoencoder's rows.

Its logits, less the training users' prior log-odds (the head's logits carry the prior
already), are computed for the training users once, when it is fitted (held-out users
included: from their training ratings only, never from an attribute), and kept as a table:
a user unknown to it adds nothing, as with the autoencoder's rows.
"""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch
from torch import nn


def tfidf_rows(users: np.ndarray, items: np.ndarray, ratings: np.ndarray, n_users: int, n_items: int, lowest: float) -> sp.csr_matrix:
    """(n_users, n_items) rows of the training ratings, each rating counted as its height
    above one step below the scale's ``lowest`` (1 … 5 stay 1 … 5; an interaction without a
    rating counts 1), times the item's smoothed idf ``ln((1 + U) / (1 + raters)) + 1``, each
    row scaled to unit length."""
    values = np.where(np.isnan(ratings), 1.0, ratings - lowest + 1.0)
    rows = sp.csr_matrix((values, (users, items)), shape=(n_users, n_items))
    raters = np.bincount(items, minlength=n_items)
    rows = rows @ sp.diags(np.log((1.0 + n_users) / (1.0 + raters)) + 1.0)
    norms = np.sqrt(np.asarray(rows.multiply(rows).sum(1)).ravel())
    return sp.csr_matrix(sp.diags(1.0 / np.maximum(norms, 1e-12)) @ rows)


class HistoryProfile(nn.Module):
    """``forward(users)`` → attribute → (B, C) logits, 0 for a user it does not know or an
    attribute it was not kept for (all zeros until ``set_attribute``; train/join_fit.py).
    ``classes``: each attribute's number of classes."""

    def __init__(self, n_users: int, classes: dict[str, int]):
        super().__init__()
        self.n_users = n_users
        self.names = list(classes)
        # Buffers by position: an attribute's name may hold characters a buffer name may not.
        for k, c in enumerate(classes.values()):
            self.register_buffer(f"logits_{k}", torch.zeros(n_users, c))

    def table(self, name: str) -> torch.Tensor:
        return getattr(self, f"logits_{self.names.index(name)}")

    def set_attribute(self, name: str, logits: np.ndarray) -> None:
        self.table(name).copy_(torch.from_numpy(logits).float())

    def clear(self, name: str) -> None:
        self.table(name).zero_()

    def forward(self, users: torch.Tensor) -> dict[str, torch.Tensor]:
        known = (users < self.n_users).unsqueeze(-1)
        at = users.clamp(max=self.n_users - 1)
        out = {}
        for name in self.names:
            logits = self.table(name)[at]
            out[name] = torch.where(known, logits, torch.zeros_like(logits))
        return out
