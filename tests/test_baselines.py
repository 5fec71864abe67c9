"""Classical baselines on small synthetic data with a planted answer."""

from __future__ import annotations

import numpy as np
import pytest
import scipy.sparse as sp
from sklearn.exceptions import NotFittedError

from polyrec.baselines.popularity import Popularity
from polyrec.baselines.profile import MajorityClass, RatingMatrixLogReg, rating_matrix_features
from polyrec.baselines.rating import GlobalMean, UserItemBias
from polyrec.eval.metrics import accuracy, auc, rmse
from polyrec.eval.ranking import target_ranks

# ----------------------------------------------------------------------------- rating


def _planted_ratings(seed: int = 0) -> dict[str, np.ndarray | int]:
    """r = 3.5 + b_u + b_i + noise, every user rating 40 random items of 100."""
    rng = np.random.default_rng(seed)
    n_users, n_items, per_user = 300, 100, 40
    b_u = rng.normal(0, 0.5, n_users)
    b_i = rng.normal(0, 0.8, n_items)
    users = np.repeat(np.arange(n_users), per_user)
    items = np.concatenate([rng.choice(n_items, per_user, replace=False) for _ in range(n_users)])
    ratings = 3.5 + b_u[users] + b_i[items] + rng.normal(0, 0.3, users.size)
    test = rng.random(users.size) < 0.2
    return dict(users=users, items=items, ratings=ratings, test=test, b_u=b_u, b_i=b_i, n_users=n_users, n_items=n_items)


def test_user_item_bias_beats_global_mean_and_recovers_biases() -> None:
    d = _planted_ratings()
    tr, te = ~d["test"], d["test"]
    args = (d["users"][tr], d["items"][tr], d["ratings"][tr], d["n_users"], d["n_items"])
    gm = GlobalMean().fit(*args)
    uib = UserItemBias().fit(*args)
    err_gm = rmse(d["ratings"][te], gm.predict(d["users"][te], d["items"][te]))
    err_uib = rmse(d["ratings"][te], uib.predict(d["users"][te], d["items"][te]))
    # Planted spread sqrt(0.5^2 + 0.8^2 + 0.3^2) ~ 0.99 against noise 0.3.
    assert err_gm > 0.85
    assert err_uib < 0.45
    # Biases are identified up to a shared offset absorbed by mu; compare centred ones.
    b_i_hat = uib.item_bias_ - uib.item_bias_.mean()
    b_u_hat = uib.user_bias_ - uib.user_bias_.mean()
    assert np.corrcoef(b_i_hat, d["b_i"])[0, 1] > 0.95
    assert np.corrcoef(b_u_hat, d["b_u"])[0, 1] > 0.9
    assert np.mean(np.abs(b_i_hat - (d["b_i"] - d["b_i"].mean()))) < 0.15


def test_more_iterations_do_not_hurt_training_fit() -> None:
    d = _planted_ratings(1)
    args = (d["users"], d["items"], d["ratings"], d["n_users"], d["n_items"])
    one = UserItemBias(n_iters=1).fit(*args)
    many = UserItemBias(n_iters=10).fit(*args)
    assert rmse(d["ratings"], many.predict(d["users"], d["items"])) <= rmse(
        d["ratings"], one.predict(d["users"], d["items"])
    ) + 1e-12


def test_user_item_bias_unknowns_clipping_and_not_fitted() -> None:
    users = np.array([0, 0, 1, 1])
    items = np.array([0, 1, 0, 1])
    ratings = np.array([5.0, 5.0, 1.0, 5.0])
    model = UserItemBias(reg_item=0.0, reg_user=0.0, rating_range=(1.0, 5.0)).fit(users, items, ratings, 3, 3)
    mu = ratings.mean()
    # User 2 and item 2 have no ratings; index -1 and 99 are outside the range: all bias 0.
    pred = model.predict(np.array([2, -1, 0]), np.array([2, 99, 2]))
    np.testing.assert_allclose(pred[:2], [mu, mu])
    assert pred[2] == pytest.approx(mu + model.user_bias_[0])
    assert model.user_bias_[2] == 0.0 and model.item_bias_[2] == 0.0
    # Unclipped, the unregularised fit predicts 6 for (user 0, item 1) on this data.
    raw = UserItemBias(reg_item=0.0, reg_user=0.0).fit(users, items, ratings, 3, 3)
    assert raw.predict(users, items).max() > 5.0
    assert model.predict(users, items).max() == pytest.approx(5.0)
    big = UserItemBias(rating_range=(1.0, 2.0)).fit(users, items, ratings, 3, 3)
    assert big.predict(users, items).max() <= 2.0
    with pytest.raises(NotFittedError):
        UserItemBias().predict(users, items)
    with pytest.raises(NotFittedError):
        GlobalMean().predict(users, items)
    with pytest.raises(ValueError):
        UserItemBias().fit(users, np.array([0, 1, 0, 3]), ratings, 3, 3)  # item 3 >= n_items


def test_global_mean() -> None:
    gm = GlobalMean().fit(np.array([0, 1]), np.array([0, 0]), np.array([2.0, 4.0]), 2, 1)
    np.testing.assert_allclose(gm.predict(np.array([0, 1, 5]), np.array([0, 0, 0])), [3.0, 3.0, 3.0])


# ----------------------------------------------------------------------------- popularity


def test_popularity_ranks_most_frequent_first() -> None:
    users = np.array([0, 1, 2, 0, 1, 2, 3, 3])
    items = np.array([2, 2, 2, 0, 0, 1, 2, 4])  # counts: item2=4, item0=2, item1=1, item4=1, item3=0
    pop = Popularity().fit(users, items, n_users=4, n_items=5)
    np.testing.assert_array_equal(pop.score_items(), [2, 1, 4, 0, 1])
    assert int(np.argmax(pop.score_items())) == 2
    np.testing.assert_array_equal(pop.predict(np.array([0, 3]), np.array([2, 3])), [4.0, 0.0])

    scores = pop.score_users(np.array([0, 3]))
    assert scores.shape == (2, 5)
    np.testing.assert_array_equal(scores[0], scores[1])
    # Full ranking: item 2 first for everyone; item 0 second once item 2 is in the history.
    ranks = target_ranks(scores, np.array([2, 0]), [np.array([], dtype=np.int64), np.array([2])])
    np.testing.assert_array_equal(ranks, [1, 1])
    with pytest.raises(NotFittedError):
        Popularity().score_items()


def test_popularity_as_ctr_score() -> None:
    # Clicked items are the popular ones: the count ranks clicks above non-clicks.
    pop = Popularity().fit(np.zeros(6, dtype=int), np.array([0, 0, 0, 1, 1, 2]), 1, 4)
    assert auc(np.array([1, 1, 0, 0]), pop.predict(np.zeros(4, dtype=int), np.array([0, 1, 2, 3]))) == 1.0


# ----------------------------------------------------------------------------- profile


def _planted_profiles(
    n_users: int, n_classes: int, prior: list[float], seed: int, own_share: float = 0.8
) -> tuple[sp.csr_matrix, np.ndarray]:
    """Users of class c pick a share `own_share` of their items from block c, the rest anywhere.

    Ratings are random 1..5: only which items a user rated carries the label.
    """
    rng = np.random.default_rng(seed)
    n_items, block, per_user = 60 * n_classes, 60, 20
    y = rng.choice(n_classes, size=n_users, p=prior)
    rows, cols = [], []
    for u in range(n_users):
        own = rng.random(per_user) < own_share
        own_items = y[u] * block + rng.integers(0, block, per_user)
        any_items = rng.integers(0, n_items, per_user)
        picked = np.unique(np.where(own, own_items, any_items))
        rows.append(np.full(picked.size, u))
        cols.append(picked)
    r, c = np.concatenate(rows), np.concatenate(cols)
    X = sp.csr_matrix((rng.integers(1, 6, r.size).astype(float), (r, c)), shape=(n_users, n_items))
    return X, y


def test_rating_matrix_logreg_binary_beats_majority() -> None:
    # Seed 1 is a split where validation AUC picks a strongly regularised C whose raw
    # probabilities all sit below 0.5: only the Platt step makes accuracy beat majority.
    X, y = _planted_profiles(600, 2, [0.7, 0.3], seed=1, own_share=0.3)
    tr, va, te = slice(0, 400), slice(400, 500), slice(500, 600)
    model = RatingMatrixLogReg().fit(X[tr], y[tr], X[va], y[va])
    proba = model.predict_proba(X[te])
    assert proba.shape == (100, 2)
    np.testing.assert_allclose(proba.sum(axis=1), 1.0)
    assert auc(y[te], proba[:, 1]) > 0.85
    acc_major = accuracy(y[te], MajorityClass().fit(y[tr]).predict(100))
    assert accuracy(y[te], model.predict(X[te])) > acc_major + 0.1
    assert model.C_ in model.valid_scores_ and len(model.valid_scores_) == len(model.Cs)
    assert model.valid_scores_[model.C_] == max(model.valid_scores_.values())

    raw = RatingMatrixLogReg(calibrate=False).fit(X[tr], y[tr], X[va], y[va])
    assert raw.C_ == model.C_ and raw.platt_ is None and model.platt_ is not None
    # Calibration is monotone: same ranking, same AUC; the raw model predicts the majority.
    raw_proba = raw.predict_proba(X[te])
    assert auc(y[te], raw_proba[:, 1]) == pytest.approx(auc(y[te], proba[:, 1]))
    assert accuracy(y[te], raw.predict(X[te])) == pytest.approx(acc_major)


def test_rating_matrix_logreg_auc_tie_broken_by_logloss() -> None:
    # Easy data: every C reaches validation AUC 1. The most regularised one would predict
    # the majority class for everyone; the log-loss tie-break must avoid it.
    X, y = _planted_profiles(600, 2, [0.7, 0.3], seed=0, own_share=0.8)
    tr, va, te = slice(0, 400), slice(400, 500), slice(500, 600)
    model = RatingMatrixLogReg(calibrate=False).fit(X[tr], y[tr], X[va], y[va])
    assert min(model.valid_scores_.values()) == 1.0
    assert model.C_ > min(model.Cs)
    assert accuracy(y[te], model.predict(X[te])) > 0.95


def test_rating_matrix_logreg_multiclass_with_class_missing_from_train() -> None:
    X, y = _planted_profiles(500, 3, [0.5, 0.3, 0.2], seed=1, own_share=0.3)
    tr, te = slice(0, 350), slice(350, 500)
    model = RatingMatrixLogReg(n_classes=4).fit(X[tr], y[tr])  # class 3 never occurs
    proba = model.predict_proba(X[te])
    assert proba.shape == (150, 4)
    np.testing.assert_allclose(proba[:, 3], 0.0)
    acc_major = accuracy(y[te], MajorityClass(n_classes=4).fit(y[tr]).predict(150))
    assert accuracy(y[te], model.predict(X[te])) > acc_major + 0.1
    with pytest.raises(NotFittedError):
        RatingMatrixLogReg().predict_proba(X[te])
    with pytest.raises(ValueError):
        model.predict_proba(X[te][:, :10])  # wrong catalogue


def test_majority_class() -> None:
    m = MajorityClass().fit(np.array([2, 0, 2, 2]))
    np.testing.assert_allclose(m.predict_proba(2), [[0.25, 0.0, 0.75], [0.25, 0.0, 0.75]])
    np.testing.assert_array_equal(m.predict(3), [2, 2, 2])
    with pytest.raises(NotFittedError):
        MajorityClass().predict_proba(1)
    with pytest.raises(ValueError):
        MajorityClass().fit(np.array([0, -1]))  # missing labels must be dropped first


def test_rating_matrix_features() -> None:
    X = sp.csr_matrix(np.array([[3.0, 4.0, 0.0], [0.0, 0.0, 0.0], [2.0, 0.0, 4.0]]))
    l2 = rating_matrix_features(X, "l2").toarray()
    np.testing.assert_allclose(l2[0], [0.6, 0.8, 0.0])
    np.testing.assert_allclose(l2[1], 0.0)  # an empty user stays empty
    centred = rating_matrix_features(X, "center").toarray()
    np.testing.assert_allclose(centred[2], [-1.0, 0.0, 1.0])
    np.testing.assert_allclose(rating_matrix_features(X, "none").toarray(), X.toarray())
    with pytest.raises(ValueError):
        rating_matrix_features(X, "zscore")  # type: ignore[arg-type]
