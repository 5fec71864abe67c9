"""Point metrics for rating regression, CTR and user-attribute classification.

Every function takes 1-D numpy arrays of equal length ``n`` (one entry per test
example) and returns a plain ``float``; nothing here knows about datasets or models.
Class labels are integer class indices ``0 .. C-1`` (what ``Dataset.attribute_codes``
produces once the ``-1`` missing codes are dropped), so column ``c`` of a probability
matrix is the probability of class ``c``.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
from sklearn.metrics import f1_score, roc_auc_score


def _pair(y_true: np.ndarray, y_other: np.ndarray, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Both arrays as 1-D numpy arrays of the same, non-zero length."""
    a = np.asarray(y_true).reshape(-1)
    b = np.asarray(y_other).reshape(-1)
    if a.shape != b.shape:
        raise ValueError(f"{name}: y_true has {a.size} entries but the other array has {b.size}")
    if a.size == 0:
        raise ValueError(f"{name}: empty input")
    return a, b


def rmse(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Root mean squared error, in rating units.

    ``y_true``, ``y_pred``: shape (n,), float.
    """
    t, p = _pair(y_true, y_pred, "rmse")
    return float(np.sqrt(np.mean((t.astype(np.float64) - p.astype(np.float64)) ** 2)))


def mae(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Mean absolute error, in rating units.

    ``y_true``, ``y_pred``: shape (n,), float.
    """
    t, p = _pair(y_true, y_pred, "mae")
    return float(np.mean(np.abs(t.astype(np.float64) - p.astype(np.float64))))


def auc(y_true: np.ndarray, scores: np.ndarray) -> float:
    """Area under the ROC curve, in [0, 1]; ``nan`` if ``y_true`` holds a single class.

    ``y_true``: shape (n,), binary 0/1. ``scores``: shape (n,), any real score where
    higher means "more likely 1" (a probability, a logit or a popularity count). Tied
    scores count one half, exactly as ``sklearn.metrics.roc_auc_score``.
    """
    t, s = _pair(y_true, scores, "auc")
    # A one-class test set has no ROC curve; nan (not an exception) lets a report show
    # the gap instead of aborting a whole run over one small split.
    if np.unique(t).size < 2:
        return float("nan")
    return float(roc_auc_score(t, s))


def logloss(y_true: np.ndarray, prob: np.ndarray, eps: float = 1e-7) -> float:
    """Mean binary cross-entropy, in nats per example.

    ``y_true``: shape (n,), binary 0/1. ``prob``: shape (n,), predicted P(y = 1).
    Probabilities are clipped to ``[eps, 1 - eps]`` so one confident mistake gives a
    large but finite loss.
    """
    t, p = _pair(y_true, prob, "logloss")
    t = t.astype(np.float64)
    p = np.clip(p.astype(np.float64), eps, 1.0 - eps)
    return float(-np.mean(t * np.log(p) + (1.0 - t) * np.log1p(-p)))


def accuracy(y_true: np.ndarray, y_pred: np.ndarray) -> float:
    """Fraction of exact label matches, in [0, 1].

    ``y_true``, ``y_pred``: shape (n,), integer class labels.
    """
    t, p = _pair(y_true, y_pred, "accuracy")
    return float(np.mean(t == p))


def macro_f1(y_true: np.ndarray, y_pred: np.ndarray, labels: Sequence[int] | None = None) -> float:
    """Unweighted mean of per-class F1 scores, in [0, 1].

    ``y_true``, ``y_pred``: shape (n,), integer class labels. ``labels``: the classes to
    average over; by default those present in either array. Pass the full class list
    so that a class never predicted and absent from the test set still counts (as 0,
    sklearn's ``zero_division=0``).
    """
    t, p = _pair(y_true, y_pred, "macro_f1")
    return float(f1_score(t, p, labels=labels, average="macro", zero_division=0))


def classification_metrics(y_true: np.ndarray, proba: np.ndarray) -> dict[str, float]:
    """The standard metrics of one classification task, from class probabilities.

    ``y_true``: shape (n,), integer class indices in ``0 .. C-1``.
    ``proba``: shape (n, C), row ``k`` the predicted distribution over the C classes.

    Binary (C == 2): ``{"auc", "accuracy"}``, AUC on ``proba[:, 1]``.
    Multi-class (C > 2): ``{"accuracy", "macro_f1"}``, macro-F1 over all C classes.
    Predictions are the arg-max class. The majority-class accuracy is not computed
    here: it needs the train labels, which only the caller has.
    """
    t = np.asarray(y_true).reshape(-1)
    p = np.asarray(proba, dtype=np.float64)
    if p.ndim != 2 or p.shape[0] != t.size:
        raise ValueError(f"classification_metrics: proba must have shape ({t.size}, C), got {p.shape}")
    n_classes = p.shape[1]
    if n_classes < 2:
        raise ValueError(f"classification_metrics: need at least 2 classes, got {n_classes}")
    if t.size and (t.min() < 0 or t.max() >= n_classes):
        raise ValueError(f"classification_metrics: labels must lie in 0..{n_classes - 1}")
    pred = np.argmax(p, axis=1)
    if n_classes == 2:
        return {"auc": auc(t, p[:, 1]), "accuracy": accuracy(t, pred)}
    return {
        "accuracy": accuracy(t, pred),
        "macro_f1": macro_f1(t, pred, labels=list(range(n_classes))),
    }
