"""The user-side twin of the item autoencoder: each user's row of training ratings, encoded."""

from __future__ import annotations

import numpy as np
import torch

from .item_autoencoder import ItemAutoencoder


class UserAutoencoder(ItemAutoencoder):
    """User-based AutoRec (Sedhain et al., WWW 2015): the item autoencoder with the roles of
    users and items swapped, trained the same way (leave-one-out, its own L2 and stop).

    User ``u``'s code is ``σ(Σ_i x_ui W_i + b)`` over the items they rated on the training
    side; item ``i`` reads it through a decoder row of its own. The item-based view reads a
    pair from everyone who rated the item, this one from everything the user rated: they
    err differently. Its deviation is mixed with the item autoencoder's at ``share``, set on
    validation ratings (``mix``); 0 until then, so before its fit it changes nothing.

    Its inherited ``rating_share`` is unused: the item autoencoder joins
    the mixed deviation to the model's outputs.
    """

    def __init__(self, n_users: int, n_items: int, hidden: int, n_ratings: int):
        super().__init__(n_items, n_users, hidden, n_ratings)  # an item per "user" row, a user per "item" column
        self.register_buffer("share", torch.tensor(0.0))

    def set_ratings(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
        super().set_ratings(items, users, ratings)

    def forward(self, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        """Deviation of each (users[k], items[k]) pair, as ``ItemAutoencoder.forward``.

        A user it was not trained with (beyond the users it knows) has no code: such a pair
        gets the item's bias alone, as in the item autoencoder."""
        known = users < self.n_items  # in the swapped roles, the parent's items are our users
        d = super().forward(items, torch.where(known, users, torch.zeros_like(users)), own)
        return torch.where(known, d, self.user_bias[items])

    def mix(self, item_deviation: torch.Tensor, user_deviation: torch.Tensor) -> torch.Tensor:
        """The deviation the model joins: ``(1 − share) · item view + share · user view``."""
        return (1 - self.share) * item_deviation + self.share * user_deviation
