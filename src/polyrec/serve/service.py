"""What every endpoint of `polyrec serve` shares: the service's state (the run being served,
the event store, the settings), the request parameters of several routes, and the lookups
that turn a request's ids into the run's indices or into a client's error."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Annotated, Any, Callable

import numpy as np
import pandas as pd
from fastapi import HTTPException, Path as PathParam, Query

from ..recommender_base import seen_left_out
from . import live
from . import schemas as S
from .events import EventStore
from .metrics import Metrics
from .retrieval import IndexSettings
from .state import LoadedRun, ModelHolder

UNKNOWN_USER_HINT = "the model has no history for this user; POST /recommend with the user's history to get recommendations"

UserId = Annotated[str, PathParam(min_length=1, max_length=128, description="a user id as in the training data")]
ItemId = Annotated[str, PathParam(min_length=1, max_length=128, description="an item id as in the training data")]
KQuery = Annotated[int, Query(ge=1, le=S.MAX_K, description=f"number of items, 1 to {S.MAX_K}")]
TypeQuery = Annotated[str | None, Query(max_length=128, description="only items of this type")]


@dataclass(frozen=True)
class ServeSettings:
    index: IndexSettings = field(default_factory=IndexSettings)
    max_body: int = S.MAX_BODY  # bytes; larger request bodies get 413
    live_events: bool = False  # a user's answers read their events since the run's data (live.py)


@dataclass(frozen=True)
class Service:
    """One service's state: ``holder.current`` is the run being served (read it once per
    request: a reload may swap it), ``store`` the feedback events."""

    holder: ModelHolder
    store: EventStore
    metrics: Metrics
    settings: ServeSettings

    def grown(self, run: LoadedRun, user_id: str, reader: str) -> live.GrownHistory | None:
        """With live events, ``user_id``'s history grown by their events since the run's data,
        where the run type has the history method ``reader`` to answer from it; None where
        not, and the run's own view of the user stands."""
        if not self.settings.live_events or not hasattr(run.rec, reader):
            return None
        return live.grown(run.rec, self.store, user_id, run.data_written_at, run.ctr_threshold)


def errors(*codes: int) -> dict[int | str, dict]:
    """A route's ``responses``: each status code's body is an ``Error``."""
    return {code: {"model": S.Error} for code in codes}


def able(run: LoadedRun, method: str, cannot: str) -> None:
    """501 where the served run type has no ``method`` (a baseline, an ensemble, an export
    lack some): "the run type of RUN ``cannot``"."""
    if not hasattr(run.rec, method):
        raise HTTPException(501, f"the run type of {run.run} {cannot}")


def known_user(run: LoadedRun, user_id: str) -> int:
    """A user's index in the run; 404 for a user it does not know, pointing to ``POST /recommend``."""
    if user_id not in run.user_index:
        raise HTTPException(404, f"unknown user '{user_id}': {UNKNOWN_USER_HINT}")
    return run.user_index[user_id]


def known_item(run: LoadedRun, item_id: str) -> int:
    """An item's index in the run's catalogue; 404 for one outside it."""
    if item_id not in run.item_index:
        raise HTTPException(404, f"unknown item '{item_id}': not in the catalogue of run {run.run}")
    return run.item_index[item_id]


def type_mask(run: LoadedRun, item_type: str | None) -> np.ndarray | None:
    """The catalogue's items of ``item_type`` (None: every item); 422 for a type the catalogue lacks."""
    if item_type is None:
        return None
    if run.item_types is None:
        raise HTTPException(422, "item_type: this catalogue has no item types")
    if item_type not in run.type_masks:
        raise HTTPException(422, f"item_type: unknown type '{item_type}'; known: {', '.join(run.type_masks)}")
    return run.type_masks[item_type]


def scored(run: LoadedRun, ids: np.ndarray, scores: np.ndarray) -> list[S.ScoredItem]:
    """The answer's items for item indices ``ids`` and their ``scores``."""
    types = run.item_types
    return [
        S.ScoredItem(item_id=run.item_ids[i], text=run.item_texts[i], score=float(s), item_type=None if types is None else types[i])
        for i, s in zip(ids.tolist(), scores.tolist())
    ]


def history_parts(run: LoadedRun, body: S.HistoryRequest) -> tuple[list[str], list[float | None], dict[str, str | dict[str, str]]]:
    """An ad-hoc history's items, ratings and the texts of its items new to the catalogue."""
    texts = {
        h.item_id: h.new_item_text for h in body.history if h.new_item_text is not None and h.item_id not in run.item_index
    }
    return [h.item_id for h in body.history], [h.rating for h in body.history], texts


def answered(call: Callable[[], Any]) -> Any:
    """``call()``, its one-line errors as the client's: an unknown id 404, a history the
    run cannot read 422."""
    try:
        return call()
    except KeyError as exc:
        raise HTTPException(404, exc.args[0]) from None
    except ValueError as exc:
        raise HTTPException(422, str(exc)) from None


def seen_excluded(run: LoadedRun, asked: bool | None) -> bool:
    """:func:`seen_left_out` for the served run (any run type may lack the flag)."""
    return seen_left_out(asked, getattr(run.rec, "repeat_items", False))


def fetch_until(run: LoadedRun, top: Callable[[int], pd.DataFrame], k: int, allowed: np.ndarray | None):
    """``top(n)``'s items (a recommend method's frame), asking for more until the type filter leaves k."""
    fetch = k
    while True:
        recs = top(fetch)
        ids = np.array([run.item_index[str(i)] for i in recs["item_id"]], dtype=np.int64)
        keep = np.ones(len(ids), bool) if allowed is None else allowed[ids]
        if keep.sum() >= k or len(ids) < fetch or fetch >= len(run.item_ids):
            return ids[keep][:k], recs["score"].to_numpy()[keep][:k]
        fetch = min(2 * fetch, len(run.item_ids))

