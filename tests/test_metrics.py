"""Point metrics against scikit-learn, ranking metrics against hand-computed ranks."""

from __future__ import annotations

import math

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.metrics import f1_score, log_loss, mean_absolute_error, mean_squared_error, roc_auc_score

from polyrec.eval.metrics import accuracy, auc, classification_metrics, logloss, macro_f1, mae, rmse
from polyrec.eval.ranking import NOT_A_CANDIDATE, ranking_metrics, target_ranks

# ----------------------------------------------------------------------------- point metrics


def test_rmse_mae_hand_and_sklearn() -> None:
    t = np.array([1.0, 2.0, 3.0, 4.0])
    p = np.array([1.0, 3.0, 1.0, 4.0])
    assert rmse(t, p) == pytest.approx(math.sqrt((0 + 1 + 4 + 0) / 4))
    assert mae(t, p) == pytest.approx((0 + 1 + 2 + 0) / 4)
    rng = np.random.default_rng(0)
    t, p = rng.normal(size=50), rng.normal(size=50)
    assert rmse(t, p) == pytest.approx(math.sqrt(mean_squared_error(t, p)))
    assert mae(t, p) == pytest.approx(mean_absolute_error(t, p))


def test_length_mismatch_and_empty_raise() -> None:
    with pytest.raises(ValueError):
        rmse(np.ones(3), np.ones(4))
    with pytest.raises(ValueError):
        mae(np.array([]), np.array([]))


def test_auc_with_ties_matches_sklearn_and_hand() -> None:
    # Positive 0.5 ties with a negative 0.5: that pair counts 1/2.
    # Pairs (pos, neg): (0.8, 0.1)=1 (0.8, 0.5)=1 (0.5, 0.1)=1 (0.5, 0.5)=0.5 -> 3.5 / 4.
    y = np.array([0, 0, 1, 1])
    s = np.array([0.1, 0.5, 0.5, 0.8])
    assert auc(y, s) == pytest.approx(3.5 / 4)
    rng = np.random.default_rng(1)
    y = rng.integers(0, 2, size=200)
    s = np.round(rng.normal(size=200) + y, 1)  # rounding creates many ties
    assert auc(y, s) == pytest.approx(roc_auc_score(y, s))


def test_auc_single_class_is_nan() -> None:
    assert math.isnan(auc(np.ones(5, dtype=int), np.arange(5.0)))


def test_logloss_matches_sklearn_and_clips() -> None:
    rng = np.random.default_rng(2)
    y = rng.integers(0, 2, size=100)
    p = rng.uniform(0.01, 0.99, size=100)
    assert logloss(y, p) == pytest.approx(log_loss(y, p))
    # A certain, wrong prediction is clipped to eps: loss -log(eps) / n, finite.
    assert logloss(np.array([1, 0]), np.array([0.0, 0.0]), eps=1e-7) == pytest.approx(-math.log(1e-7) / 2)


def test_accuracy_and_macro_f1() -> None:
    t = np.array([0, 0, 1, 1, 2, 2])
    p = np.array([0, 1, 1, 1, 0, 2])
    assert accuracy(t, p) == pytest.approx(4 / 6)
    assert macro_f1(t, p) == pytest.approx(f1_score(t, p, average="macro"))
    # Class 3 never occurs nor is predicted: listing it adds an F1 of 0 to the average.
    assert macro_f1(t, p, labels=[0, 1, 2, 3]) == pytest.approx(f1_score(t, p, average="macro") * 3 / 4)


def test_classification_metrics_binary_and_multiclass() -> None:
    y = np.array([0, 1, 1, 0])
    proba = np.array([[0.9, 0.1], [0.2, 0.8], [0.6, 0.4], [0.3, 0.7]])
    out = classification_metrics(y, proba)
    assert set(out) == {"auc", "accuracy"}
    assert out["auc"] == pytest.approx(roc_auc_score(y, proba[:, 1]))
    assert out["accuracy"] == pytest.approx(2 / 4)

    y = np.array([0, 1, 2, 2])
    proba = np.array([[0.5, 0.3, 0.2], [0.1, 0.8, 0.1], [0.6, 0.2, 0.2], [0.1, 0.1, 0.8]])
    out = classification_metrics(y, proba)
    assert set(out) == {"accuracy", "macro_f1"}
    assert out["accuracy"] == pytest.approx(3 / 4)
    assert out["macro_f1"] == pytest.approx(f1_score(y, [0, 1, 0, 2], average="macro"))
    with pytest.raises(ValueError):
        classification_metrics(np.array([0, 3]), np.full((2, 3), 1 / 3))


# ----------------------------------------------------------------------------- ranking

# 3 users, 5 items, worked out by hand:
#  user 0: target 1 (0.5). Item 0 (0.9) is excluded, so it does not count although it
#          scores higher; item 4 (0.7) beats it; item 2 (0.5) ties and counts against.
#          rank = 1 + |{2, 4}| = 3.
#  user 1: target 4 (0.5) is in its own exclusion list (a re-consumed item): it is not a
#          candidate either, so it is never a hit, although nothing beats it.
#  user 2: all five items tie, nothing excluded: rank = 1 + 4 = 5.
SCORES = np.array(
    [
        [0.9, 0.5, 0.5, 0.1, 0.7],
        [0.1, 0.2, 0.3, 0.4, 0.5],
        [0.3, 0.3, 0.3, 0.3, 0.3],
    ]
)
TARGETS = np.array([1, 4, 0])
EXCLUDE = [np.array([0, 0]), np.array([4, 3]), np.array([], dtype=np.int64)]  # duplicate on purpose
HAND_RANKS = np.array([3, NOT_A_CANDIDATE, 5])


def _as_csr(lists: list[np.ndarray], n_items: int) -> sp.csr_matrix:
    rows = np.repeat(np.arange(len(lists)), [len(e) for e in lists])
    cols = np.concatenate(lists).astype(np.int64)
    return sp.csr_matrix((np.ones(cols.size), (rows, cols)), shape=(len(lists), n_items))


def _brute_force_ranks(scores: np.ndarray, targets: np.ndarray, exclude: list[np.ndarray]) -> np.ndarray:
    ranks = []
    for u, t in enumerate(targets):
        excluded = set(exclude[u].tolist())
        if int(t) in excluded:
            ranks.append(NOT_A_CANDIDATE)
            continue
        better = sum(1 for j in range(scores.shape[1]) if j != t and j not in excluded and scores[u, j] >= scores[u, t])
        ranks.append(better + 1)
    return np.array(ranks)


def test_target_ranks_hand_example_list_and_sparse() -> None:
    np.testing.assert_array_equal(target_ranks(SCORES, TARGETS, EXCLUDE), HAND_RANKS)
    np.testing.assert_array_equal(target_ranks(SCORES, TARGETS, _as_csr(EXCLUDE, 5)), HAND_RANKS)
    # Without exclusions user 0's item 0 counts and user 1's item 4 is the target itself.
    np.testing.assert_array_equal(target_ranks(SCORES, TARGETS, None), [4, 1, 5])


def test_target_ranks_sparse_pattern_counts_explicit_zeros() -> None:
    # A stored 0 (e.g. a rating of 0) is still history: item 0 must be excluded.
    m = sp.csr_matrix((np.array([0.0]), (np.array([0]), np.array([0]))), shape=(3, 5))
    assert m.nnz == 1
    assert target_ranks(SCORES, TARGETS, m)[0] == 3


def test_target_ranks_matches_brute_force_and_chunking() -> None:
    rng = np.random.default_rng(3)
    n_users, n_items = 23, 40
    scores = np.round(rng.normal(size=(n_users, n_items)), 1)  # many ties
    targets = rng.integers(0, n_items, size=n_users)
    exclude = [rng.choice(n_items, size=rng.integers(0, 15), replace=True) for _ in range(n_users)]
    exclude[0] = np.append(exclude[0], targets[0])  # a target inside its own history
    full = target_ranks(scores, targets, exclude)
    np.testing.assert_array_equal(full, _brute_force_ranks(scores, targets, exclude))

    csr = _as_csr(exclude, n_items)
    np.testing.assert_array_equal(target_ranks(scores, targets, csr), full)
    for chunk in (1, 5, 7):
        parts_list = [
            target_ranks(scores[s : s + chunk], targets[s : s + chunk], exclude[s : s + chunk])
            for s in range(0, n_users, chunk)
        ]
        parts_csr = [
            target_ranks(scores[s : s + chunk], targets[s : s + chunk], csr[s : s + chunk])
            for s in range(0, n_users, chunk)
        ]
        np.testing.assert_array_equal(np.concatenate(parts_list), full)
        np.testing.assert_array_equal(np.concatenate(parts_csr), full)


def test_target_ranks_rejects_bad_input() -> None:
    with pytest.raises(ValueError):
        target_ranks(SCORES, np.array([1, 5, 0]), EXCLUDE)  # target out of range
    with pytest.raises(ValueError):
        target_ranks(SCORES, TARGETS, EXCLUDE[:2])  # exclusion rows missing
    with pytest.raises(ValueError):
        target_ranks(SCORES, TARGETS, _as_csr(EXCLUDE, 6))  # wrong catalogue size
    bad = SCORES.copy()
    bad[0, 3] = np.nan
    with pytest.raises(ValueError):
        target_ranks(bad, TARGETS, EXCLUDE)


def test_ranking_metrics_hand_values() -> None:
    ranks = np.array([1, 3, 15, 25])
    out = ranking_metrics(ranks)
    assert list(out) == ["hr@10", "ndcg@10", "mrr@10", "hr@20", "ndcg@20", "mrr@20"]
    assert out["hr@10"] == pytest.approx(2 / 4)
    assert out["ndcg@10"] == pytest.approx((1 + 1 / math.log2(4)) / 4)
    assert out["mrr@10"] == pytest.approx((1 + 1 / 3) / 4)
    assert out["hr@20"] == pytest.approx(3 / 4)
    assert out["ndcg@20"] == pytest.approx((1 + 1 / math.log2(4) + 1 / math.log2(16)) / 4)
    assert out["mrr@20"] == pytest.approx((1 + 1 / 3 + 1 / 15) / 4)
    # Rank exactly K is a hit at K.
    assert ranking_metrics(np.array([10]), ks=(10,))["hr@10"] == 1.0
    assert ranking_metrics(np.array([11]), ks=(10,))["ndcg@10"] == 0.0
    with pytest.raises(ValueError):
        ranking_metrics(np.array([0, 1]))


def test_hand_example_end_to_end() -> None:
    out = ranking_metrics(target_ranks(SCORES, TARGETS, EXCLUDE), ks=(1, 3))
    assert out["hr@1"] == 0.0  # user 1's re-consumed target, first of its row, is a miss
    assert out["hr@3"] == pytest.approx(1 / 3)  # user 0, at rank 3
    assert out["ndcg@3"] == pytest.approx((1 / math.log2(4)) / 3)
    assert out["mrr@3"] == pytest.approx((1 / 3) / 3)
    unexcluded = ranking_metrics(target_ranks(SCORES, TARGETS, None), ks=(1,))
    assert unexcluded["hr@1"] == pytest.approx(1 / 3)  # with nothing excluded, user 1 is first
