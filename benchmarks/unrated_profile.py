"""What an interaction without a rating should count in the tf-idf profile view
(models/history_profile.py): 10-fold cross-validated gender AUC over all MovieLens-100K users
of the view's regression, with half of the ratings emptied at random (three halvings), each
unrated interaction counted as the lowest rating (before 2026-12-08), the scale's middle, the
rated ones' mean (``rating_heights``, the default since), the user's own mean, or the top.

    python benchmarks/unrated_profile.py
"""

from __future__ import annotations

import numpy as np
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from polyrec.data.loader import load_dataset
from polyrec.models.history_profile import rating_heights, tfidf_rows
from polyrec.train.join_fit import HISTORY_PROFILE_C


def main() -> None:
    ds = load_dataset("ml-100k")
    users, items = ds.interactions["user"].to_numpy(), ds.interactions["item"].to_numpy()
    ratings = ds.interactions["rating"].to_numpy(dtype=np.float64)
    male = (ds.users["gender"].to_numpy() == "M").astype(int)

    def auc(values: np.ndarray, unrated: float = 1.0) -> float:
        rows = tfidf_rows(users, items, values, len(ds.users), len(ds.items), 1.0, unrated)
        folds = StratifiedKFold(10, shuffle=True, random_state=0)
        scores = cross_val_predict(LogisticRegression(C=HISTORY_PROFILE_C, max_iter=2000), rows, male, cv=folds, method="decision_function")
        return roc_auc_score(male, scores)

    print(f"every rating kept: {auc(ratings):.4f}")
    for seed in range(3):
        half = ratings.copy()
        half[np.random.default_rng(seed).random(len(half)) < 0.5] = np.nan
        rated = ~np.isnan(half)
        own = np.bincount(users[rated], half[rated], len(ds.users)) / np.maximum(np.bincount(users[rated], minlength=len(ds.users)), 1)
        by_user = np.where(rated, half, np.where(own[users] > 0, own[users], np.nanmean(half)))
        found = {
            "as the lowest (1)": auc(half, 1.0),
            "the scale's middle (3)": auc(half, 3.0),
            "the rated ones' mean": auc(half, rating_heights(half)[1]),
            "the user's own mean": auc(by_user),
            "the top (5)": auc(half, 5.0),
        }
        print(f"halving {seed}: " + ", ".join(f"{name} {value:.4f}" for name, value in found.items()))


if __name__ == "__main__":
    main()
