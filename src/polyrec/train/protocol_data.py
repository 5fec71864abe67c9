"""What one protocol and seed hand to training and evaluation: inputs, targets, users."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..config import RunConfig
from ..data.splits import (
    InteractionSplit, UserSplit, for_deployment, profile_for_deployment, profile_split, protocol_a, protocol_b,
)
from ..data.tables import Dataset
from .rating_tokens import RatingTokens
from .sequences import Histories, build_histories, concat_histories, ctr_labels


@dataclass
class PairTargets:
    """(user, item) pairs with their true rating and engagement label (NaN where unknown)."""

    users: np.ndarray
    items: np.ndarray
    ratings: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.users)


@dataclass
class EvalSide:
    """One evaluation side (valid or test) of a protocol.

    ``history`` is what the model reads for each user; ``pairs`` are scored interactions
    (protocol A); ``next_items`` are one held-out item per user (protocol B), ranked against
    the catalogue minus ``history`` — or the whole catalogue with ``repeat_items``
    (``data.repeat_items``: users take items again).
    """

    history: Histories
    pairs: PairTargets | None = None
    next_users: np.ndarray | None = None
    next_items: np.ndarray | None = None
    profile_users: np.ndarray | None = None
    repeat_items: bool = False

    def excluded(self, users: np.ndarray) -> list[np.ndarray] | None:
        """The items each of ``users`` is not ranked or recommended: their history, or none
        where users take items again."""
        return None if self.repeat_items else [self.history.items[u] for u in users]


@dataclass
class ProtocolData:
    protocol: str
    seed: int
    split: InteractionSplit
    train: Histories  # the inputs and the targets of training
    valid: EvalSide
    test: EvalSide
    rating_tokens: RatingTokens
    global_mean: float
    profile_labels: dict[str, np.ndarray] = field(default_factory=dict)  # per user; −1 outside train users
    profile_true: dict[str, np.ndarray] = field(default_factory=dict)  # per user, all users (eval only)
    attribute_classes: dict[str, list[str]] = field(default_factory=dict)
    user_split: UserSplit | None = None
    notes: list[str] = field(default_factory=list)
    user_vectors: np.ndarray | None = None  # (users, D) text vectors, an input (Dataset.user_vectors)
    deploy: bool = False  # no test side: it trains (``data.deploy``, ``splits.for_deployment``)


def prepare_configured(ds: Dataset, protocol: str, seed: int, cfg: RunConfig, profile: bool) -> ProtocolData:
    """:func:`prepare` with the settings a run's config gives it."""
    return prepare(
        ds, protocol, seed, cfg.data.ctr_threshold, cfg.model.rating_levels, profile, cfg.data.repeat_items, cfg.data.deploy
    )


def _pairs(ds: Dataset, rows: np.ndarray, ctr_threshold: float | None) -> PairTargets:
    inter = ds.interactions
    ratings = inter["rating"].to_numpy(dtype=np.float64)[rows] if ds.has_rating else np.full(len(rows), np.nan)
    lab = ctr_labels(ds, ctr_threshold)
    labels = lab[rows] if lab is not None else np.full(len(rows), np.nan)
    return PairTargets(inter["user"].to_numpy()[rows], inter["item"].to_numpy()[rows], ratings, labels)


def rated_values(ds: Dataset, rows: np.ndarray) -> np.ndarray | None:
    """The ratings of the interactions at ``rows`` that have one (None where the data has no
    rating column): an interaction without a rating still reads as history and next item."""
    if not ds.has_rating:
        return None
    ratings = ds.interactions["rating"].to_numpy(dtype=np.float64)[rows]
    return ratings[~np.isnan(ratings)]


def prepare(
    ds: Dataset, protocol: str, seed: int, ctr_threshold: float | None, rating_levels: int, profile: bool,
    repeat_items: bool = False,
    deploy: bool = False,
) -> ProtocolData:
    """Split ``ds`` under ``protocol`` ("A" or "B") for ``seed``; nothing from test reaches
    ``train``. ``repeat_items``: protocol B ranks the history too (``EvalSide.excluded``).
    ``deploy``: there is no test side; what it held trains (``splits.for_deployment``)."""
    if protocol not in ("A", "B"):
        raise ValueError(f"unknown protocol '{protocol}'; protocols: A, B")
    split = protocol_a(ds, seed) if protocol == "A" else protocol_b(ds, seed)
    if deploy:
        split = for_deployment(split)
    train_ratings = rated_values(ds, split.train)
    tokens = RatingTokens.fit(train_ratings, rating_levels, labels_only=ds.has_label and not ds.has_rating)
    global_mean = float(np.mean(train_ratings)) if train_ratings is not None and len(train_ratings) else 0.0
    train = build_histories(ds, split.train, tokens, ctr_threshold)
    if protocol == "A":
        valid = EvalSide(train, pairs=_pairs(ds, split.valid, ctr_threshold))
        test = EvalSide(train, pairs=_pairs(ds, split.test, ctr_threshold))
    else:
        valid_hist = build_histories(ds, split.valid, tokens, ctr_threshold)
        test_hist = build_histories(ds, split.test, tokens, ctr_threshold)
        v_users = np.flatnonzero(valid_hist.lengths() > 0)
        t_users = np.flatnonzero(test_hist.lengths() > 0)
        valid = EvalSide(train, next_users=v_users, next_items=np.array([valid_hist.items[u][0] for u in v_users]),
                         repeat_items=repeat_items)  # fmt: skip
        # The test input holds the valid item too: it is known by then, and it is not test data.
        test = EvalSide(
            concat_histories(train, valid_hist),
            next_users=t_users,
            next_items=np.array([test_hist.items[u][0] for u in t_users]),
            repeat_items=repeat_items,
        )
    data = ProtocolData(protocol, seed, split, train, valid, test, tokens, global_mean, notes=list(split.notes),
                        user_vectors=ds.user_vectors, deploy=deploy)  # fmt: skip
    if profile and ds.attributes:
        us = profile_for_deployment(profile_split(ds, seed)) if deploy else profile_split(ds, seed)
        data.user_split = us
        valid.profile_users, test.profile_users = us.valid, us.test
        for attr in ds.attributes:
            codes, classes = ds.attribute_codes(attr)
            train_only = np.full(ds.n_users, -1, dtype=np.int64)
            train_only[us.train] = codes[us.train]  # held-out users' attributes never reach training
            data.profile_labels[attr] = train_only
            data.profile_true[attr] = codes
            data.attribute_classes[attr] = classes
    return data
