"""The recommendation routes of `polyrec serve`: a known user's top k (from the precomputed
vectors, the blend with the priors, or a history grown by live events), an ad-hoc history's,
and an item's most similar items."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import numpy as np
import pandas as pd
from fastapi import APIRouter, HTTPException, Query
from fastapi.concurrency import run_in_threadpool

from ..popularity_penalty import penalised
from ..top_k import top_k_allowed
from . import schemas as S
from .service import (
    ItemId, KQuery, Service, TypeQuery, UserId, able, answered, errors, fetch_until, history_parts, known_item, known_user, scored,
    seen_excluded, type_mask,
)
from .state import LoadedRun


@dataclass(frozen=True)
class HistoryAsk:
    """What a request asks of a history's ranking besides the history."""

    k: int
    exclude_seen: bool | None
    popularity_penalty: float
    user_text: str | None


def routes(service: Service) -> APIRouter:
    """``GET /users/{id}/recommendations``, ``POST /recommend``, ``GET /items/{id}/similar``."""
    router = APIRouter()
    holder, settings = service.holder, service.settings

    def by_recommend(run: LoadedRun, user_id: str, k: int, exclude_seen: bool, allowed: np.ndarray | None, penalty: float):
        """A run type without vectors: its own ``recommend``, asking for more until the type filter leaves k."""

        def top(fetch: int) -> pd.DataFrame:
            # Asked for only where given: a run type need not take the penalty to be served.
            extra = {"popularity_penalty": penalty} if penalty else {}
            return run.rec.recommend(user_id, k=fetch, exclude_seen=exclude_seen, **extra)

        return fetch_until(run, top, k, allowed)

    @router.get(
        "/users/{user_id}/recommendations",
        response_model=S.Recommendations,
        responses=errors(404, 422),
        summary="Top-k items for a known user",
        description=(
            "From the user's whole known history. An unknown user gets 404: use `POST /recommend` with a history. "
            "A service started with `--live-events` grows the history by the user's events stored since the run's "
            "data (`new_events` counts them), and answers a user the run does not know from their events alone."
        ),
    )
    async def user_recommendations(
        user_id: UserId,
        k: KQuery = 10,
        item_type: TypeQuery = None,
        exclude_seen: Annotated[
            bool | None, Query(description="leave out items the user already has (default: yes, unless the run's users take items again)")
        ] = None,
        popularity_penalty: Annotated[
            float, Query(ge=0, le=10, description="re-rank towards less-taken items (0: the model's ranking; README, fairness)")
        ] = 0.0,
    ) -> S.Recommendations:
        run = holder.current  # one read: this request finishes on this run even if a reload swaps it
        if settings.live_events:
            grown = await run_in_threadpool(live_recommendations, run, user_id, k, item_type, exclude_seen, popularity_penalty)
            if grown is not None:
                return grown
        u = known_user(run, user_id)
        allowed = type_mask(run, item_type)
        exclude_seen = seen_excluded(run, exclude_seen)
        if run.retrieves or run.blended is not None:
            exclude = run.rec.seen_items(user_id) if exclude_seen else None  # type: ignore[attr-defined]
            if run.blended is None and not popularity_penalty:
                ids, scores = run.items.top_k(run.user_vectors[u], k, exclude, allowed)  # type: ignore[union-attr, index]
            else:  # no index ranks a blend with priors, or a re-ranked row: the whole catalogue, exactly
                row = run.blended.user_scores(u) if run.blended is not None else run.items.vectors @ run.user_vectors[u]  # type: ignore[union-attr, index]
                if popularity_penalty:
                    row = penalised(row[None], run.rec.item_popularity(), popularity_penalty)[0]  # type: ignore[attr-defined]
                ids, scores = top_k_allowed(row, k, exclude, allowed)
        else:
            ids, scores = await run_in_threadpool(by_recommend, run, user_id, k, exclude_seen, allowed, popularity_penalty)
        return S.Recommendations(user_id=user_id, items=scored(run, ids, scores))

    def live_recommendations(
        run: LoadedRun, user_id: str, k: int, item_type: str | None, exclude_seen: bool | None, penalty: float
    ) -> S.Recommendations | None:
        """With live events, the top k of the user's history grown by their events since the
        run's data (live.py); None where there are none, and the known user is answered as usual."""
        history = service.grown(run, user_id, "recommend_history")
        if history is None:
            return None
        allowed = type_mask(run, item_type)
        asked = HistoryAsk(k, exclude_seen, penalty, history.user_text)
        ids, scores = answered(lambda: ranked_history(run, history.items, history.values, {}, asked, allowed))
        return S.Recommendations(user_id=user_id, items=scored(run, ids, scores), new_events=history.new_events)

    @router.post(
        "/recommend",
        response_model=S.Recommendations,
        responses=errors(404, 413, 422, 501),
        summary="Top-k items for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen. Items the model has never seen may come with their `text`, "
            "or with their text `fields` as the catalogue has them: it is embedded on the fly by the run's "
            "sentence encoder. A run trained on users described by text also reads the user's `user_text`."
        ),
    )
    def recommend_history(body: S.RecommendRequest) -> S.Recommendations:
        run = holder.current
        able(run, "recommend_history", "cannot recommend for an ad-hoc history")
        allowed = type_mask(run, body.item_type)
        items, ratings, texts = history_parts(run, body)
        asked = HistoryAsk(body.k, body.exclude_seen, body.popularity_penalty, body.user_text)
        ids, scores = answered(lambda: ranked_history(run, items, ratings, texts, asked, allowed))
        return S.Recommendations(items=scored(run, ids, scores))

    def ranked_history(
        run: LoadedRun, items: list[str], ratings: list[float | None], texts: dict, asked: "HistoryAsk",
        allowed: np.ndarray | None,
    ) -> tuple[np.ndarray, np.ndarray]:  # fmt: skip
        """The top k of a history (``POST /recommend``'s, or a user's grown by live events)."""
        penalty = asked.popularity_penalty
        if run.retrieves or run.blended is not None:
            vector = run.rec.history_vector(items, ratings, texts, asked.user_text)  # type: ignore[attr-defined]
            seen = np.array([run.item_index[i] for i in items if i in run.item_index], dtype=np.int64)
            exclude = seen if seen_excluded(run, asked.exclude_seen) else None
            if run.blended is None and not penalty:
                return run.items.top_k(vector, asked.k, exclude, allowed)  # type: ignore[union-attr]
            # No index ranks a blend with priors, or a re-ranked row: the whole catalogue, exactly.
            if run.blended is not None:
                positions = np.array([run.item_index.get(i, -1) for i in items], dtype=np.int64)
                row = run.blended.history_scores(vector, positions)
            else:
                row = run.items.vectors @ vector  # type: ignore[union-attr]
            if penalty:
                row = penalised(row[None], run.rec.item_popularity(), penalty)[0]  # type: ignore[attr-defined]
            return top_k_allowed(row, asked.k, exclude, allowed)

        def top(n: int) -> pd.DataFrame:  # a run type without vectors: its own recommend_history
            extra = {"popularity_penalty": penalty} if penalty else {}  # asked for only where given, as for a known user
            return run.rec.recommend_history(  # type: ignore[attr-defined]
                items, ratings, texts, k=n, exclude_seen=seen_excluded(run, asked.exclude_seen), user_text=asked.user_text,
                **extra,
            )

        return fetch_until(run, top, asked.k, allowed)

    @router.get(
        "/items/{item_id}/similar",
        response_model=S.Recommendations,
        responses=errors(404, 422, 501),
        summary="Items most similar to an item",
        description="Cosine similarity of the model's item vectors (text and behaviour); the item itself is left out.",
    )
    async def similar_items(item_id: ItemId, k: KQuery = 10, item_type: TypeQuery = None) -> S.Recommendations:
        run = holder.current
        i = known_item(run, item_id)
        if run.similar is None:
            raise HTTPException(501, f"the run type of {run.run} has no item vectors")
        allowed = type_mask(run, item_type)
        ids, scores = run.similar.top_k(run.similar.vectors[i], k, np.array([i]), allowed)
        return S.Recommendations(items=scored(run, ids, scores))

    return router
