"""Recipe: fit a model's autoencoders on their own, before fine-tuning.

The autoencoder learns from batches of training ratings drawn at random across all users,
and stops when its validation RMSE stops falling. Trained inside the joint loop instead, it
would see one batch of users at a time, each user's decoder row moving once an epoch: on
MovieLens-100K (protocol A, seed 0) that ends at validation RMSE 0.90–0.91 rather than 0.885.

After fine-tuning, their outputs join the model's predictions with weights set on the
validation pairs (train/join_fit.py).

A user autoencoder, where the model has one, is fitted the same way right after it, and its
deviation mixed into the item autoencoder's at a share set on the validation ratings; the
join then reads the mix.
"""

from __future__ import annotations

import copy
import itertools
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.item_autoencoder import ItemAutoencoder, TrainingDeviation
from ..models.polyrec import PolyRecModel
from ..progress import bar as progress_bar
from .fit_cache import cached_fit, source_digest
from .join_fit import blend_share
from .protocol_data import ProtocolData
from .weight_average import WeightAverage, ema_decay

BATCH = 4096  # ratings per step; fewer on small data, so that an epoch still takes MIN_STEPS
MIN_STEPS = 16
LR = 1e-3
MAX_EPOCHS = 200  # the default of ``model.autoencoder_epochs``
PATIENCE = 10  # judgements (see PERIOD_STEPS) without a better validation score
# Judged, stopped on and kept: the weights averaged over about this many epochs of steps
# (train/weight_average.py). Single fits' validation RMSE jitters by ±0.002 from epoch to
# epoch around their best; on MovieLens-100K (protocol A, validation RMSE) the average over 2
# epochs reached 0.8809 / 0.8744 on seeds 0 / 1 where the raw weights stopped at 0.8868 /
# 0.8799, as much as averaging the predictions of four fits from different seeds gave (0.8810
# / 0.8746), for one fit's cost and some 30 more epochs (91 in all for seed 0 in `make run`,
# against about 50-60 with the raw weights). 5 and 10 epochs ended level with 2.
EMA_EPOCHS = 2.0
# A fit is judged (validated, and stopped after PATIENCE judgements without a gain) once an
# epoch, or every this many steps where an epoch holds more; its average still spans epochs.
# Each step reads every training rating (a code sums its item's whole column), so a step
# costs more as the data grows while an epoch holds more steps: at MovieLens-1M's shape
# (742,000 training ratings, 182 steps an epoch) an epoch of the item autoencoder took about
# a minute on one thread, and ten epochs of patience would add ten minutes after every fit's
# best. MovieLens-100K's epochs have 20 steps: its fits are judged once an epoch, as before.
PERIOD_STEPS = 32


@dataclass(frozen=True)
class AutoencoderFit:
    """What one autoencoder fit reads: the training (user, item, rating, target) — the codes
    read the ratings, the loss the targets — and the validation (user, item, target) it
    stops on. ``target``: "rating" (squared error, scored by RMSE) or "label" (binary
    cross-entropy on a logit, scored by log-loss); ``name`` labels the progress bar;
    ``max_epochs`` caps the fit (``model.autoencoder_epochs``)."""

    train: tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]
    valid: tuple[np.ndarray, np.ndarray, np.ndarray]
    target: str
    l2: float
    name: str
    max_epochs: int = MAX_EPOCHS


def autoencoder_ratings(data: ProtocolData) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The (user, item, rating) triples of the training side that carry a rating."""
    users, items, ratings = data.train.flat()
    rated = ~np.isnan(ratings)
    return users[rated], items[rated], ratings[rated]


def validation_ratings(data: ProtocolData) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The rated validation pairs the fit stops on (None where the protocol has none)."""
    pairs = data.valid.pairs
    if pairs is None:
        return None
    rated = ~np.isnan(pairs.ratings)
    return (pairs.users[rated], pairs.items[rated], pairs.ratings[rated]) if rated.any() else None


def engagement_targets(data: ProtocolData) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The (user, item, rating, ctr label) of the training pairs that carry both: what the
    engagement autoencoder is fitted to (its codes read the ratings, its target is the label)."""
    users, items, ratings = data.train.flat()
    labels = np.concatenate(data.train.labels).astype(np.float64) if len(items) else np.zeros(0)
    keep = ~np.isnan(ratings) & ~np.isnan(labels)
    return users[keep], items[keep], ratings[keep], labels[keep]


def validation_labels(data: ProtocolData) -> tuple[np.ndarray, np.ndarray, np.ndarray] | None:
    """The labelled validation pairs the engagement fit stops on (None where there are none,
    or only one class)."""
    pairs = data.valid.pairs
    if pairs is None:
        return None
    known = ~np.isnan(pairs.labels)
    y = pairs.labels[known]
    return (pairs.users[known], pairs.items[known], y) if known.any() and 0 < y.mean() < 1 else None


def fit_item_autoencoder(
    ae: ItemAutoencoder,
    data: ProtocolData,
    l2: float,
    progress: bool = True,
    name: str = "item autoencoder",
    cache: str | Path | None = None,
    max_epochs: int = MAX_EPOCHS,
) -> float:
    """Train ``ae`` on ``data``'s training ratings (leave-one-out), keep its best state on
    validation. ``l2``: the prior's weight against the summed squared error of all
    training ratings (so it does not depend on the batch size). Returns the validation RMSE.
    ``name`` labels the progress bar (a user autoencoder is fitted the same way); ``cache``:
    a folder of fits to read this one from, or to store it in (train/fit_cache.py);
    ``max_epochs``: at most this many epochs (it stops earlier on validation)."""
    valid = validation_ratings(data)
    if valid is None:
        raise ValueError("the item autoencoder needs rated validation pairs to stop on (protocol A)")
    users, items, ratings = autoencoder_ratings(data)
    fit = AutoencoderFit((users, items, ratings, ratings), valid, "rating", l2, name, max_epochs)
    return _cached(ae, data, fit, progress, cache)


def fit_engagement_autoencoder(
    ae: ItemAutoencoder,
    data: ProtocolData,
    l2: float,
    progress: bool = True,
    cache: str | Path | None = None,
    name: str = "engagement",
    max_epochs: int = MAX_EPOCHS,
) -> float | None:
    """Train ``ae`` (either engagement view) as :func:`fit_item_autoencoder` does, to the
    training pairs' ctr labels (binary cross-entropy; ``l2`` against the summed log-loss),
    keeping its best state on the validation labels. Returns the validation log-loss; None,
    leaving ``ae`` as it was, where training or validation has no pair with both classes."""
    valid = validation_labels(data)
    train = engagement_targets(data)
    if valid is None or not 0 < train[3].mean() < 1:
        return None
    logloss = _cached(ae, data, AutoencoderFit(train, valid, "label", l2, f"{name} autoencoder", max_epochs), progress, cache)
    if hasattr(ae, "keep_offset"):  # the item-side view keeps the offset its fit added, for new users' rows
        mean = float(train[3].mean())
        ae.keep_offset(float(np.log(mean / (1 - mean))))
    return logloss


def _cached(ae: ItemAutoencoder, data: ProtocolData, fit: AutoencoderFit, progress: bool, cache: str | Path | None) -> float:
    if cache is None:
        return _fit(ae, data, fit, progress)
    # The training ratings are in ae's buffers, so the key reads them there; the targets are
    # the ratings themselves, or labels read from the same pairs.
    code = (_fit, batch_size, _shuffled_batches, type(ae), TrainingDeviation, WeightAverage, ema_decay)
    settings = {"seed": data.seed, "l2": fit.l2, "batch": BATCH, "min_steps": MIN_STEPS, "lr": LR,
                "target": fit.target, "max_epochs": fit.max_epochs, "patience": PATIENCE, "ema_epochs": EMA_EPOCHS,
                "period_steps": PERIOD_STEPS, "code": source_digest(*code)}
    arrays = fit.valid if fit.target == "rating" else (*fit.valid, fit.train[3])
    return cached_fit(cache, ae, arrays, settings, lambda: _fit(ae, data, fit, progress))


def _fit(ae: ItemAutoencoder, data: ProtocolData, fit: AutoencoderFit, progress: bool) -> float:
    """Fit ``ae`` to ``fit``'s training targets leave-one-out, each pair's own rating out of
    its code; returns the best validation score."""
    target = fit.target
    users, items, ratings, targets = (torch.from_numpy(a) for a in fit.train)
    ratings, targets = ratings.float(), targets.float()
    v_users, v_items, v_targets = (torch.from_numpy(a) for a in fit.valid)
    v_targets = v_targets.float()
    # The offset a zero deviation predicts: the mean rating, or the log-odds of the mean label.
    mean = float(targets.mean())
    offset = mean if target == "rating" else float(np.log(mean / (1 - mean)))
    metric = "valid rating RMSE" if target == "rating" else "valid ctr log-loss"

    def loss_of(pred: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        if target == "rating":
            return ((pred - y) ** 2).mean()
        return F.binary_cross_entropy_with_logits(pred, y)

    opt = torch.optim.Adam(ae.parameters(), lr=LR)
    n = len(targets)
    batch = batch_size(n)
    per_epoch = -(-n // batch)
    period = min(per_epoch, PERIOD_STEPS)  # steps between judgements: an epoch, or fewer
    averaged = WeightAverage(ae, ema_decay(EMA_EPOCHS, per_epoch, fit.max_epochs))
    best, best_state, bad = float("inf"), copy.deepcopy(ae.state_dict()), 0
    batches = _shuffled_batches(n, batch, torch.Generator().manual_seed(data.seed))
    judgements = -(-fit.max_epochs * per_epoch // period)
    bar = progress_bar(range(judgements), f"{fit.name}, protocol {data.protocol} seed {data.seed}", progress)
    for _ in bar:
        ae.train()
        for rows in itertools.islice(batches, period):
            pred = offset + ae(users[rows], items[rows], own=ae.inputs(ratings[rows]))
            loss = loss_of(pred, targets[rows]) + fit.l2 / n * ae.penalty()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
            averaged.update()
        with torch.no_grad(), averaged.applied():
            ae.eval()
            valid_loss = loss_of(offset + ae(v_users, v_items), v_targets)
            score = float(valid_loss.sqrt() if target == "rating" else valid_loss)
            if score < best - 1e-5:
                best, best_state, bad = score, copy.deepcopy(ae.state_dict()), 0
            else:
                bad += 1
        bar.set_postfix({metric: f"{score:.4f}", "best": f"{best:.4f}"})
        if bad >= PATIENCE:
            break
    ae.load_state_dict(best_state)
    return best


def batch_size(n: int) -> int:
    """Ratings per step of a fit to ``n`` targets: BATCH, fewer where an epoch would
    otherwise take under MIN_STEPS steps."""
    return max(1, min(BATCH, n // MIN_STEPS))


def _shuffled_batches(n: int, batch: int, gen: torch.Generator) -> Iterator[torch.Tensor]:
    """Index batches of ``batch`` of ``range(n)``, endlessly: one fresh permutation an epoch."""
    while True:
        yield from torch.randperm(n, generator=gen).split(batch)


def fit_user_autoencoder(
    model: PolyRecModel,
    data: ProtocolData,
    l2: float,
    progress: bool = True,
    cache: str | Path | None = None,
    max_epochs: int = MAX_EPOCHS,
) -> dict[str, float]:
    """Fit ``model``'s user autoencoder as the item autoencoder is fitted, then the share of
    its deviation in the mix the model joins: least squares on the validation ratings, in
    [0, 1], the item autoencoder's deviation fixed. Returns both views' and the mix's
    validation RMSE and the share, for the run's metrics."""
    user_ae = model.user_autoencoder
    rmse = fit_item_autoencoder(user_ae, data, l2, progress, name="user autoencoder", cache=cache, max_epochs=max_epochs)
    users, items, ratings = validation_ratings(data)
    with torch.no_grad():
        model.eval()
        pair = torch.from_numpy(users), torch.from_numpy(items)
        d_item = model.item_autoencoder(*pair).numpy().astype(np.float64)
        d_user = user_ae(*pair).numpy().astype(np.float64)
    target = ratings - float(model.global_mean)
    share = blend_share(d_item, d_user, target)
    user_ae.share.fill_(share)
    mixed = float(np.sqrt(np.mean(((1 - share) * d_item + share * d_user - target) ** 2)))
    return {"user_valid_rmse": rmse, "user_share": share, "mixed_valid_rmse": mixed}
