"""The item-side view of a rating: an autoencoder over each item's column of training ratings."""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn


# Pairs scored in one part without gradients. A multiple of 64, so that every part starts
# where a vectorised loop over the whole batch would: the parts give its values to the bit.
PAIRS_AT_ONCE = 16_384


class ItemAutoencoder(nn.Module):
    """Item-based AutoRec (Sedhain et al., WWW 2015), trained leave-one-out.

    Item ``i``'s code is ``σ(Σ_u x_ui W_u + b)`` over the users who rated it on the training
    side, with ``x = rating − lowest + 1`` (never 0, so that *who* rated the item counts as
    well as how); user ``u`` reads the code through a decoder row of its own:
    ``d_ui = c_u + b_i + V_u · code``, a deviation from the global mean.

    A pair's own rating is taken out of its code, ``σ(A_i − x_ui W_u + b)``, so a training
    target never reads its own rating: the condition every valid and test pair is in. On
    MovieLens-100K (protocol A, seed 0, validation) that trains to RMSE 0.885, where the
    original reconstruction objective, which reads its own target, stops at 0.912.

    The user encoder reads users from their histories; this view reads the other side, all
    of an item's raters at once, which the history attention does not see. It is fitted on
    its own and joins the multi-task model's predictions with weights set on validation
    pairs (``join_rating`` and ``PolyRecModel.ctr_join``; train/join_fit.py says why).
    """

    def __init__(self, n_users: int, n_items: int, hidden: int, n_ratings: int):
        super().__init__()
        self.n_users, self.n_items = n_users, n_items
        self.encoder = nn.Parameter(torch.randn(n_users, hidden) * 0.01)
        self.code_bias = nn.Parameter(torch.zeros(hidden))
        self.decoder = nn.Parameter(torch.randn(n_users, hidden) * 0.01)
        self.user_bias = nn.Parameter(torch.zeros(n_users))
        self.item_bias = nn.Parameter(torch.zeros(n_items))
        self.register_buffer("lowest", torch.tensor(1.0))  # the lowest training rating
        # The training ratings, grouped by item: entries offsets[i] .. offsets[i+1] are item i's.
        self.register_buffer("rater", torch.zeros(n_ratings, dtype=torch.long))
        self.register_buffer("value", torch.zeros(n_ratings))
        self.register_buffer("offsets", torch.zeros(n_items, dtype=torch.long))
        # How its deviation joins the model's rating (identity until set on validation pairs):
        # rating = (1 − s) · model + s · (μ + d). Its ctr join is the model's (PolyRecModel.ctr_join).
        self.register_buffer("rating_share", torch.tensor(0.0))
        self._cached_inputs: tuple[tuple, torch.Tensor] | None = None  # see item_inputs; not saved
        self._by_rater = _NotCopied()  # see by_rater; not saved

    def set_ratings(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray) -> None:
        """The training side's (user, item, rating) triples: the columns every code reads."""
        order = np.lexsort((users, items))
        self.lowest.fill_(float(ratings.min()))
        self.rater.copy_(torch.from_numpy(users[order].astype(np.int64)))
        self.value.copy_(self.inputs(torch.from_numpy(ratings[order]).float()))
        self.offsets.copy_(torch.from_numpy(np.searchsorted(items[order], np.arange(self.n_items)).astype(np.int64)))

    def inputs(self, ratings: torch.Tensor) -> torch.Tensor:
        """Ratings → the values the encoder reads (0 where a rating is NaN: not in a column)."""
        return torch.nan_to_num(ratings.to(self.value.dtype) - self.lowest + 1.0, nan=0.0)

    def item_inputs(self) -> torch.Tensor:
        """(I, H) ``Σ_u x_ui W_u`` of every item, from one pass over the stored ratings.

        Every scored batch needs all of it; once fitted (no gradient wanted) it is kept until
        a tensor it reads changes in place or is replaced: a frozen teacher and every
        prediction pass read one copy (one thread: 5 ms a batch saved on MovieLens-100K, 116 ms at
        MovieLens-1M's shape)."""
        if torch.is_grad_enabled() and self.encoder.requires_grad:
            return self._item_inputs()
        key = tuple((t.data_ptr(), t._version) for t in (self.encoder, self.rater, self.value, self.offsets))
        if self._cached_inputs is None or self._cached_inputs[0] != key:
            with torch.no_grad():
                self._cached_inputs = (key, self._item_inputs())
        return self._cached_inputs[1]

    def _item_inputs(self) -> torch.Tensor:
        return F.embedding_bag(self.rater, self.encoder, self.offsets, mode="sum", per_sample_weights=self.value)

    def by_rater(self) -> torch.Tensor:
        """(U, I) sparse CSR matrix of the stored input values, a row per rater: the product
        that carries the codes' gradient back to the encoder rows (see ``TrainingDeviation``).
        Kept until a tensor it reads changes."""
        key = tuple((t.data_ptr(), t._version) for t in (self.rater, self.value, self.offsets))
        if self._by_rater.key != key:
            counts = torch.diff(self.offsets, append=self.offsets.new_tensor([len(self.rater)]))
            columns = torch.repeat_interleave(torch.arange(self.n_items, device=counts.device), counts)
            entries = torch.stack([self.rater, columns])
            matrix = torch.sparse_coo_tensor(entries, self.value, (self.n_users, self.n_items), check_invariants=True)
            with warnings.catch_warnings():  # "sparse CSR support is in beta": sparse.mm on CSR is what is used
                warnings.simplefilter("ignore", UserWarning)
                self._by_rater.key, self._by_rater.value = key, matrix.coalesce().to_sparse_csr()
        return self._by_rater.value

    def forward(self, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None = None) -> torch.Tensor:
        """Deviation ``d_ui`` of each (users[k], items[k]) pair, any equal shapes; ``own`` the
        pairs' own input values (``inputs`` of their ratings) to leave out of their codes.

        Users the model was not trained with (beyond ``n_users``) have no rows: they get the
        item's bias alone. A fit's training step (gradients on, every user known, own values
        given, one batch of pairs) takes ``TrainingDeviation``, the same values with a
        backward of its own; this method is its reference."""
        if own is not None and users.dim() == 1 and self.encoder.requires_grad and torch.is_grad_enabled():
            if bool((users < self.n_users).all()):
                params = (self.encoder, self.code_bias, self.decoder, self.user_bias, self.item_bias)
                return TrainingDeviation.apply(self, users, items, own, *params)
        if torch.is_grad_enabled() or users.numel() <= PAIRS_AT_ONCE:
            return self._deviation(users, items, own)
        # Scoring many pairs (a fit's validation, the join's): a few (pairs × width) tensors
        # per part, not per pass, the same values (at MovieLens-1M's shape, 82,000 validation
        # pairs of a 500-wide code took 0.6 GiB at once).
        u, i, o = users.reshape(-1), items.reshape(-1), None if own is None else own.reshape(-1)

        def part(start: int) -> torch.Tensor:
            window = slice(start, start + PAIRS_AT_ONCE)
            return self._deviation(u[window], i[window], None if o is None else o[window])

        return torch.cat([part(start) for start in range(0, len(u), PAIRS_AT_ONCE)]).reshape(users.shape)

    def _deviation(self, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor | None) -> torch.Tensor:
        known = users < self.n_users
        u = torch.where(known, users, torch.zeros_like(users))
        pre = self.item_inputs()[items] + self.code_bias
        if own is not None:
            pre = pre - own.unsqueeze(-1) * self.encoder[u]
        code = torch.sigmoid(pre)
        d = self.user_bias[u] + self.item_bias[items] + (self.decoder[u] * code).sum(-1)
        return torch.where(known, d, self.item_bias[items])

    @torch.no_grad()
    def fold_in(self, items: torch.Tensor, deviations: torch.Tensor, l2: float) -> FoldedRows:
        """Rows for (B, L) histories of users it was not trained with, from their ratings'
        ``deviations`` from the mean its fit was offset by (NaN: no rating; items beyond the
        catalogue, new ones given by text, have no column).

        What the fit would learn for such a user with every other weight held: the decoder
        row and bias minimising the squared error of the user's ratings plus the fit's own
        prior on the row (``l2`` / 2 · ‖V_u‖², as ``penalty`` weighs it against the summed
        squared error; the bias is not penalised, as in the fit), a ridge regression on the
        codes of the items they rated. Their ratings are in no item's column, so every code
        is the one training left them. On MovieLens-100K's validation pairs (protocol A,
        seeds 0–2) the model reading known users' rows folded in from their training ratings
        predicts about as with the rows the fit learned (rating RMSE 0.8808 / 0.8721 / 0.8866
        against 0.8797 / 0.8714 / 0.8858; docs/results/cold-users.md)."""
        return self._fold_in(items, deviations, l2, _least_squares)

    def _fold_in(self, items: torch.Tensor, targets: torch.Tensor, l2: float, solve: RowSolve) -> FoldedRows:
        """Rows of (B, L) histories fitted to their ``targets`` (NaN: none), each by ``solve``
        on ``[1, codes]`` of the items read, with the fit's prior on the row."""
        B, H = items.shape[0], self.code_bias.shape[0]
        bias, decoder = torch.zeros(B, dtype=torch.float64), torch.zeros(B, H, dtype=torch.float64)
        rated = ~torch.isnan(targets) & (items < self.n_items)
        inside = items.clamp(max=self.n_items - 1)
        codes, item_bias = self.codes(inside).double(), self.item_bias[inside].double()
        ridge = torch.full((H + 1,), l2 / 2, dtype=torch.float64)
        ridge[0] = 0.0  # the user's bias is not penalised, as in the fit
        for b in range(B):
            keep = rated[b]
            if not bool(keep.any()):
                continue  # nothing rated: the item bias alone, as the fit starts a row
            x = torch.cat([torch.ones(int(keep.sum()), 1, dtype=torch.float64), codes[b][keep]], dim=1)
            w = solve(x, item_bias[b][keep], targets[b][keep].double(), torch.diag(ridge))
            bias[b], decoder[b] = w[0], w[1:]
        return FoldedRows(bias.to(self.item_bias.dtype), decoder.to(self.decoder.dtype))

    def codes(self, items: torch.Tensor) -> torch.Tensor:
        """(..., H) the codes of ``items`` from every stored training rating."""
        return torch.sigmoid(self.item_inputs()[items] + self.code_bias)

    def folded_deviation(self, rows: FoldedRows, items: torch.Tensor) -> torch.Tensor:
        """(B, T) deviation of (B, T) ``items`` for the users of ``rows`` (``fold_in``)."""
        return rows.bias.unsqueeze(1) + self.item_bias[items] + (rows.decoder.unsqueeze(1) * self.codes(items)).sum(-1)

    def join_rating(self, rating: torch.Tensor, deviation: torch.Tensor, mean: torch.Tensor) -> torch.Tensor:
        """The model's ``rating`` joined with this view's ``deviation`` of the same pairs."""
        return (1 - self.rating_share) * rating + self.rating_share * (mean + deviation)

    def penalty(self) -> torch.Tensor:
        """½ (‖W‖² + ‖V‖²): the L2 prior on the encoder and decoder weights."""
        return 0.5 * (self.encoder.pow(2).sum() + self.decoder.pow(2).sum())

    def user_rows(self) -> torch.Tensor:
        """(U, 2H) each user's encoder and decoder rows: a user vector learned from ratings alone."""
        return torch.cat([self.decoder, self.encoder], dim=-1).detach()


# A row's solve: (x (n, 1 + H), the items' biases (n,), targets (n,), ridge (1 + H, 1 + H)) → [bias, row].
RowSolve = Callable[[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def _least_squares(x: torch.Tensor, item_bias: torch.Tensor, targets: torch.Tensor, ridge: torch.Tensor) -> torch.Tensor:
    """The ridge regression of ``targets − item_bias`` on ``x``: squared error's row."""
    return torch.linalg.solve(x.T @ x + ridge, x.T @ (targets - item_bias))


@dataclass
class FoldedRows:
    """An item autoencoder's user rows for users it was not trained with (``fold_in``)."""

    bias: torch.Tensor  # (B,)
    decoder: torch.Tensor  # (B, H)


class _NotCopied:
    """A kept value that a copy of its module starts without: a sparse CSR tensor can be
    neither deep-copied nor pickled, and it is counted again when next needed."""

    def __init__(self) -> None:
        self.key: tuple | None = None
        self.value: torch.Tensor | None = None

    def __deepcopy__(self, memo: dict) -> _NotCopied:
        return _NotCopied()

    def __getstate__(self) -> dict:
        return {"kept": False}  # not empty: pickle skips __setstate__ for a false state

    def __setstate__(self, state: dict) -> None:
        self.__init__()


class TrainingDeviation(torch.autograd.Function):
    """``ItemAutoencoder._deviation`` of one batch of training pairs (every user known, the
    pairs' own values left out of their codes), with the backward written out by hand.

    The forward computes the same values in the same order. The backward gives the same
    gradients up to float rounding (summed in another order; tests compare it with
    autograd's backward of the reference): autograd sorts every stored rating to carry the
    codes' gradient back through the embedding bag and keeps several (batch × width)
    temporaries, where this multiplies the rater-major rating matrix (``by_rater``) by the
    items' code gradients once. A fit's step is 1.43 × as fast at MovieLens-100K's shape and
    1.32 × at MovieLens-1M's, on one thread (benchmarks/autoencoder_step.py)."""

    @staticmethod
    def forward(ctx, ae: ItemAutoencoder, users: torch.Tensor, items: torch.Tensor, own: torch.Tensor,
                encoder: torch.Tensor, code_bias: torch.Tensor, decoder: torch.Tensor, user_bias: torch.Tensor,
                item_bias: torch.Tensor) -> torch.Tensor:  # fmt: skip
        inputs = ae._item_inputs()  # reads ``encoder`` (gradients are off inside forward)
        code = inputs[items].add_(code_bias).sub_(own.unsqueeze(-1) * encoder[users]).sigmoid_()
        rows = decoder[users]
        ctx.save_for_backward(users, items, own, code, rows)
        ctx.ae = ae
        return user_bias[users] + item_bias[items] + (rows * code).sum(-1)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):  # type: ignore[override]
        users, items, own, code, rows = ctx.saved_tensors
        ae, g = ctx.ae, grad.unsqueeze(-1)
        g_pre = (rows * g).mul_(code).mul_(1 - code)  # through σ: σ (1 − σ)
        g_code_bias = g_pre.sum(0)
        g_inputs = code.new_zeros(ae.n_items, code.shape[-1]).index_add_(0, items, g_pre)
        g_encoder = torch.sparse.mm(ae.by_rater(), g_inputs)  # Σ over each rater's items
        g_encoder.index_add_(0, users, g_pre.mul_(-own.unsqueeze(-1)))  # the own value left out
        g_decoder = code.new_zeros(ae.n_users, code.shape[-1]).index_add_(0, users, code * g)
        g_user_bias = grad.new_zeros(ae.n_users).index_add_(0, users, grad)
        g_item_bias = grad.new_zeros(ae.n_items).index_add_(0, items, grad)
        return None, None, None, None, g_encoder, g_code_bias, g_decoder, g_user_bias, g_item_bias


class UserRowProfile(nn.Module):
    """A logistic regression per attribute on the item autoencoder's user rows, standardised:
    its logits add to the profile head's (a product of the two classifiers' probabilities).

    All zeros, so adding nothing, until ``set_attribute`` fills it after fine-tuning
    (train/join_fit.py, ``fit_profile_join``). The rows of a held-out user are
    learned from their training ratings only, never from an attribute.
    """

    def __init__(self, n_users: int, width: int, classes: dict[str, int]):
        super().__init__()
        self.n_users = n_users
        self.register_buffer("mean", torch.zeros(width))
        self.register_buffer("scale", torch.ones(width))
        self.names = list(classes)
        # Buffers by position: an attribute's name may hold characters a buffer name may not.
        for k, c in enumerate(classes.values()):
            self.register_buffer(f"weight_{k}", torch.zeros(c, width))
            self.register_buffer(f"bias_{k}", torch.zeros(c))

    def set_scaler(self, mean: np.ndarray, scale: np.ndarray) -> None:
        self.mean.copy_(torch.from_numpy(mean).float())
        self.scale.copy_(torch.from_numpy(scale).float())

    def parts(self, name: str) -> tuple[torch.Tensor, torch.Tensor]:
        """Attribute ``name``'s (C, F) weight and (C,) bias buffers."""
        k = self.names.index(name)
        return getattr(self, f"weight_{k}"), getattr(self, f"bias_{k}")

    def set_attribute(self, name: str, weight: np.ndarray, bias: np.ndarray) -> None:
        w, b = self.parts(name)
        w.copy_(torch.from_numpy(weight).float())
        b.copy_(torch.from_numpy(bias).float())

    def clear(self, name: str) -> None:
        """Attribute ``name`` adds nothing again."""
        for buffer in self.parts(name):
            buffer.zero_()

    def forward(self, users: torch.Tensor, rows: torch.Tensor) -> dict[str, torch.Tensor]:
        """(B,) users, (U, 2H) user rows → attribute → (B, C) logits (0 for unknown users)."""
        known = (users < self.n_users).unsqueeze(-1)
        x = (rows[users.clamp(max=self.n_users - 1)] - self.mean) / self.scale
        out = {}
        for name in self.names:
            weight, bias = self.parts(name)
            logits = x @ weight.T + bias
            out[name] = torch.where(known, logits, torch.zeros_like(logits))
        return out
