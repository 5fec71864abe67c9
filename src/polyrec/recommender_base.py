"""What every loaded run answers by original ids, whatever model it holds.

A subclass supplies three computations by index — catalogue scores, pair predictions,
profile probabilities — in the format the run's predictions were kept in (see
``eval.evaluate``), so an ensemble can combine members exactly as it was fitted; this
class turns them into the public answers by id.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import pandas as pd

from .popularity_penalty import penalised, popularity_scores
from .progress import bar
from .top_k import top_indices, top_k_allowed


def seen_left_out(asked: bool | None, repeat_items: bool) -> bool:
    """Whether a recommendation leaves out the user's own items: as asked, or by default
    unless the run's users take items again (``data.repeat_items``)."""
    return not repeat_items if asked is None else asked


class RecommenderBase:
    tasks: set[str] = set()
    rating_range: tuple[float, float] | None = None
    attribute_classes: dict[str, list[str]] = {}
    # The run's data.repeat_items (run_loader sets it): its users take items again, so a
    # user's own items are recommended unless a caller asks otherwise.
    repeat_items: bool = False

    def excludes_seen(self, exclude_seen: bool | None) -> bool:
        """:func:`seen_left_out` for this run."""
        return seen_left_out(exclude_seen, self.repeat_items)

    def __init__(self, items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame):
        self.items_ = items
        self.users_ = users
        self._item_index = {str(v): k for k, v in enumerate(items["item_id"])}
        self._user_index = {str(v): k for k, v in enumerate(users["user_id"])}
        u, i = interactions["user"].to_numpy(), interactions["item"].to_numpy()
        order = np.argsort(u, kind="stable")
        bounds = np.searchsorted(u[order], np.arange(len(users) + 1))
        self._seen = [i[order[bounds[k] : bounds[k + 1]]] for k in range(len(users))]
        self._popularity: np.ndarray | None = None
        # (users, times) of the interactions where the data has times; what known_until reads,
        # reduced to each user's latest on first use (only live events ask, not every load).
        self._times = (u, interactions["timestamp"].to_numpy(dtype=np.float64)) if "timestamp" in interactions.columns else None
        self._latest: np.ndarray | None = None

    @property
    def n_items(self) -> int:
        return len(self.items_)

    # -- by index: what a subclass computes ----------------------------------------------
    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        """(len(users), I) next-item scores."""
        raise ValueError("this run has no next-item model")

    def pair_predictions(self, users: np.ndarray, items: np.ndarray) -> dict[str, np.ndarray]:
        """'rating' and/or 'ctr' (a probability, or a score) per pair."""
        raise ValueError("this run predicts neither ratings nor engagement")

    def profile_probabilities(self, users: np.ndarray) -> dict[str, np.ndarray]:
        """Per attribute, (len(users), C) class probabilities."""
        raise ValueError("this run has no profile model")

    # -- by id ----------------------------------------------------------------------------
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

    def knows_user(self, user_id: str) -> bool:
        """Whether the run's data has this user."""
        return str(user_id) in self._user_index

    def in_catalogue(self, item_id: str) -> bool:
        """Whether the run's catalogue has this item."""
        return str(item_id) in self._item_index

    def seen_items(self, user_id: str) -> np.ndarray:
        """Item indices a known user has taken (what ``exclude_seen`` removes)."""
        return self._seen[self.user_index(user_id)]

    def known_until(self, user_id: str) -> float | None:
        """The time of a known user's latest interaction in the run's data (its timestamps'
        unit), or None where the data had no timestamps. An unknown user is a KeyError."""
        u = self.user_index(user_id)
        if self._times is None:
            return None
        if self._latest is None:
            self._latest = np.full(len(self.users_), np.nan)
            np.fmax.at(self._latest, *self._times)
        return None if np.isnan(self._latest[u]) else float(self._latest[u])

    def top_items(self, scores: np.ndarray, k: int, exclude: np.ndarray | None = None) -> pd.DataFrame:
        """The ``k`` best-scored items (``exclude`` never shown): item_id, text, score."""
        top, best = top_k_allowed(scores, k, exclude)  # k beyond the unseen items: never padded with seen ones
        return pd.DataFrame({"item_id": self.items_["item_id"].to_numpy()[top], "text": self.items_["text"].to_numpy()[top], "score": best})

    def item_popularity(self) -> np.ndarray:
        """(I,) each item's standardised log count of the run's interactions
        (``popularity_penalty.popularity_scores``), counted once."""
        if self._popularity is None:
            taken = np.concatenate(self._seen) if self._seen else np.zeros(0, dtype=np.int64)
            self._popularity = popularity_scores(np.bincount(taken, minlength=self.n_items))
        return self._popularity

    def _ranking_scores(self, users: np.ndarray, popularity_penalty: float) -> np.ndarray:
        """(len(users), I) what the top k are taken by: the catalogue scores, :meth:`reranked`."""
        return self.reranked(self.catalogue_scores(users), popularity_penalty)

    def reranked(self, scores: np.ndarray, popularity_penalty: float) -> np.ndarray:
        """(B, I) next-item ``scores`` re-ranked by the popularity penalty where one is given
        (popularity_penalty.py); as they are where it is 0."""
        return penalised(scores, self.item_popularity(), popularity_penalty) if popularity_penalty else scores

    def recommend(
        self, user_id: str, k: int = 10, exclude_seen: bool | None = None, popularity_penalty: float = 0.0
    ) -> pd.DataFrame:
        """Top ``k`` items for a known user: columns item_id, text, score. ``exclude_seen``
        (None: :meth:`excludes_seen`'s default) leaves out the user's own items.
        ``popularity_penalty`` β > 0 re-ranks towards less-taken items (popularity_penalty.py);
        ``score`` is then the re-ranked one."""
        scores = self._ranking_scores(np.array([self.user_index(user_id)]), popularity_penalty)[0]
        return self.top_items(scores, k, self.seen_items(user_id) if self.excludes_seen(exclude_seen) else None)

    def recommend_many(
        self,
        user_ids: Sequence[str] | None = None,
        k: int = 10,
        exclude_seen: bool | None = None,
        batch_users: int = 256,
        progress: bool = False,
        popularity_penalty: float = 0.0,
    ) -> pd.DataFrame:
        """Top ``k`` items for many known users, all of them by default (a batch export): one
        row per user and rank, columns user_id, rank (1 = best), item_id, score. Each user's
        rows are what ``recommend`` gives them (with the same ``popularity_penalty``); the
        catalogue is scored ``batch_users`` users at a time, so memory stays at ``batch_users``
        rows of scores whatever the user count."""
        if k < 1:
            raise ValueError(f"k must be at least 1, got {k}")
        users = np.arange(len(self.users_)) if user_ids is None else np.array([self.user_index(u) for u in user_ids], dtype=np.int64)
        names = self.users_["user_id"].astype(str).to_numpy()
        item_ids = self.items_["item_id"].to_numpy()
        columns: dict[str, list[np.ndarray]] = {"user_id": [], "rank": [], "item_id": [], "score": []}
        for start in bar(range(0, len(users), batch_users), "recommending", progress):
            batch = users[start : start + batch_users]
            scores = np.array(self._ranking_scores(batch, popularity_penalty))  # a copy: the seen items are masked in it
            if self.excludes_seen(exclude_seen):
                seen = [self._seen[u] for u in batch]
                scores[np.repeat(np.arange(len(batch)), [len(s) for s in seen]), np.concatenate(seen)] = -np.inf
            for row, user in zip(scores, batch):
                top = top_indices(row, k)
                columns["user_id"].append(np.full(len(top), names[user], dtype=object))
                columns["rank"].append(np.arange(1, len(top) + 1))
                columns["item_id"].append(item_ids[top])
                columns["score"].append(row[top].astype(np.float64))
        return pd.DataFrame({name: np.concatenate(parts) if parts else np.zeros(0) for name, parts in columns.items()})

    def predict(self, user_ids: list[str], item_ids: list[str]) -> pd.DataFrame:
        """Predicted rating and/or engagement for each (user, item) pair."""
        users = np.array([self.user_index(u) for u in user_ids], dtype=np.int64)
        items = np.array([self.item_index(i) for i in item_ids], dtype=np.int64)
        pred = self.clipped(self.pair_predictions(users, items))
        return pd.DataFrame({"user_id": list(map(str, user_ids)), "item_id": list(map(str, item_ids)), **pred})

    def clipped(self, pred: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Pair predictions with the rating kept inside the data's rating scale."""
        if "rating" in pred and self.rating_range is not None:
            pred = {**pred, "rating": np.clip(pred["rating"], *self.rating_range)}
        return pred

    def profile(self, user_id: str) -> dict[str, dict[str, float]]:
        """Each attribute's class probabilities for a user."""
        proba = self.profile_probabilities(np.array([self.user_index(user_id)]))
        return {name: dict(zip(self.attribute_classes[name], map(float, p[0]))) for name, p in proba.items()}

    def profiles(self, user_ids: Sequence[str] | None = None, batch_users: int = 256, progress: bool = False) -> pd.DataFrame:
        """:meth:`profile` of many known users, all of them by default (a batch export), as
        :func:`profile_rows`' table. Users are profiled ``batch_users`` at a time."""
        users = np.arange(len(self.users_)) if user_ids is None else np.array([self.user_index(u) for u in user_ids], dtype=np.int64)
        names = self.users_["user_id"].astype(str).to_numpy()
        parts = [
            profile_rows(names[batch], self.profile_probabilities(batch), self.attribute_classes)
            for batch in (users[s : s + batch_users] for s in bar(range(0, len(users), batch_users), "profiling", progress))
        ]
        return pd.concat(parts, ignore_index=True) if parts else profile_rows([], {}, {})


PROFILE_COLUMNS = ("user_id", "attribute", "rank", "value", "probability")


def profile_rows(user_ids: Sequence[str], probabilities: dict[str, np.ndarray], classes: dict[str, list[str]]) -> pd.DataFrame:
    """One row per user, attribute and class, in the order of ``user_ids``, then of the
    attributes, then by probability (rank 1: the most likely class; ties in the classes'
    order): columns user_id, attribute, rank, value, probability. ``probabilities``: per
    attribute, (len(user_ids), C) class probabilities in the order of ``classes[attribute]``."""
    users = np.asarray(user_ids, dtype=object)
    frames = []
    for name, p in probabilities.items():
        order = np.argsort(-p, axis=1, kind="stable")
        width = p.shape[1]
        frames.append(pd.DataFrame({
            "user_id": np.repeat(users, width),
            "attribute": name,
            "rank": np.tile(np.arange(1, width + 1), len(users)),
            "value": np.asarray(classes[name], dtype=object)[order].ravel(),
            "probability": np.take_along_axis(p, order, axis=1).ravel().astype(np.float64),
            "_user": np.repeat(np.arange(len(users)), width),
        }))  # fmt: skip
    if not frames:
        return pd.DataFrame(columns=list(PROFILE_COLUMNS))
    # The attributes are concatenated in order; a stable sort by user interleaves them per user.
    table = pd.concat(frames, ignore_index=True).sort_values("_user", kind="stable")
    return table.drop(columns="_user").reset_index(drop=True)
