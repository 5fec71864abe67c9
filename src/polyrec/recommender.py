"""A trained run as one object: recommend, predict and profile by original ids.

``polyrec.load("runs/NAME")`` returns a :class:`Recommender`. It reads the models that
``polyrec run`` saved (protocol B's for next-item retrieval, protocol A's for ratings,
engagement and profiles, each falling back to the other) and uses every known interaction
of a user as that user's history.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import torch

from .data.tables import Dataset
from .eval.predict import predict_pairs, profile_probabilities, score_users
from .models.io import load_model
from .models.polyrec import PolyRecModel
from .train.sequences import Histories, RatingTokens, build_histories

ITEMS, USERS, INTERACTIONS = "items.parquet", "users.parquet", "interactions.parquet"


def save_tables(ds: Dataset, out: Path) -> None:
    """The id maps, item texts and interactions a saved run needs to answer by id."""
    ds.items.astype({"item_id": str}).to_parquet(out / ITEMS, index=False)
    ds.users.astype("string").to_parquet(out / USERS, index=False)  # missing stays missing
    ds.interactions.to_parquet(out / INTERACTIONS, index=False)


class Recommender:
    def __init__(self, models: dict[str, PolyRecModel], items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame):
        if not models:
            raise ValueError("a Recommender needs at least one model")
        self.models_ = models
        self.items_ = items
        self.users_ = users
        self._item_index = {str(v): k for k, v in enumerate(items["item_id"])}
        self._user_index = {str(v): k for k, v in enumerate(users["user_id"])}
        ds = Dataset("saved", users, items, interactions)
        self._histories: dict[str, Histories] = {}
        for p, m in models.items():
            tokens = RatingTokens(tuple(m.spec.rating_levels), m.spec.labels_only)
            self._histories[p] = build_histories(ds, np.arange(len(interactions)), tokens, m.spec.ctr_threshold)

    @classmethod
    def load(cls, path: str | Path) -> "Recommender":
        path = Path(path)
        folders = {p.name: p for p in sorted((path / "model").glob("*")) if p.is_dir()}
        if not folders:
            raise FileNotFoundError(f"{path}: no saved model (expected {path}/model/<protocol>/)")
        models = {name: load_model(folder) for name, folder in folders.items()}
        tables = [pd.read_parquet(path / f) for f in (ITEMS, USERS, INTERACTIONS)]
        return cls(models, *tables)

    def _model(self, task: str, prefer: tuple[str, ...]) -> tuple[str, PolyRecModel]:
        for p in prefer + tuple(self.models_):
            if p in self.models_ and task in self.models_[p].heads:
                return p, self.models_[p]
        raise ValueError(f"no saved model of this run learned the task '{task}'")

    def user_index(self, user_id: str) -> int:
        try:
            return self._user_index[str(user_id)]
        except KeyError:
            raise KeyError(f"unknown user '{user_id}'") from None

    def item_index(self, item_id: str) -> int:
        try:
            return self._item_index[str(item_id)]
        except KeyError:
            raise KeyError(f"unknown item '{item_id}'") from None

    @torch.no_grad()
    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame:
        """Top ``k`` items for a known user: columns item_id, text, score."""
        p, model = self._model("next_item", ("B", "A"))
        u = self.user_index(user_id)
        hist = self._histories[p]
        scores = score_users(model, hist, np.array([u]))[0]
        if exclude_seen:
            scores[hist.items[u]] = -np.inf
        top = np.argsort(-scores, kind="stable")[:k]
        top = top[np.isfinite(scores[top])]  # k beyond the unseen items: never pad with seen ones
        return pd.DataFrame(
            {"item_id": self.items_["item_id"].to_numpy()[top], "text": self.items_["text"].to_numpy()[top], "score": scores[top]}
        )

    def predict(self, user_ids: list[str], item_ids: list[str]) -> pd.DataFrame:
        """Predicted rating and engagement probability for each (user, item) pair."""
        task = "rating" if any("rating" in m.heads for m in self.models_.values()) else "ctr"
        p, model = self._model(task, ("A", "B"))
        users = np.array([self.user_index(u) for u in user_ids])
        items = np.array([self.item_index(i) for i in item_ids])
        pred = predict_pairs(model, self._histories[p], users, items)
        if "rating" in pred and model.spec.rating_range is not None:
            pred["rating"] = np.clip(pred["rating"], *model.spec.rating_range)
        return pd.DataFrame({"user_id": list(map(str, user_ids)), "item_id": list(map(str, item_ids)), **pred})

    def profile(self, user_id: str) -> dict[str, dict[str, float]]:
        """Each attribute's class probabilities for a user."""
        p, model = self._model("profile", ("A", "B"))
        proba = profile_probabilities(model, self._histories[p], np.array([self.user_index(user_id)]))
        classes = model.spec.attribute_classes
        return {name: dict(zip(classes[name], map(float, pr[0]))) for name, pr in proba.items()}


def load(path: str | Path) -> Recommender:
    """Load a run folder written by ``polyrec run``."""
    return Recommender.load(path)
