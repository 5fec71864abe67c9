"""The tf-idf profile view (models/history_profile.py) and its validation join (train/join_fit.py)."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from sklearn.linear_model import LogisticRegression
from synthetic import strip_saved_field, tiny_config

from polyrec.config import TASKS
from polyrec.eval.metrics import classification_metrics
from polyrec.eval.predict import profile_probabilities
from polyrec.models.history_profile import rating_heights, tfidf_rows
from polyrec.train.finetune import build_model
from polyrec.train.join_fit import HISTORY_PROFILE_C, fit_history_profile, history_profile_parts
from polyrec.train.sequences import collate


def test_a_row_weighs_each_rating_by_its_height_and_the_items_rarity_at_unit_length() -> None:
    users = np.array([0, 0, 1, 2])
    items = np.array([0, 1, 1, 1])
    ratings = np.array([5.0, np.nan, 1.0, 4.0])  # no rating counts as the rated ones' mean, 10 / 3
    assert rating_heights(ratings) == (1.0, pytest.approx(10 / 3))
    rows = tfidf_rows(users, items, ratings, 3, 2, *rating_heights(ratings)).toarray()
    idf = np.log(4 / np.array([2.0, 4.0])) + 1  # item 0 has one rater, item 1 three
    expected = np.array([[5 * idf[0], 10 / 3 * idf[1]], [0, 1 * idf[1]], [0, 4 * idf[1]]])
    expected /= np.linalg.norm(expected, axis=1, keepdims=True)
    assert np.allclose(rows, expected)
    shifted = tfidf_rows(users, items, ratings - 0.5, 3, 2, *rating_heights(ratings - 0.5)).toarray()
    assert np.allclose(shifted, rows)  # a scale from 0.5 reads as one from 1
    assert rating_heights(np.array([np.nan, np.nan])) == (1.0, 1.0)  # nothing rated: every row alike


@pytest.fixture(scope="module")
def fitted(ds, data_a):
    """A tiny protocol-A model (not fine-tuned) with the view fitted and joined."""
    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    model.eval()
    return model, fit_history_profile(model, data_a)


def test_the_view_is_a_logistic_regression_on_the_training_users_labels_alone(ds, data_a, fitted) -> None:
    users, items, ratings = data_a.train.flat()
    lowest = float(np.nanmin(ratings))
    rows = tfidf_rows(users, items, ratings, data_a.train.n_users, ds.n_items, lowest, float(np.nanmean(ratings)) - lowest + 1)
    logits = {name: part[0] for name, part in history_profile_parts(data_a, ds.n_items, data_a.attribute_classes).items()}
    assert set(logits) == {"gender", "age"}
    us = data_a.user_split
    for name, labels in data_a.profile_labels.items():
        assert (labels[us.valid] == -1).all() and (labels[us.test] == -1).all()  # held out: never read
        known = labels >= 0
        lr = LogisticRegression(C=HISTORY_PROFILE_C, max_iter=2000).fit(rows[known], labels[known])
        scores = lr.decision_function(rows)
        if scores.ndim == 1:
            scores = np.column_stack([np.zeros_like(scores), scores])
        # Less each class's log prior share (the head counts the prior already), up to a constant per row.
        prior = np.log(np.array([(labels[known] == c).mean() for c in lr.classes_]))
        got = logits[name][:, lr.classes_]
        assert np.allclose(got - got[:, :1], (scores - prior) - (scores - prior)[:, :1])  # held-out users too
        absent = np.setdiff1d(np.arange(len(data_a.attribute_classes[name])), lr.classes_)
        assert (logits[name][:, absent] == -30.0).all()  # a class no training user has
    model, kept = fitted
    view = model.history_profile
    assert view is not None and model.spec.history_profile
    for name in view.names:
        table = view.table(name).numpy()
        assert np.allclose(table, logits[name], atol=1e-5) if name in kept else (table == 0).all()
    unknown = view(torch.tensor([data_a.train.n_users + 3]))
    assert all((v == 0).all() for v in unknown.values())  # a user it does not know adds nothing


def test_a_history_given_ad_hoc_gets_the_logits_its_user_has_in_the_table(data_a, fitted) -> None:
    """The kept regression gives a user read from their training history (as a user the
    model was not trained with) the very logits the fit tabled for them, held-out users too."""
    model, kept = fitted
    view = model.history_profile
    assert kept and view.n_items
    users = np.arange(data_a.train.n_users)
    batch = collate(data_a.train, users, max(len(h) for h in data_a.train.items))
    folded = view.folded(batch.items, batch.ratings, batch.mask)
    for name in view.names:
        torch.testing.assert_close(folded[name], view.table(name), atol=1e-4, rtol=1e-4)
    view.clear(kept[0])
    assert (view.folded(batch.items, batch.ratings, batch.mask)[kept[0]] == 0).all()  # cleared: nothing
    model.history_profile.set_attribute(kept[0], *history_profile_parts(data_a, model.spec.n_items, data_a.attribute_classes)[kept[0]])


def test_the_view_is_kept_exactly_where_it_raises_validation_auc(data_a, fitted) -> None:
    model, kept = fitted
    users, view = data_a.valid.profile_users, model.history_profile

    def auc() -> float:
        proba = profile_probabilities(model, data_a.valid.history, users)["gender"]
        return classification_metrics(data_a.profile_true["gender"][users], proba)["auc"]

    table = view.table("gender").clone()
    with_view = auc()
    view.clear("gender")
    without = auc()
    if "gender" in kept:
        assert with_view > without
    else:  # what it dropped adds nothing; fitted again, it would not have raised AUC
        assert with_view == without
        assert fit_history_profile(model, data_a) == []
    view.table("gender").copy_(table)


def test_an_unrated_interaction_of_a_history_given_ad_hoc_counts_the_kept_height(data_a, fitted, tmp_path) -> None:
    """A new user's row counts an interaction without a rating at the height the fit kept (the
    training ratings' mean); a model saved before that height was kept counts it as the lowest."""
    from polyrec.models.io import load_model, save_model

    model, kept = fitted
    view = model.history_profile
    items, mask = torch.tensor([[1, 2, 3]]), torch.ones(1, 3, dtype=torch.bool)
    _, unrated = rating_heights(data_a.train.flat()[2])
    assert float(view.unrated) == pytest.approx(unrated) and unrated != 1.0
    as_mean = view.folded(items, torch.tensor([[4.0, float(view.lowest) + unrated - 1, 2.0]]), mask)
    missing = view.folded(items, torch.tensor([[4.0, float("nan"), 2.0]]), mask)
    for name in kept:
        torch.testing.assert_close(missing[name], as_mean[name])
    save_model(model, tmp_path)
    strip_saved_field(tmp_path, "no such field", "history_profile.unrated")
    old = load_model(tmp_path).history_profile
    assert float(old.unrated) == 1.0
    as_lowest = view.folded(items, torch.tensor([[4.0, float(view.lowest), 2.0]]), mask)
    for name in kept:
        torch.testing.assert_close(old.folded(items, torch.tensor([[4.0, float("nan"), 2.0]]), mask)[name], as_lowest[name])


def test_a_model_saved_before_the_view_still_loads(ds, data_a, tmp_path) -> None:
    from polyrec.models.io import load_model, save_model

    torch.manual_seed(0)
    model = build_model(data_a, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    save_model(model, tmp_path)
    assert load_model(tmp_path).history_profile.n_items == ds.n_items
    # Saved before the regression was kept: the view loads without it, and folds nothing in.
    strip_saved_field(tmp_path, "history_profile_weights", *(f"history_profile.{b}" for b in ("weight_", "bias_", "idf", "lowest", "unrated")))
    view = load_model(tmp_path).history_profile
    assert view is not None and view.n_items == 0
    assert view.folded(torch.tensor([[1, 2]]), torch.tensor([[4.0, 5.0]]), torch.ones(1, 2, dtype=torch.bool)) is None
    strip_saved_field(tmp_path, "history_profile", "history_profile.")
    assert load_model(tmp_path).history_profile is None


def test_protocol_b_and_a_config_without_it_build_no_view(ds) -> None:
    from polyrec.train.protocol_data import prepare

    data_b = prepare(ds, "B", 0, 4.0, 10, True)
    model = build_model(data_b, list(TASKS), ds.n_items, None, tiny_config().model, ds.rating_range)
    assert model.history_profile is None  # B does not evaluate profile: nothing to join it on
    cfg = tiny_config().model
    cfg.history_profile = False
    data_a = prepare(ds, "A", 0, 4.0, 10, True)
    assert build_model(data_a, list(TASKS), ds.n_items, None, cfg, ds.rating_range).history_profile is None
