"""Leak-free splits, exactly as ../shared/PROTOCOLS.md defines them.

Protocol A (rating, ctr, profile): a seeded random 80/10/10 split of interactions, and a
10-fold split of users for profile attributes that depends on the data only.
Protocol B (next item): per user, the last interaction is test, the one before is valid.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, replace

import numpy as np
from sklearn.model_selection import StratifiedKFold

from .tables import Dataset

N_PROFILE_FOLDS = 10
# The user folds must not move with the run's seed (PROTOCOLS.md): seeds 0..9 are then
# 10-fold cross-validation. This constant is part of the protocol, not a tunable.
_PROFILE_FOLD_SEED = 20121


@dataclass(frozen=True)
class InteractionSplit:
    """Row positions (into ``Dataset.interactions``) of each side of a split."""

    protocol: str
    seed: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class UserSplit:
    """Users whose attributes train, validate and test the profile task."""

    fold_test: int
    fold_valid: int
    train: np.ndarray
    valid: np.ndarray
    test: np.ndarray


def protocol_a(ds: Dataset, seed: int) -> InteractionSplit:
    """Test = random 10% of all interactions; valid = random 10% of the rest."""
    n = len(ds.interactions)
    perm = np.random.default_rng(seed).permutation(n)
    n_test = int(round(0.1 * n))
    n_valid = int(round(0.1 * (n - n_test)))
    test = np.sort(perm[:n_test])
    valid = np.sort(perm[n_test : n_test + n_valid])
    train = np.sort(perm[n_test + n_valid :])
    return InteractionSplit("A", seed, train, valid, test)


def chronological_order(ds: Dataset) -> np.ndarray:
    """Row positions sorted by (user, timestamp), ties and missing timestamps in file order."""
    inter = ds.interactions
    rows = np.arange(len(inter))
    if ds.has_timestamp:
        # lexsort is stable: equal (user, timestamp) keep file order.
        return np.lexsort((rows, inter["timestamp"].to_numpy(), inter["user"].to_numpy()))
    return np.lexsort((rows, inter["user"].to_numpy()))


LEAVE_ONE_OUT_MIN = 3  # a protocol-B user needs a training, a validation and a test item


def protocol_b(ds: Dataset, seed: int = 0) -> InteractionSplit:
    """Leave-one-out by time: per user test = last, valid = the one before; <3 → train only.

    The split does not depend on ``seed``; it is kept so every split has the same call.
    """
    order = chronological_order(ds)
    users = ds.interactions["user"].to_numpy()[order]
    counts = np.bincount(users, minlength=ds.n_users)
    # position of each row within its user's chronological sequence, counted from the end
    first_of_group = np.r_[True, users[1:] != users[:-1]]
    group_start = np.maximum.accumulate(np.where(first_of_group, np.arange(len(users)), 0))
    from_end = counts[users] - 1 - (np.arange(len(users)) - group_start)
    eligible = counts[users] >= LEAVE_ONE_OUT_MIN
    test = np.sort(order[eligible & (from_end == 0)])
    valid = np.sort(order[eligible & (from_end == 1)])
    train = np.sort(order[~(eligible & (from_end <= 1))])
    notes: tuple[str, ...] = ()
    if not ds.has_timestamp:
        notes = ("no timestamp column: protocol B orders each user's interactions by file order",)
    return InteractionSplit("B", seed, train, valid, test, notes)


def repeated_held_out(ds: Dataset, split: InteractionSplit) -> tuple[int, int]:
    """How many of protocol B's test items, and of its validation items, the user took before
    (on the side's input: training and validation for test, training for validation)."""
    keys = ds.interactions["user"].to_numpy() * ds.n_items + ds.interactions["item"].to_numpy()
    test = np.isin(keys[split.test], keys[np.concatenate([split.train, split.valid])])
    valid = np.isin(keys[split.valid], keys[split.train])
    return int(test.sum()), int(valid.sum())


def profile_folds(ds: Dataset) -> np.ndarray:
    """Fold number (0..9) of every user, stratified by gender (else the first attribute).

    Users without the stratifying attribute form their own stratum, so they are spread
    over folds too. Depends on the data only, never on the run's seed.
    """
    strat_attr = ds.main_attribute
    if strat_attr is None:
        raise ValueError("profile folds need at least one user attribute")
    codes, _ = ds.attribute_codes(strat_attr)
    folds = np.empty(ds.n_users, dtype=np.int64)
    skf = StratifiedKFold(n_splits=N_PROFILE_FOLDS, shuffle=True, random_state=_PROFILE_FOLD_SEED)
    with warnings.catch_warnings():
        # A tiny class (fewer users than folds) only makes a fold imbalanced; that is fine.
        warnings.simplefilter("ignore", UserWarning)
        for k, (_, test_idx) in enumerate(skf.split(np.zeros(ds.n_users), codes)):
            folds[test_idx] = k
    return folds


def profile_split(ds: Dataset, seed: int) -> UserSplit:
    """Run ``seed`` tests fold ``seed % 10``, validates on ``(seed+1) % 10``, trains on the rest."""
    folds = profile_folds(ds)
    f_test, f_valid = seed % N_PROFILE_FOLDS, (seed + 1) % N_PROFILE_FOLDS
    users = np.arange(ds.n_users)
    return UserSplit(
        fold_test=f_test,
        fold_valid=f_valid,
        train=users[(folds != f_test) & (folds != f_valid)],
        valid=users[folds == f_valid],
        test=users[folds == f_test],
    )


def for_deployment(split: InteractionSplit) -> InteractionSplit:
    """``split`` with no test side (``data.deploy``): protocol A's test interactions train;
    protocol B's validation items train and its test items (each user's latest) validate."""
    empty = split.test[:0]
    if split.protocol == "A":
        note = "data.deploy: protocol A trains on its test interactions too (90 % of all), and validates on 10 %; no test side"
        train, valid = np.sort(np.concatenate([split.train, split.test])), split.valid
    else:
        note = "data.deploy: protocol B validates on each user's latest item and trains on the rest; no test side"
        train, valid = np.sort(np.concatenate([split.train, split.valid])), split.test
    return replace(split, train=train, valid=valid, test=empty, notes=(*split.notes, note))


def profile_for_deployment(users: UserSplit) -> UserSplit:
    """``users`` with the tested fold's attributes training too (``data.deploy``)."""
    return replace(users, train=np.sort(np.concatenate([users.train, users.test])), test=users.test[:0])
