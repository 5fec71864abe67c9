"""The autoencoders' engagement twins: the same views of a pair's raters, fitted to the ctr label."""

from __future__ import annotations

import torch

from .item_autoencoder import FoldedRows, ItemAutoencoder, RowSolve
from .user_autoencoder import UserAutoencoder


class EngagementLogit:
    """What a ctr view (an engagement autoencoder, a kNN view) adds to the model: its value
    of a pair, times ``weight`` (a buffer each view registers, 0 until the model's ctr join is
    fitted on the validation pairs, so before its fit a view changes nothing)."""

    weight: torch.Tensor

    def joined(self, ctr_logit: torch.Tensor, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
        """``ctr_logit`` plus ``weight`` times this view's logit of the same pairs."""
        return ctr_logit + self.weight * self(users, items, own=own)  # type: ignore[operator]


class EngagementAutoencoder(EngagementLogit, ItemAutoencoder):
    """Item-based AutoRec read as an engagement logit: the item autoencoder's architecture and
    inputs (item ``i``'s code over its column of training ratings, the pair's own rating left
    out), fitted with binary cross-entropy to the training pairs' ctr labels rather than with
    squared error to their ratings.

    Why a second one: the rating autoencoder predicts a mean, and the ctr label asks whether a
    rating clears a threshold, which also depends on how spread out the user's and the item's
    ratings are. On MovieLens-100K (protocol A, seeds 0–2) joining this logit to the model's
    ctr logit raised validation AUC by 0.002–0.004 on every seed (docs/model.md).

    Its inherited ``rating_share`` is unused.
    """

    def __init__(self, n_users: int, n_items: int, hidden: int, n_ratings: int):
        super().__init__(n_users, n_items, hidden, n_ratings)
        self.register_buffer("weight", torch.tensor(0.0))
        # The log-odds of the training labels, which its fit added to every logit: what a
        # new user's row is fitted against (fold_in); not kept in a model saved before.
        self.register_buffer("offset", torch.tensor(0.0))
        self.register_buffer("offset_kept", torch.tensor(False))

    def keep_offset(self, offset: float) -> None:
        self.offset.fill_(offset)
        self.offset_kept.fill_(True)

    @torch.no_grad()
    def fold_in(self, items: torch.Tensor, labels: torch.Tensor, l2: float) -> FoldedRows | None:  # type: ignore[override]
        """Rows for (B, L) histories of users it was not trained with, from their ctr
        ``labels`` (NaN: none), against the offset its fit kept: the decoder
        row and bias that minimise the log-loss of the user's labels plus the fit's prior
        ``l2`` / 2 · ‖V_u‖², every other weight held (Newton's method on a logistic ridge).
        Unlike a squared error, a log-loss leaves the bias of a user whose labels are all
        alike to grow without end, so the bias is drawn towards the trained users' mean bias
        with their spread as its prior's. None for a model saved before the offset was kept."""
        if not bool(self.offset_kept):
            return None
        users = self.user_bias.double()
        return self._fold_in(items, labels, l2, _logistic(float(self.offset), float(users.mean()), float(users.var())))


def _logistic(offset: float, bias_mean: float, bias_var: float) -> RowSolve:
    """The logistic ridge's row, its bias drawn to ``bias_mean`` by a prior of variance ``bias_var``."""

    def solve(x: torch.Tensor, item_bias: torch.Tensor, labels: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
        # ``ridge`` holds λ of the prior λ ‖V‖², whose gradient, beside the log-loss's (not
        # twice a squared error's, as the normal equations of least squares are), is 2 λ V.
        ridge = 2 * ridge
        ridge[0, 0] = 1.0 / max(bias_var, 1e-6)
        prior = torch.zeros(x.shape[1], dtype=x.dtype)
        prior[0] = bias_mean
        w = prior.clone()
        for _ in range(NEWTON_STEPS):
            p = torch.sigmoid(offset + item_bias + x @ w)
            gradient = x.T @ (p - labels) + ridge @ (w - prior)
            step = torch.linalg.solve((x * (p * (1 - p)).unsqueeze(1)).T @ x + ridge, gradient)
            w -= step
            if float(step.abs().max()) < 1e-8:
                break
        return w

    return solve


NEWTON_STEPS = 25  # a logistic ridge with a prior on every weight converges in a handful


class UserEngagementAutoencoder(EngagementLogit, UserAutoencoder):
    """User-based AutoRec read as an engagement logit: user ``u``'s code over the items they
    rated on the training side (the pair's own rating left out), fitted to the ctr labels as
    :class:`EngagementAutoencoder` is.

    The item-side twin reads a pair from everyone who rated the item; this one from
    everything the user rated, and errs differently: on MovieLens-100K (protocol A, seeds
    0–2, a probe on the default's saved predictions) joining it beside the item-side twin
    raised validation ctr AUC by 0.0007–0.0011 on every seed (docs/model.md).

    Its inherited ``share`` and ``rating_share`` are unused.
    """

    def __init__(self, n_users: int, n_items: int, hidden: int, n_ratings: int):
        super().__init__(n_users, n_items, hidden, n_ratings)
        self.register_buffer("weight", torch.tensor(0.0))
