"""An exported run read back with onnxruntime, numpy and scipy: no PyTorch.

:class:`ExportedModel` scores the catalogue for any histories as the run's model does — the
user encoder's graph gives each history's query vector, the item vectors give the model's
scores, and the priors' maps are blended in as ``serve/blended.py`` does. Its answers equal
the run's to float rounding (``polyrec export`` checks that on a sample of users; an int8
graph's are close, and the check reports how close). :class:`ExportedRecommender` adds the
known users' histories and the id maps, and answers ``recommend`` by id like any loaded run.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import scipy.sparse as sp

from ..data.errors import DataError
from ..interests import category_shares
from ..models.prior_maps import PriorMap, blend_rows, latest_positions
from ..recommender_base import RecommenderBase
from ..run_loader import load_tables
from ..train.rating_tokens import PAD_TOKEN, RatingTokens
from .format import FORMAT, GRAPH, HISTORIES, ITEM_VECTORS, MANIFEST, ONNX_EXTRA, VERSION, MissingExtra


def read_manifest(folder: Path) -> dict:
    """The folder's manifest, checked to be an export of a version this reader knows."""
    path = folder / MANIFEST
    try:
        manifest = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise DataError(str(path), f"not a readable export manifest ({e})") from e
    if manifest.get("format") != FORMAT or manifest.get("version") != VERSION:
        found = f"format {manifest.get('format')!r} version {manifest.get('version')!r}"
        raise DataError(str(path), f"{found}; this polyrec reads {FORMAT!r} version {VERSION}")
    return manifest


class ExportedModel:
    """The next-item scorer of an exported folder."""

    def __init__(self, folder: str | Path, threads: int | None = None):
        """``threads``: onnxruntime's threads per call (None: its default, every core)."""
        try:
            import onnxruntime as ort
        except ImportError as e:
            raise MissingExtra(f"reading an exported run needs onnxruntime: {ONNX_EXTRA}") from e
        folder = Path(folder)
        self.manifest = read_manifest(folder)
        options = ort.SessionOptions()
        if threads:
            options.intra_op_num_threads = threads
        # Idle threads sleep rather than spin between calls: a service's calls are small and
        # far apart, and a spinning pool takes the cores its other requests need.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session = ort.InferenceSession(str(folder / GRAPH), options, providers=["CPUExecutionProvider"])
        self.inputs = {i.name for i in self.session.get_inputs()}
        self.item_vectors = np.load(folder / ITEM_VECTORS)
        self.priors = [
            PriorMap(float(p["share"]), float(p["decay"]), sp.load_npz(folder / p["file"]).tocsr())
            for p in self.manifest["priors"]
        ]
        self.max_history = int(self.manifest["max_history"])
        self.rating_tokens = RatingTokens(tuple(self.manifest["rating_levels"]), bool(self.manifest["labels_only"]))

    @property
    def n_items(self) -> int:
        return len(self.item_vectors)

    def tokens_of(self, ratings: np.ndarray) -> np.ndarray:
        """Rating tokens of a history's ratings (NaN: none; 0/1 labels in a run on labels
        without ratings), as the run's data made them."""
        return self.rating_tokens.encode_values(ratings)

    def query_vectors(
        self, items: Sequence[np.ndarray], tokens: Sequence[np.ndarray], users: np.ndarray | None = None, batch_users: int = 256,
    ) -> np.ndarray:
        """(B, d + 1) float32 ``[query, 1]`` after each history (item indices and rating
        tokens, oldest first; its last ``max_history`` items are read). ``users``: the
        histories' user indices where the model reads user text (−1 or None: none)."""
        n = len(items)
        if any(len(h) == 0 for h in items):
            raise ValueError("a history needs at least one item")
        users = np.full(n, -1, dtype=np.int64) if users is None else np.asarray(users, dtype=np.int64)
        kept = [np.asarray(h, dtype=np.int64)[-self.max_history :] for h in items]
        kept_tokens = [np.asarray(t, dtype=np.int64)[-self.max_history :] for t in tokens]
        lengths = np.array([len(h) for h in kept], dtype=np.int64)
        out = np.ones((n, self.item_vectors.shape[1]), dtype=np.float32)
        by_length = np.argsort(lengths, kind="stable")  # each batch padded to its own longest only
        for s in range(0, n, batch_users):
            chunk = by_length[s : s + batch_users]
            width = int(lengths[chunk].max())
            padded = np.zeros((len(chunk), width), dtype=np.int64)
            padded_tokens = np.full((len(chunk), width), PAD_TOKEN, dtype=np.int64)
            for row, b in enumerate(chunk):
                padded[row, : lengths[b]] = kept[b]
                padded_tokens[row, : lengths[b]] = kept_tokens[b]
            feed = {"items": padded, "rating_tokens": padded_tokens, "lengths": lengths[chunk], "users": users[chunk]}
            out[chunk, :-1] = self.session.run(None, {k: v for k, v in feed.items() if k in self.inputs})[0]
        return out

    def scores(self, items: Sequence[np.ndarray], tokens: Sequence[np.ndarray], users: np.ndarray | None = None) -> np.ndarray:
        """(B, I) next-item scores of the histories (as in :meth:`query_vectors`), as the
        run's ``recommend`` scores them."""
        return self.blend(self.query_vectors(items, tokens, users), items)

    def blend(self, vectors: np.ndarray, items: Sequence[np.ndarray]) -> np.ndarray:
        """(B, I) scores of (B, d + 1) query vectors with the priors' parts of their histories
        ``items`` joined (the model's own scores where the run has no priors)."""
        model = vectors @ self.item_vectors.T
        if not self.priors:
            return model
        positions = latest_positions([np.asarray(h, dtype=np.int64) for h in items], self.max_history)
        shape = (len(items), self.n_items)
        parts = [(prior.history_weights(positions, shape) @ prior.by_source).toarray() for prior in self.priors]
        return blend_rows(model, [(part, prior.share) for part, prior in zip(parts, self.priors)])


class ExportedRecommender(RecommenderBase):
    """An exported run by original ids: ``recommend``, ``recommend_many``, ad-hoc histories of
    catalogue items, and what ``polyrec serve`` reads. Ratings, engagement and profiles are
    not exported, nor the text encoder: items outside the catalogue cannot be read."""

    tasks = {"next_item"}

    def __init__(self, model: ExportedModel, items: pd.DataFrame, users: pd.DataFrame, interactions: pd.DataFrame, histories: KnownHistories):
        super().__init__(items, users, interactions)
        self.model = model
        self.histories = histories
        self.repeat_items = bool(model.manifest.get("repeat_items", False))  # exports before it: False

    @classmethod
    def load(cls, folder: str | Path, threads: int | None = None) -> "ExportedRecommender":
        folder = Path(folder)
        return cls(ExportedModel(folder, threads), *load_tables(folder), KnownHistories.read(folder / HISTORIES))

    def catalogue_scores(self, users: np.ndarray) -> np.ndarray:
        users = np.asarray(users, dtype=np.int64)
        return self.model.scores([self.histories.items[u] for u in users], [self.histories.tokens[u] for u in users], users)

    @property
    def vectors_rank_as_recommend(self) -> bool:
        """As ``Recommender.vectors_rank_as_recommend``: not where priors join the scores."""
        return not self.model.priors

    def next_item_reading(self) -> tuple[list[PriorMap], list[np.ndarray], int]:
        """As ``Recommender.next_item_reading`` (what serving keeps to blend the priors)."""
        return self.model.priors, list(self.histories.items), self.model.max_history

    def item_vectors(self) -> np.ndarray:
        """(I, d + 1) ``[e_i, b_i]``, as ``Recommender.item_vectors``."""
        return self.model.item_vectors

    def user_vectors(self, batch_users: int = 256, users: np.ndarray | None = None) -> np.ndarray:
        """(U, d + 1) ``[query, 1]`` of known users (all, or ``users``), as ``Recommender.user_vectors``."""
        chosen = np.arange(len(self.histories.items)) if users is None else np.asarray(users, dtype=np.int64)
        return self.model.query_vectors(
            [self.histories.items[u] for u in chosen], [self.histories.tokens[u] for u in chosen], chosen, batch_users
        )

    def history_vector(
        self, items: Sequence[str], ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, object] | None = None, user_text: str | None = None,
    ) -> np.ndarray:
        """(d + 1,) user vector of an ad-hoc history of catalogue items, oldest first, as
        ``Recommender.history_vector`` (no new items' ``texts``, no ``user_text``: an exported
        run has no text encoder; a user described by text reads as one without)."""
        if len(items) == 0:
            raise ValueError("a history needs at least one item")
        if ratings is not None and len(ratings) != len(items):
            raise ValueError(f"{len(items)} items but {len(ratings)} ratings")
        new = [str(i) for i in items if str(i) not in self._item_index]
        if new and texts and new[0] in {str(k) for k in texts}:
            raise ValueError(f"item '{new[0]}' is not in the catalogue: an exported run has no text encoder to read a new item's text")
        if user_text and "users" in self.model.inputs:
            raise ValueError("an exported run has no text encoder to read a user's text")
        index = np.array([self.item_index(str(i)) for i in items], dtype=np.int64)
        values = np.array([np.nan if r is None else float(r) for r in (ratings or [None] * len(items))])
        return self.model.query_vectors([index], [self.model.tokens_of(values)])[0]

    def recommend_history(
        self, items: Sequence[str], ratings: Sequence[float | None] | None = None, k: int = 10,
        exclude_seen: bool | None = None, popularity_penalty: float = 0.0,
    ) -> pd.DataFrame:
        """Top ``k`` items for an ad-hoc history of catalogue items, oldest first
        (``popularity_penalty`` as in ``recommend``)."""
        vector = self.history_vector(items, ratings)  # checks the items, so the lookups below succeed
        index = np.array([self._item_index[str(i)] for i in items], dtype=np.int64)
        scores = self.reranked(self.model.blend(vector[None], [index]), popularity_penalty)[0]
        if self.excludes_seen(exclude_seen):
            scores[index] = -np.inf
        return self.top_items(scores, k)

    @property
    def values_are_labels(self) -> bool:
        """As ``Recommender.values_are_labels``."""
        return self.model.rating_tokens.labels_only

    @property
    def reads_live_events(self) -> bool:
        """Whether a known user's history grown by events reads as that user: not where the
        model reads users' texts, which an export cannot encode (serve/live.py). An export
        from before the manifest said so: not where its users had any text."""
        reads = self.model.manifest.get("reads_user_text")
        if reads is None:
            reads = "text" in self.users_.columns and bool(self.users_["text"].fillna("").astype(str).str.strip().ne("").any())
        return not reads

    def history_of(self, user_id: str) -> tuple[list[str], list[float | None]]:
        """As ``Recommender.history_of``: the known history, its values read back from the
        tokens kept (a rating level, or a 0/1 label), which encode to the same tokens."""
        u = self.user_index(user_id)
        tokens = self.model.rating_tokens
        values = tokens.levels or ((0.0, 1.0) if tokens.labels_only else ())  # as RatingTokens.encode reads them
        ids = self.items_["item_id"].to_numpy()
        return [str(ids[i]) for i in self.histories.items[u]], [
            float(values[t - 2]) if t >= 2 else None for t in self.histories.tokens[u].tolist()
        ]

    def interests(self, user_id: str, top: int = 5) -> list[tuple[str, float]]:
        """As ``Recommender.interests``."""
        u = self.user_index(user_id)
        return category_shares(self.items_, self.histories.items[u], self.histories.labels[u], top)


@dataclass(frozen=True)
class KnownHistories:
    """Each known user's history as the run's model reads it, oldest first, by user index."""

    items: list[np.ndarray]
    tokens: list[np.ndarray]
    labels: list[np.ndarray]  # engagement labels (1 liked, 0 not, NaN none): interests

    def write(self, path: Path) -> None:
        lengths = np.array([len(h) for h in self.items], dtype=np.int64)
        joined = {name: np.concatenate(getattr(self, name)) if len(lengths) else np.zeros(0) for name in ("items", "tokens", "labels")}
        np.savez(path, offsets=np.concatenate([[0], np.cumsum(lengths)]), **joined)

    @classmethod
    def read(cls, path: Path) -> "KnownHistories":
        try:
            stored = np.load(path)
            bounds = stored["offsets"][1:-1]
            items, tokens, labels = (np.split(stored[name], bounds) for name in ("items", "tokens", "labels"))
        except (OSError, KeyError, ValueError) as e:
            raise DataError(str(path), f"not a readable histories file of this export ({e}); export the run again") from e
        return cls([h.astype(np.int64) for h in items], [t.astype(np.int64) for t in tokens], labels)
