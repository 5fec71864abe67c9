"""A loaded run, ready to answer: the recommender, its catalogue and its FAISS indexes.

The service talks to a recommender only through the small protocols below, so any loaded
run type with ``recommend / predict / profile`` plugs in (``Recommends``); one that also
exposes vectors whose inner product is its next-item score (``Retrieves``, as
``polyrec.recommender.Recommender`` does) is served from a FAISS index with every known
user's vector computed once at load, so a request costs one index search. Where those
scores also blend in item-to-item priors (``ReadsPriors``), no index ranks them: the same
vectors and the priors' maps are kept at load (``blended.py``) and a request scores the
whole catalogue exactly from them.

``ModelHolder`` keeps the current ``LoadedRun``. A reload builds the new one completely,
then swaps one reference: a request reads the reference once and finishes on the run it
started with, so no request ever sees half of a reload.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np
import pandas as pd

from .blended import BlendedScorer
from .live import live_threshold, tables_written_at
from .retrieval import IndexSettings, VectorIndex

log = logging.getLogger("polyrec.serve")

RECALL_QUERIES = 1000  # known users whose vectors measure an approximate index's recall@10


@runtime_checkable
class Recommends(Protocol):
    """What the service needs from any loaded run (``items_``: item_id, text[, item_type])."""

    items_: pd.DataFrame
    users_: pd.DataFrame

    def recommend(self, user_id: str, k: int = 10, exclude_seen: bool = True) -> pd.DataFrame: ...
    def predict(self, user_ids: list[str], item_ids: list[str]) -> pd.DataFrame: ...
    def profile(self, user_id: str) -> dict[str, dict[str, float]]: ...


@runtime_checkable
class Retrieves(Recommends, Protocol):
    """A run whose next-item score is ``user_vector · item_vector`` (see Recommender)."""

    def item_vectors(self) -> np.ndarray: ...
    def user_vectors(self) -> np.ndarray: ...
    def seen_items(self, user_id: str) -> np.ndarray: ...
    def item_popularity(self) -> np.ndarray: ...
    def history_vector(
        self,
        items: Sequence[str],
        ratings: Sequence[float | None] | None = None,
        texts: Mapping[str, str | Mapping[str, str]] | None = None,
        user_text: str | None = None,
    ) -> np.ndarray: ...
    def interests(self, user_id: str, top: int = 5) -> list[tuple[str, float]]: ...


@runtime_checkable
class ReadsPriors(Retrieves, Protocol):
    """A run whose next-item scores blend its vectors' with item-to-item priors (see Recommender)."""

    def next_item_reading(self) -> tuple[list, list[np.ndarray], int]: ...


@dataclass(frozen=True)
class LoadedRun:
    run: str
    rec: Recommends
    item_ids: np.ndarray  # (I,) str, by item index
    item_texts: np.ndarray  # (I,) str
    item_types: np.ndarray | None  # (I,) str, or None where the catalogue has no types
    type_masks: dict[str, np.ndarray]  # item type → (I,) bool
    item_index: dict[str, int]
    user_index: dict[str, int]
    user_vectors: np.ndarray | None  # (U, D): Retrieves (with an index or a blend) only
    items: VectorIndex | None  # next-item scores: [e_i, b_i]
    blended: BlendedScorer | None  # next-item scores where the run blends in priors (no index ranks them)
    similar: VectorIndex | None  # cosine between item vectors
    recall_at_10: float
    loaded_at: float
    load_seconds: float
    # When the run's tables were written (live.tables_written_at; else when it was loaded):
    # events after it are new to a run whose data had no timestamps.
    data_written_at: float = 0.0
    ctr_threshold: float | None = None  # labels a rating event where the run reads labels (live.py)

    @property
    def retrieves(self) -> bool:
        return self.items is not None

    def index_info(self) -> dict[str, object]:
        """How next-item requests are ranked: the index's kind (exact or IVF), "blend", or "none"."""
        if self.items is not None:
            return self.items.describe()
        if self.blended is not None:
            return self.blended.describe()
        return {"kind": "none", "items": len(self.item_ids)}


def load_run(path: str | Path, settings: IndexSettings = IndexSettings()) -> LoadedRun:
    """Load a run folder and build everything a request reads (seconds, not per request)."""
    import polyrec

    start = time.perf_counter()
    rec = polyrec.load(str(path))
    if not isinstance(rec, Recommends):
        raise TypeError(f"{path}: the loaded object ({type(rec).__name__}) has no recommend/predict/profile")
    items = rec.items_
    types = items["item_type"].astype(str).to_numpy() if "item_type" in items.columns else None
    masks = {t: types == t for t in sorted(set(types))} if types is not None else {}
    user_vecs, index, similar, recall, blended = None, None, None, 1.0, None
    if isinstance(rec, Retrieves):
        item_vecs = rec.item_vectors()
        e = item_vecs[:, :-1]
        similar = VectorIndex(e / np.maximum(np.linalg.norm(e, axis=1, keepdims=True), 1e-12), settings)
        if getattr(rec, "vectors_rank_as_recommend", True):
            user_vecs = rec.user_vectors()
            index = VectorIndex(item_vecs, settings)
            sample = np.random.default_rng(0).permutation(len(user_vecs))[:RECALL_QUERIES]
            recall = index.recall_at(user_vecs[sample], 10)
        elif isinstance(rec, ReadsPriors):
            # With an item prior the scores are no inner product: requests score the whole
            # catalogue exactly, from the vectors and the priors' maps kept here.
            user_vecs = rec.user_vectors()
            blended = BlendedScorer.for_histories(item_vecs, user_vecs, *rec.next_item_reading())
    now = time.time()
    loaded = LoadedRun(
        run=str(path),
        rec=rec,
        item_ids=items["item_id"].astype(str).to_numpy(),
        item_texts=items["text"].astype(str).to_numpy(),
        item_types=types,
        type_masks=masks,
        item_index={str(v): k for k, v in enumerate(items["item_id"])},
        user_index={str(v): k for k, v in enumerate(rec.users_["user_id"])},
        user_vectors=user_vecs,
        items=index,
        blended=blended,
        similar=similar,
        recall_at_10=recall,
        loaded_at=now,
        load_seconds=time.perf_counter() - start,
        data_written_at=tables_written_at(path) or now,
        ctr_threshold=live_threshold(path) if getattr(rec, "values_are_labels", False) else None,
    )
    kind = loaded.index_info()
    log.info("loaded %s in %.1f s: %d users, %d items, index %s, recall@10 vs exact %.4f",
             path, loaded.load_seconds, len(loaded.user_index), len(loaded.item_ids), kind, recall)  # fmt: skip
    return loaded


class ReloadBusy(RuntimeError):
    pass


class ModelHolder:
    """The current run; ``reload`` swaps it atomically, one reload at a time."""

    def __init__(self, current: LoadedRun, settings: IndexSettings = IndexSettings()):
        self.current = current
        self.settings = settings
        self.reloads = 0
        self._reloading = threading.Lock()

    def reload(self, path: str | Path) -> LoadedRun:
        if not self._reloading.acquire(blocking=False):
            raise ReloadBusy("another reload is in progress; try again when it has finished")
        try:
            new = load_run(path, self.settings)  # fully built before anyone can see it
            self.current = new  # one reference assignment: atomic for every reader
            self.reloads += 1
            return new
        finally:
            self._reloading.release()
