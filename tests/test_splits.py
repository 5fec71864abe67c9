"""The evaluation splits of ../shared/PROTOCOLS.md and what ``prepare`` hands to training.

Every test checks a property the protocols promise (sizes, ordering, fold assignment, no
test or held-out attribute reaching training) on tiny hand-built ``Dataset``s, plus one pass
over the real MovieLens-100K.
"""

from __future__ import annotations

from collections import Counter

import numpy as np
import pandas as pd
import pytest

from polyrec.data.splits import (
    N_PROFILE_FOLDS,
    chronological_order,
    profile_folds,
    profile_split,
    protocol_a,
    protocol_b,
    repeated_held_out,
)
from polyrec.data.tables import Dataset
from polyrec.train.protocol_data import prepare

CTR_THRESHOLD, RATING_LEVELS = 4.0, 10


# ---------------------------------------------------------------------------- helpers


def make_dataset(
    users: list[int] | np.ndarray,
    items: list[int] | np.ndarray,
    *,
    ratings: list[float] | np.ndarray | None = None,
    timestamps: list[float] | np.ndarray | None = None,
    user_attributes: dict[str, list[object]] | None = None,
    n_users: int | None = None,
    n_items: int | None = None,
) -> Dataset:
    """A ``Dataset`` with interactions in the given (file) order."""
    users, items = np.asarray(users, dtype=np.int64), np.asarray(items, dtype=np.int64)
    n_users = int(users.max()) + 1 if n_users is None else n_users
    n_items = int(items.max()) + 1 if n_items is None else n_items
    columns: dict[str, np.ndarray] = {"user": users, "item": items}
    if ratings is not None:
        columns["rating"] = np.asarray(ratings, dtype=np.float64)
    if timestamps is not None:
        columns["timestamp"] = np.asarray(timestamps, dtype=np.float64)
    user_table = pd.DataFrame({"user_id": [f"u{u}" for u in range(n_users)]})
    for name, values in (user_attributes or {}).items():
        user_table[name] = pd.Series(values, dtype=object)
    item_table = pd.DataFrame({"item_id": [f"i{i}" for i in range(n_items)]})
    item_table["text"] = item_table["item_id"]
    return Dataset(
        name="synthetic",
        users=user_table,
        items=item_table,
        interactions=pd.DataFrame(columns),
        attributes=list(user_attributes or {}),
    )


def random_dataset(
    seed: int = 0,
    n_users: int = 200,
    n_items: int = 60,
    timestamps: bool = True,
    female_share: float = 0.3,
) -> Dataset:
    """Users with 1..20 distinct items each (so (user, item) identifies a row), interactions
    shuffled in file order, a unique rating per row (so (user, item, rating) does too),
    timestamps with many ties, and gender/age attributes (one user's gender missing)."""
    rng = np.random.default_rng(seed)
    counts = rng.integers(1, 21, n_users)
    users = np.repeat(np.arange(n_users), counts)
    items = np.concatenate([rng.choice(n_items, c, replace=False) for c in counts])
    perm = rng.permutation(len(users))
    users, items = users[perm], items[perm]
    ratings = 1.0 + np.round(rng.permutation(len(users)) * (4.0 / len(users)), 9)
    n_female = int(round(female_share * n_users))
    gender: list[object] = ["F"] * n_female + ["M"] * (n_users - n_female)
    gender = [gender[k] for k in rng.permutation(n_users)]
    gender[7] = pd.NA
    age = [["<18", "18-24", "25-34", "35-44"][k] for k in rng.integers(0, 4, n_users)]
    return make_dataset(
        users,
        items,
        ratings=ratings,
        timestamps=rng.integers(0, 8, len(users)).astype(float) if timestamps else None,
        user_attributes={"gender": gender, "age": age},
        n_users=n_users,
        n_items=n_items,
    )


def triples(ds: Dataset, rows: np.ndarray) -> Counter:
    inter = ds.interactions
    u, i, r = (inter[c].to_numpy()[rows] for c in ("user", "item", "rating"))
    return Counter(zip(u.tolist(), i.tolist(), r.tolist()))


def history_triples(hist, users: range | np.ndarray | None = None) -> Counter:
    users = range(hist.n_users) if users is None else users
    return Counter(
        (u, int(i), float(r)) for u in users for i, r in zip(hist.items[u], hist.ratings[u])
    )


def expected_b_split(ds: Dataset) -> tuple[set[int], set[int]]:
    """Protocol B test/valid rows computed the slow, obvious way (Python sort, which is stable)."""
    inter = ds.interactions
    ts = inter["timestamp"].to_numpy() if ds.has_timestamp else np.zeros(len(inter))
    per_user: dict[int, list[int]] = {}
    for row, u in enumerate(inter["user"].to_numpy()):
        per_user.setdefault(int(u), []).append(row)
    test, valid = set(), set()
    for rows in per_user.values():
        if len(rows) < 3:
            continue
        ordered = sorted(rows, key=lambda r: ts[r])
        test.add(ordered[-1])
        valid.add(ordered[-2])
    return test, valid


# ---------------------------------------------------------------------------- protocol A


@pytest.mark.parametrize(
    ("n", "n_test", "n_valid"),
    [(1000, 100, 90), (997, 100, 90), (1234, 123, 111), (25, 2, 2)],
)
def test_protocol_a_sides_are_disjoint_cover_all_rows_and_have_protocol_sizes(n, n_test, n_valid) -> None:
    ds = make_dataset(np.arange(n) % 7, np.arange(n) % 11)
    split = protocol_a(ds, seed=3)
    assert (len(split.test), len(split.valid), len(split.train)) == (n_test, n_valid, n - n_test - n_valid)
    every = np.concatenate([split.train, split.valid, split.test])
    assert len(np.unique(every)) == n  # disjoint ...
    assert np.array_equal(np.sort(every), np.arange(n))  # ... and covering every row
    assert split.protocol == "A" and split.seed == 3


def test_protocol_a_is_random_over_the_file() -> None:
    ds = make_dataset(np.arange(1000) % 7, np.arange(1000) % 11)
    split = protocol_a(ds, seed=0)
    # a random 10%, not a block: test rows come from every tenth of the file
    assert len(np.unique(split.test // 100)) == 10
    assert len(np.unique(split.valid // 100)) == 10


def test_protocol_a_same_seed_same_split_other_seed_other_split() -> None:
    ds = make_dataset(np.arange(500) % 13, np.arange(500) % 17)
    first, again = protocol_a(ds, seed=1), protocol_a(ds, seed=1)
    for side in ("train", "valid", "test"):
        assert np.array_equal(getattr(first, side), getattr(again, side))
    other = protocol_a(ds, seed=2)
    assert not np.array_equal(first.test, other.test)
    assert not np.array_equal(first.valid, other.valid)
    # not merely shifted: the two test sets overlap about as much as chance allows (~10%)
    assert len(np.intersect1d(first.test, other.test)) < 0.5 * len(first.test)


# ---------------------------------------------------------------------------- protocol B


def test_protocol_b_hand_built_with_timestamp_ties() -> None:
    # row: 0  1  2  3  4  5  6  7  8  9 10 11 12
    users = [0, 1, 0, 2, 0, 2, 0, 3, 2, 1, 4, 4, 4]
    items = [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 0, 1, 2]
    ts = [5, 1, 9, 7, 1, 7, 9, 3, 7, 2, 4, 4, 2]
    # user 0: rows 4(t1) 0(t5) 2(t9) 6(t9) -> the tie at t9 goes to file order: test 6, valid 2
    # user 1: two interactions -> train only;  user 3: one -> train only
    # user 2: rows 3, 5, 8 all at t7 -> file order: test 8, valid 5
    # user 4: rows 12(t2) 10(t4) 11(t4) -> test 11, valid 10
    ds = make_dataset(users, items, timestamps=ts)
    split = protocol_b(ds)
    assert split.test.tolist() == [6, 8, 11]
    assert split.valid.tolist() == [2, 5, 10]
    assert split.train.tolist() == [0, 1, 3, 4, 7, 9, 12]
    assert split.protocol == "B" and split.notes == ()


def test_protocol_b_latest_is_test_the_one_before_is_valid_on_random_data() -> None:
    ds = random_dataset(seed=1)
    split = protocol_b(ds)
    test, valid = expected_b_split(ds)
    assert set(split.test.tolist()) == test
    assert set(split.valid.tolist()) == valid
    every = np.concatenate([split.train, split.valid, split.test])
    assert np.array_equal(np.sort(every), np.arange(len(ds.interactions)))

    inter = ds.interactions
    users, ts = inter["user"].to_numpy(), inter["timestamp"].to_numpy()
    counts = np.bincount(users, minlength=ds.n_users)
    assert (counts < 3).any() and (counts >= 3).any()
    # exactly one test and one valid row per user with >= 3 interactions, none for the others
    assert np.array_equal(np.bincount(users[split.test], minlength=ds.n_users), (counts >= 3).astype(int))
    assert np.array_equal(np.bincount(users[split.valid], minlength=ds.n_users), (counts >= 3).astype(int))
    valid_of = {int(users[r]): int(r) for r in split.valid}
    for t_row in split.test:
        u = users[t_row]
        v_row = valid_of[int(u)]
        own_train = split.train[users[split.train] == u]
        assert ts[t_row] >= ts[v_row] and (ts[own_train] <= ts[v_row]).all()


def test_protocol_b_without_timestamps_uses_file_order_and_says_so() -> None:
    users = [1, 0, 1, 0, 1, 0, 1, 2, 2]
    ds = make_dataset(users, list(range(9)))
    assert not ds.has_timestamp
    split = protocol_b(ds)
    # user 0: rows 1, 3, 5; user 1: rows 0, 2, 4, 6; user 2: two rows -> train only
    assert split.test.tolist() == [5, 6]
    assert split.valid.tolist() == [3, 4]
    assert split.train.tolist() == [0, 1, 2, 7, 8]
    assert any("file order" in note and "timestamp" in note for note in split.notes)


def test_protocol_b_does_not_move_with_the_seed() -> None:
    ds = random_dataset(seed=2)
    a, b = protocol_b(ds, seed=0), protocol_b(ds, seed=5)
    for side in ("train", "valid", "test"):
        assert np.array_equal(getattr(a, side), getattr(b, side))


def test_chronological_order_sorts_by_user_then_time_then_file_order() -> None:
    ds = make_dataset([1, 0, 1, 0, 1], [0, 1, 2, 3, 4], timestamps=[3, 2, 1, 2, 3])
    assert chronological_order(ds).tolist() == [1, 3, 2, 0, 4]


# ---------------------------------------------------------------------------- profile folds


def test_profile_folds_do_not_depend_on_the_run_seed() -> None:
    ds = random_dataset(seed=3)
    np.random.seed(123)  # global random state must not matter either
    folds = profile_folds(ds)
    np.random.seed(999)
    assert np.array_equal(folds, profile_folds(ds))
    assert np.array_equal(profile_split(ds, 0).test, profile_split(ds, 10).test)
    assert np.array_equal(profile_split(ds, 0).valid, profile_split(ds, 10).valid)
    assert np.array_equal(profile_split(ds, 3).test, profile_split(ds, 23).test)


def test_profile_folds_partition_users_into_ten_balanced_folds() -> None:
    ds = random_dataset(seed=4, n_users=203)
    folds = profile_folds(ds)
    assert folds.shape == (ds.n_users,)
    assert set(folds.tolist()) == set(range(N_PROFILE_FOLDS)) and N_PROFILE_FOLDS == 10
    sizes = np.bincount(folds, minlength=10)
    assert sizes.max() - sizes.min() <= 2
    tested = np.concatenate([profile_split(ds, s).test for s in range(10)])
    assert np.array_equal(np.sort(tested), np.arange(ds.n_users))  # each user tested exactly once


def test_profile_folds_are_stratified_by_gender() -> None:
    ds = random_dataset(seed=5, n_users=400, female_share=0.25)
    folds = profile_folds(ds)
    female = (ds.users["gender"] == "F").fillna(False).to_numpy(dtype=bool)
    overall = female.mean()
    for k in range(10):
        in_fold = folds == k
        # a random (unstratified) 40-user fold would often be off by 3+ women
        assert abs(female[in_fold].sum() - overall * in_fold.sum()) <= 1.0, k


def test_profile_folds_stratify_by_first_attribute_without_gender() -> None:
    n = 300
    occupation = ["a"] * 30 + ["b"] * 270  # a block: unshuffled folds would put all "a" together
    ds = make_dataset(np.arange(n), np.zeros(n), user_attributes={"occupation": occupation, "x": ["y"] * n})
    folds = profile_folds(ds)
    assert (np.bincount(folds[:30], minlength=10) == 3).all()


def test_profile_split_seed_picks_test_fold_and_next_fold_as_valid() -> None:
    ds = random_dataset(seed=6)
    folds = profile_folds(ds)
    everyone = np.arange(ds.n_users)
    for s in (0, 1, 2, 9, 14):
        us = profile_split(ds, s)
        assert (us.fold_test, us.fold_valid) == (s % 10, (s + 1) % 10)
        assert np.array_equal(us.test, everyone[folds == s % 10])
        assert np.array_equal(us.valid, everyone[folds == (s + 1) % 10])
        assert np.array_equal(us.valid, profile_split(ds, s + 1).test)
        assert np.array_equal(np.sort(np.concatenate([us.train, us.valid, us.test])), everyone)
        assert len(np.intersect1d(us.train, us.valid)) == len(np.intersect1d(us.train, us.test)) == 0
        assert set(folds[us.train].tolist()) == set(range(10)) - {s % 10, (s + 1) % 10}
    tests = [set(profile_split(ds, s).test.tolist()) for s in (0, 1, 2)]
    assert all(tests) and not (tests[0] & tests[1] or tests[0] & tests[2] or tests[1] & tests[2])


# ---------------------------------------------------------------------------- prepare: protocol A


@pytest.mark.parametrize("seed", [0, 1])
def test_prepare_a_train_histories_hold_exactly_the_train_rows(seed) -> None:
    ds = random_dataset(seed=7)
    data = prepare(ds, "A", seed, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    split = data.split
    assert np.array_equal(split.test, protocol_a(ds, seed).test)
    inter = ds.interactions
    u, i = inter["user"].to_numpy(), inter["item"].to_numpy()

    train_pairs = {(uu, int(ii)) for uu in range(ds.n_users) for ii in data.train.items[uu]}
    held_out = set(zip(u[np.r_[split.valid, split.test]].tolist(), i[np.r_[split.valid, split.test]].tolist()))
    assert len(held_out) == len(split.valid) + len(split.test)
    assert not train_pairs & held_out  # no valid or test (user, item) in any train history

    # ratings: a test/valid (user, item, rating) never shows up; the train ones all do, once
    assert history_triples(data.train) == triples(ds, split.train)
    assert not set(history_triples(data.train)) & set(triples(ds, split.test))

    # the input history for test (and valid) is the train history, nothing more
    for side in (data.test, data.valid):
        assert history_triples(side.history) == triples(ds, split.train)
    # the scored pairs are exactly the held-out rows
    assert sorted(zip(data.test.pairs.users.tolist(), data.test.pairs.items.tolist())) == sorted(
        zip(u[split.test].tolist(), i[split.test].tolist())
    )
    assert np.array_equal(data.test.pairs.ratings, inter["rating"].to_numpy()[split.test])
    assert len(data.valid.pairs) == len(split.valid)


def test_prepare_a_histories_are_chronological_per_user() -> None:
    ds = random_dataset(seed=8)
    data = prepare(ds, "A", 0, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    inter = ds.interactions
    ts = dict(zip(zip(inter["user"].tolist(), inter["item"].tolist()), inter["timestamp"].tolist()))
    for u in range(ds.n_users):
        times = [ts[(u, int(i))] for i in data.train.items[u]]
        assert times == sorted(times)


def test_prepare_a_rating_statistics_come_from_train_only() -> None:
    base = random_dataset(seed=9)
    split = protocol_a(base, seed=0)  # depends on the row count and seed only
    ratings = np.round(base.interactions["rating"].to_numpy()).clip(1, 5)
    ratings[split.test] = 9.0  # a value only test holds
    ratings[split.valid] = 7.0  # and one only valid holds
    ds = make_dataset(
        base.interactions["user"], base.interactions["item"], ratings=ratings,
        timestamps=base.interactions["timestamp"], n_users=base.n_users, n_items=base.n_items,
    )  # fmt: skip
    data = prepare(ds, "A", 0, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    assert np.array_equal(data.split.test, split.test)
    assert 9.0 not in data.rating_tokens.levels and 7.0 not in data.rating_tokens.levels
    assert data.global_mean == pytest.approx(ratings[split.train].mean())
    seen = np.concatenate(data.train.ratings)
    assert seen.max() <= 5.0 and len(seen) == len(split.train)
    assert (data.test.pairs.ratings == 9.0).all()


@pytest.mark.parametrize("protocol", ["A", "B"])
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_prepare_profile_labels_hide_valid_and_test_users(protocol, seed) -> None:
    ds = random_dataset(seed=10)
    data = prepare(ds, protocol, seed, CTR_THRESHOLD, RATING_LEVELS, profile=True)
    us = data.user_split
    assert np.array_equal(us.test, profile_split(ds, seed).test)
    assert np.array_equal(data.test.profile_users, us.test)
    assert np.array_equal(data.valid.profile_users, us.valid)
    held_out = np.r_[us.valid, us.test]
    assert len(held_out) > 0 and len(us.train) > 0
    for attr in ds.attributes:
        codes, classes = ds.attribute_codes(attr)
        labels = data.profile_labels[attr]
        assert labels.shape == (ds.n_users,)
        assert (labels[held_out] == -1).all()
        assert np.array_equal(labels[us.train], codes[us.train])
        assert (labels[us.train] >= 0).sum() >= len(us.train) - 1  # only user 7 lacks gender
        assert np.array_equal(data.profile_true[attr], codes)
        assert data.attribute_classes[attr] == classes
    # held-out users still keep their train interactions as input
    assert sum(len(data.train.items[u]) for u in us.test) > 0


def test_prepare_without_profile_sets_no_labels() -> None:
    ds = random_dataset(seed=11)
    data = prepare(ds, "A", 0, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    assert data.profile_labels == {} and data.user_split is None


# ---------------------------------------------------------------------------- prepare: protocol B


@pytest.mark.parametrize("with_timestamps", [True, False])
def test_prepare_b_test_input_is_train_plus_valid_item(with_timestamps) -> None:
    ds = random_dataset(seed=12, timestamps=with_timestamps)
    data = prepare(ds, "B", 0, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    split = data.split
    inter = ds.interactions
    users, items = inter["user"].to_numpy(), inter["item"].to_numpy()
    ratings = inter["rating"].to_numpy()
    valid_of = {int(users[r]): int(r) for r in split.valid}
    test_of = {int(users[r]): int(r) for r in split.test}
    assert set(valid_of) == set(test_of)

    # train histories hold the train rows only
    assert history_triples(data.train) == triples(ds, split.train)
    assert not set(history_triples(data.train)) & set(triples(ds, np.r_[split.valid, split.test]))

    for u in range(ds.n_users):
        train_items, train_ratings = data.train.items[u], data.train.ratings[u]
        # valid input: train only
        assert np.array_equal(data.valid.history.items[u], train_items)
        assert np.array_equal(data.valid.history.ratings[u], train_ratings)
        t_items, t_ratings = data.test.history.items[u], data.test.history.ratings[u]
        if u in valid_of:
            v = valid_of[u]
            assert np.array_equal(t_items, np.r_[train_items, items[v]])
            assert np.array_equal(t_ratings, np.r_[train_ratings, ratings[v]])
            t = test_of[u]  # the test occurrence (its unique rating) is not in the input
            assert ratings[t] not in t_ratings
        else:  # fewer than 3 interactions: all in train, nothing to predict
            assert np.array_equal(t_items, train_items)
            assert len(train_items) == np.sum(users == u)

    assert sorted(data.test.next_users.tolist()) == sorted(test_of)
    assert [items[test_of[u]] for u in data.test.next_users] == data.test.next_items.tolist()
    assert [items[valid_of[u]] for u in data.valid.next_users] == data.valid.next_items.tolist()
    if not with_timestamps:
        assert any("file order" in note for note in data.notes)


def test_prepare_b_tokens_encode_valid_item_like_train() -> None:
    ds = random_dataset(seed=13)
    data = prepare(ds, "B", 0, CTR_THRESHOLD, RATING_LEVELS, profile=False)
    for u in data.test.next_users[:20]:
        n = len(data.train.tokens[u])
        assert np.array_equal(data.test.history.tokens[u][:n], data.train.tokens[u])
        assert len(data.test.history.tokens[u]) == n + 1
        assert len(data.test.history.labels[u]) == n + 1


# ---------------------------------------------------------------------------- MovieLens-100K


@pytest.fixture(scope="module")
def ml100k() -> Dataset:
    from polyrec.data.loader import load_dataset

    return load_dataset()


def test_ml100k_splits(ml100k) -> None:
    ds = ml100k
    n = len(ds.interactions)
    assert n == 100_000 and ds.n_users == 943

    a = protocol_a(ds, 0)
    assert (len(a.test), len(a.valid), len(a.train)) == (10_000, 9_000, 81_000)
    assert np.array_equal(np.sort(np.r_[a.train, a.valid, a.test]), np.arange(n))

    b = protocol_b(ds)
    users, ts = ds.interactions["user"].to_numpy(), ds.interactions["timestamp"].to_numpy()
    assert len(b.test) == len(b.valid) == 943  # every ML-100K user has >= 20 ratings
    assert np.array_equal(np.sort(users[b.test]), np.arange(943))
    latest = pd.Series(ts).groupby(users).max().to_numpy()
    assert np.array_equal(ts[b.test], latest[users[b.test]])
    t_by_user, v_by_user = b.test[np.argsort(users[b.test])], b.valid[np.argsort(users[b.valid])]
    assert (ts[v_by_user] <= ts[t_by_user]).all()
    train_latest = pd.Series(ts[b.train]).groupby(users[b.train]).max()
    assert (train_latest.to_numpy() <= ts[v_by_user]).all()

    folds = profile_folds(ds)
    sizes = np.bincount(folds, minlength=10)
    assert sizes.sum() == 943 and sizes.min() >= 94 and sizes.max() <= 95
    female = (ds.users["gender"] == "F").to_numpy()
    overall = female.mean()
    for k in range(10):
        assert abs(female[folds == k].mean() - overall) < 0.02


def test_ml100k_prepare_a_leaks_nothing(ml100k) -> None:
    ds = ml100k
    data = prepare(ds, "A", 1, CTR_THRESHOLD, RATING_LEVELS, profile=True)
    split = data.split
    inter = ds.interactions
    u, i = inter["user"].to_numpy(), inter["item"].to_numpy()
    key = u * ds.n_items + i  # ML-100K has no repeated (user, item) pair
    assert len(np.unique(key)) == len(key)
    hist_keys = np.concatenate([uu * ds.n_items + data.test.history.items[uu] for uu in range(ds.n_users)])
    assert np.array_equal(np.sort(hist_keys), np.sort(key[split.train]))
    assert not np.isin(key[np.r_[split.valid, split.test]], hist_keys).any()
    us = data.user_split
    assert (us.fold_test, us.fold_valid) == (1, 2)
    for attr in ds.attributes:
        assert (data.profile_labels[attr][np.r_[us.valid, us.test]] == -1).all()
        assert np.array_equal(data.profile_labels[attr][us.train], data.profile_true[attr][us.train])


def test_protocol_b_counts_held_out_items_the_user_took_before() -> None:
    # user 0 takes 5, 6, 5, 7 (test 7, valid 5: taken at the first step); user 1 takes 1, 2, 1
    # (test 1: taken first); user 2 takes 3, 3 (too few: training only, not counted).
    users = [0, 0, 0, 0, 1, 1, 1, 2, 2]
    items = [5, 6, 5, 7, 1, 2, 1, 3, 3]
    ds = make_dataset(users, items, timestamps=list(range(9)))
    assert repeated_held_out(ds, protocol_b(ds)) == (1, 1)
    fresh = make_dataset(users, [5, 6, 8, 7, 1, 2, 4, 3, 3], timestamps=list(range(9)))
    assert repeated_held_out(fresh, protocol_b(fresh)) == (0, 0)


# ---------------------------------------------------------------------------- data.deploy


@pytest.mark.parametrize("protocol", ["A", "B"])
def test_a_deployment_split_trains_on_what_test_held_and_still_validates(protocol) -> None:
    ds = random_dataset(seed=11)
    measured = prepare(ds, protocol, 0, CTR_THRESHOLD, RATING_LEVELS, profile=True)
    deployed = prepare(ds, protocol, 0, CTR_THRESHOLD, RATING_LEVELS, profile=True, deploy=True)
    split, before = deployed.split, measured.split
    assert deployed.deploy and len(split.test) == 0 and len(before.test) > 0
    everything = np.arange(len(ds.interactions))
    assert np.array_equal(np.sort(np.r_[split.train, split.valid]), everything)  # every row trains or validates
    if protocol == "A":  # the same validation pairs; the test pairs train
        assert np.array_equal(split.valid, before.valid)
        assert history_triples(deployed.train) == triples(ds, np.r_[before.train, before.test])
    else:  # each user's latest item validates; the one before it trains
        assert np.array_equal(split.valid, before.test)
        assert history_triples(deployed.train) == triples(ds, np.r_[before.train, before.valid])
        assert np.array_equal(deployed.valid.next_users, measured.test.next_users)
        assert np.array_equal(deployed.valid.next_items, measured.test.next_items)
    assert history_triples(deployed.valid.history) == history_triples(deployed.train)
    assert len(deployed.test.next_users if protocol == "B" else deployed.test.pairs) == 0
    # The tested fold's attributes train; the validation fold's stay held out.
    us, us_before = deployed.user_split, measured.user_split
    assert np.array_equal(us.train, np.sort(np.r_[us_before.train, us_before.test])) and len(us.test) == 0
    assert np.array_equal(us.valid, us_before.valid)
    for attr in ds.attributes:
        codes, _ = ds.attribute_codes(attr)
        assert np.array_equal(deployed.profile_labels[attr][us.train], codes[us.train])
        assert (deployed.profile_labels[attr][us.valid] == -1).all()
