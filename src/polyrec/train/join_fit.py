"""Recipe: after fine-tuning, set how the separately fitted views join the model's
predictions, on validation data only (an ensemble fitted as PROTOCOLS.md allows).

- ``fit_join``: the item autoencoder's share of the rating; the ctr logit's weights on the
  model's own logit, the autoencoder's deviation and each ctr view (engagement autoencoders,
  kNN views), by logistic regression on the validation pairs.
- ``fit_profile_join``: a logistic regression per attribute on the item autoencoder's user
  rows, kept only where it raises the attribute's validation metric.
- ``fit_history_profile``: the same on the tf-idf rows of the users' training ratings, kept
  only where it raises the attribute's validation metric.

The heads do not read these views while they train: given a frozen autoencoder's
predictions on the very ratings it was fitted to, they learn to trust it more than it
deserves on new pairs (MovieLens-100K, protocol A, seeds 0–2: validation rating RMSE 0.888,
where the autoencoder alone has 0.887 and the join on validation 0.883).
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import torch
from sklearn.linear_model import LogisticRegression

from ..eval.evaluate import profile_metrics
from ..eval.predict import predict_pairs, profile_probabilities
from ..models.history_profile import item_idf, rating_heights, tfidf_rows
from ..models.polyrec import PolyRecModel
from .protocol_data import ProtocolData
from .solve_memo import remembered


def blend_share(a: np.ndarray, b: np.ndarray, target: np.ndarray) -> float:
    """The ``s`` in [0, 1] whose blend ``(1 − s) · a + s · b`` is nearest ``target`` in
    squared error (least squares, clipped)."""
    gap = a - b
    return float(np.clip(np.dot(gap, a - target) / max(np.dot(gap, gap), 1e-12), 0.0, 1.0))


@torch.no_grad()
def fit_join(model: PolyRecModel, data: ProtocolData) -> dict[str, float]:
    """Set how the autoencoders join ``model``'s rating and ctr, on the validation pairs: the
    item autoencoder's rating share by least squares (in [0, 1]); the ctr logit's weights
    (``model.ctr_join`` and each ctr view's) by logistic regression on the model logit, the
    item autoencoder's deviation and each ctr view's value (the engagement autoencoders' logits,
    the kNN views' residuals), those the model has. Returns them, for the run's metrics."""
    ae, pairs, views = model.item_autoencoder, data.valid.pairs, model.ctr_views()
    if model.ctr_join is None or pairs is None or not len(pairs):
        return {}
    if ae is not None:
        ae.rating_share.zero_()
    model.ctr_join.copy_(torch.tensor([1.0, 0.0, 0.0]))
    for view in views.values():
        view.weight.zero_()
    own = predict_pairs(model, data.valid.history, pairs.users, pairs.items)
    model.eval()
    pair = torch.from_numpy(pairs.users), torch.from_numpy(pairs.items)
    d = None if ae is None else model.autoencoder_deviation(*pair).numpy().astype(np.float64)
    joined: dict[str, float] = {}
    rated = ~np.isnan(pairs.ratings)
    if ae is not None and "rating" in own and rated.any():
        share = blend_share(own["rating"][rated], float(model.global_mean) + d[rated], pairs.ratings[rated])
        ae.rating_share.fill_(share)
        joined["rating_share"] = share
    labelled = ~np.isnan(pairs.labels)
    y = pairs.labels[labelled]
    if "ctr" in own and labelled.any() and 0 < y.mean() < 1:
        p = np.clip(own["ctr"][labelled], 1e-7, 1 - 1e-7)
        columns = [np.log(p / (1 - p))] + ([] if d is None else [d[labelled]])
        columns += [view(*pair).numpy().astype(np.float64)[labelled] for view in views.values()]
        lr = LogisticRegression(C=100.0).fit(np.column_stack(columns), y)
        coef = list(lr.coef_[0])
        a = coef.pop(0)
        b = 0.0 if d is None else coef.pop(0)
        model.ctr_join.copy_(torch.tensor([a, b, lr.intercept_[0]], dtype=torch.float32))
        joined["ctr_model_weight"] = float(a)
        if d is not None:
            joined["ctr_autoencoder_weight"] = float(b)
        for (name, view), weight in zip(views.items(), coef):
            view.weight.fill_(float(weight))
            joined[f"ctr_{name}_weight"] = float(weight)
    return joined


PROFILE_C = 0.001  # strong L2: 2 × width features against a few hundred users' labels


def fit_profile_join(model: PolyRecModel, data: ProtocolData) -> list[str]:
    """Fit ``model.user_row_profile``: per attribute, a logistic regression on the item
    autoencoder's standardised user rows, from the training users' labels only (held-out
    users' attributes never reach it). An attribute keeps it only where it raises the
    attribute's main validation metric (AUC for two classes, else accuracy): on
    MovieLens-100K it helped gender and was mixed on age and occupation. Returns the
    attributes that kept it."""
    head, ae = model.user_row_profile, model.item_autoencoder
    if head is None or ae is None or not data.profile_labels:
        return []
    rows = ae.user_rows().numpy().astype(np.float64)
    train_users = np.flatnonzero(np.any([labels >= 0 for labels in data.profile_labels.values()], axis=0))
    head.set_scaler(rows[train_users].mean(0), rows[train_users].std(0) + 1e-8)
    x = (rows - head.mean.numpy()) / head.scale.numpy()
    for name in head.names:
        head.clear(name)
    parts = {}
    for name, labels in data.profile_labels.items():
        part = user_row_classifier(x, labels, len(model.spec.attribute_classes[name])) if name in head.names else None
        if part is not None:
            parts[name] = part
    return _kept_where_better(model, data, list(parts), lambda name: head.set_attribute(name, *parts[name]), head.clear)


HISTORY_PROFILE_C = 1.0  # scikit-learn's default (0.3 did worse and 3 as well in a probe; docs/model.md)


def fit_history_profile(model: PolyRecModel, data: ProtocolData) -> list[str]:
    """Fit ``model.history_profile``: per attribute, the logits of
    :func:`history_profile_parts`, kept only where they raise the attribute's main validation
    metric (AUC for two classes, else accuracy) beside what the profile already joins.
    Returns the attributes that kept them."""
    head = model.history_profile
    if head is None or not data.profile_labels:
        return []
    for name in head.names:
        head.clear(name)
    users, items, ratings = data.train.flat()
    head.set_scale(item_idf(items, data.train.n_users, model.spec.n_items), *rating_heights(ratings))
    parts = history_profile_parts(data, model.spec.n_items, model.spec.attribute_classes)
    return _kept_where_better(model, data, list(parts), lambda name: head.set_attribute(name, *parts[name]), head.clear)


def history_profile_parts(
    data: ProtocolData, n_items: int, classes: dict[str, list[str]]
) -> dict[str, tuple[np.ndarray, np.ndarray, np.ndarray]]:
    """Per attribute with at least two classes known: (users, classes) logits of every
    training-side user from a logistic regression on the tf-idf rows of the training ratings
    (models/history_profile.py), fitted to the training users' labels only, less each class's
    log prior share among them: the head's logits carry the prior already, and counted twice it
    pushed every user toward the majority class (MovieLens-100K, seeds 0-1: test gender
    accuracy 0.800 / 0.789 → 0.779 / 0.758; AUC is blind to it). A class no training user has
    gets −30. With them the (classes, items) weights and (classes,) biases that give those
    logits from any tf-idf row."""
    users, items, ratings = data.train.flat()
    rows = tfidf_rows(users, items, ratings, data.train.n_users, n_items, *rating_heights(ratings))
    parts = {}
    for name, labels in data.profile_labels.items():
        known = labels >= 0
        if len(np.unique(labels[known])) < 2:
            continue
        lr = LogisticRegression(C=HISTORY_PROFILE_C, max_iter=2000).fit(rows[known], labels[known])
        coef, intercept = lr.coef_, lr.intercept_
        if len(lr.classes_) == 2:  # one row: the second class's log-odds against the first
            coef, intercept = np.vstack([np.zeros_like(coef), coef]), np.r_[0.0, intercept]
        log_prior = np.log(np.bincount(labels[known], minlength=len(classes[name]))[lr.classes_] / known.sum())
        weight, bias = np.zeros((len(classes[name]), n_items)), np.full(len(classes[name]), -30.0)
        weight[lr.classes_] = coef
        bias[lr.classes_] = intercept - (log_prior - log_prior[0])  # per-row constants cancel in a softmax
        parts[name] = (np.asarray(rows @ weight.T) + bias, weight, bias)
    return parts


def _kept_where_better(
    model: PolyRecModel, data: ProtocolData, names: list[str], add: Callable[[str], None], clear: Callable[[str], None]
) -> list[str]:
    """The attributes among ``names`` whose main validation metric rises when ``add`` joins
    their part; the others are ``clear``ed again. An attribute's logits read its own part
    only: one pass without any, one with all."""
    without = _validation_scores(model, data, names)
    for name in names:
        add(name)
    with_parts = _validation_scores(model, data, names)
    kept = [name for name in names if with_parts[name] > without[name]]
    for name in names:
        if name not in kept:
            clear(name)
    return kept


def user_row_classifier(x: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray] | None:
    """(C, F) weights and (C,) biases of a logistic regression of ``labels`` (−1: unknown,
    left out) on the rows of ``x``, as logits over all ``n_classes`` (a class no known label
    has gets −30); None with fewer than two classes known."""
    known = labels >= 0
    if len(np.unique(labels[known])) < 2:
        return None
    # Solved once per process for equal inputs (solve_memo.py: a study's configurations of a
    # seed share the autoencoder's fit, so its user rows, through train.fit_cache).
    inputs = (x, labels, int(n_classes), PROFILE_C)
    return remembered("user_row_classifier", inputs, lambda: _solve_user_row_classifier(x, labels, n_classes))


def _solve_user_row_classifier(x: np.ndarray, labels: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    known = labels >= 0
    lr = LogisticRegression(C=PROFILE_C, max_iter=2000).fit(x[known], labels[known])
    weight, bias = np.zeros((n_classes, x.shape[1])), np.full(n_classes, -30.0)
    if len(lr.classes_) == 2:  # scikit-learn keeps one row for two classes: the second's logit
        weight[lr.classes_[1]], bias[lr.classes_[1]] = lr.coef_[0], lr.intercept_[0]
        bias[lr.classes_[0]] = 0.0
    else:
        weight[lr.classes_], bias[lr.classes_] = lr.coef_, lr.intercept_
    return weight, bias


def _validation_scores(model: PolyRecModel, data: ProtocolData, names: list[str]) -> dict[str, float]:
    """Each attribute's main validation metric (AUC for two classes, else accuracy) as the
    model stands (0 for all where the protocol has no validation users)."""
    users = data.valid.profile_users
    if users is None or not len(users) or not names:
        return {name: 0.0 for name in names}
    proba = profile_probabilities(model, data.valid.history, users)
    # Users whose attribute is unknown are left out, as on test; 0 where fewer than two classes remain.
    scores = profile_metrics("valid", data, users, {name: proba[name] for name in names})
    return {
        name: scores.get(f"valid.profile.{name}.auc", scores.get(f"valid.profile.{name}.accuracy", 0.0))
        for name in names
    }
