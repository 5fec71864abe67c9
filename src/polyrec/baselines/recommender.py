"""A run of a classical baseline (``polyrec run --model NAME``), loaded to answer by id."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp
import yaml

from ..run_loader import LEARNER_FILE
from ..recommender_base import RecommenderBase
from .factors import FactorModel
from .learners import FACTORS, LOGREG
from .profile import sparse_ratings


class BaselineRecommender(RecommenderBase):
    """Answers with the saved model of each protocol (the first seed's), like polyrec's runs.

    A baseline's ``ctr`` is a score (e.g. the predicted rating), not a probability; the
    public ``predict`` names it ``ctr_score``.
    """

    def __init__(self, folders: dict[str, Path], items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame):
        super().__init__(items, users, interactions)
        self.factors: dict[str, FactorModel] = {}  # task → model
        self.logreg: dict = {}
        self.tasks = set()
        for folder in folders.values():
            meta = yaml.safe_load((folder / LEARNER_FILE).read_text())
            self.name = meta["model"]
            if (folder / FACTORS).is_file():
                model = FactorModel.load(folder / FACTORS)
                self.factors.update({t: model for t in meta["tasks"]})
            if (folder / LOGREG).is_file():
                with open(folder / LOGREG, "rb") as f:
                    saved = pickle.load(f)
                self.logreg, self.attribute_classes = saved["models"], saved["classes"]
            self.tasks |= set(meta["tasks"])
        if "rating" in interactions and interactions["rating"].notna().any():
            self.rating_range = (float(interactions["rating"].min()), float(interactions["rating"].max()))
        self._interactions = interactions
        self._rating_rows: sp.csr_matrix | None = None  # (U, I) profile features, built on first use

    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        if "next_item" not in self.factors:
            return super().catalogue_scores(users)
        return self.factors["next_item"].score_users(users)

    def pair_predictions(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        out = {t: self.factors[t].predict(users, items) for t in ("rating", "ctr") if t in self.factors}
        return out or super().pair_predictions(users, items)

    def profile_probabilities(self, users: np.ndarray) -> dict[str, np.ndarray]:
        if not self.logreg:
            return super().profile_probabilities(users)
        if self._rating_rows is None:
            inter = self._interactions
            rating = inter["rating"].to_numpy(dtype=np.float64) if "rating" in inter else np.ones(len(inter))
            self._rating_rows = sparse_ratings(
                inter["user"].to_numpy(), inter["item"].to_numpy(), rating, len(self.users_), self.n_items
            )
        X = self._rating_rows[users]
        return {name: m.predict_proba(X) for name, m in self.logreg.items()}

    def predict(self, user_ids: list[str], item_ids: list[str]) -> pd.DataFrame:
        return super().predict(user_ids, item_ids).rename(columns={"ctr": "ctr_score"})
