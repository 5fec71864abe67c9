"""`polyrec serve`: a FastAPI service over a saved run.

The service owns no model code: it loads a run (``state.load_run``), answers from the
recommender's public methods and FAISS indexes built at load, and appends feedback to an
SQLite event store. ``create_app`` builds the app (used by tests with FastAPI's test
client); ``serve`` runs it with uvicorn.

Latency: a known user's recommendations cost one index search over precomputed vectors, or,
where the run blends item-to-item priors into its scores, one exact pass over the catalogue
from what was kept at load (``blended.py``). Endpoints that run the model (ad-hoc histories,
predictions, profiles) run in the thread pool so they never hold up the event loop.
"""

from __future__ import annotations

import hmac
import logging
import os
import sys
import time
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Callable

import numpy as np
import pandas as pd
from fastapi import Body, FastAPI, Header, HTTPException, Path as PathParam, Query, Request
from fastapi.concurrency import run_in_threadpool
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse

from ..popularity_penalty import penalised
from ..recommender_base import seen_left_out
from ..top_k import top_k_allowed
from . import live
from . import schemas as S
from .events import Event, EventStore
from .metrics import Metrics, ServiceLayer
from .retrieval import IndexSettings
from .state import LoadedRun, ModelHolder, ReloadBusy, load_run

if TYPE_CHECKING:
    from ..explain import Explanation

log = logging.getLogger("polyrec.serve")

ADMIN_KEY_ENV = "POLYREC_ADMIN_KEY"
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


def _errors(*codes: int) -> dict[int | str, dict]:
    return {code: {"model": S.Error} for code in codes}


def create_app(run: str | Path, events: str | Path, settings: ServeSettings = ServeSettings()) -> FastAPI:
    """The service for the run folder ``run``, storing feedback in the SQLite file ``events``."""
    holder = ModelHolder(load_run(run, settings.index), settings.index)
    store = EventStore(events)
    metrics = Metrics()

    @asynccontextmanager
    async def lifespan(_: FastAPI):
        yield
        store.close()

    app = FastAPI(
        title="polyrec",
        version="0.1.0",
        summary="Recommendations, predictions and profiles from a saved polyrec run; durable feedback events.",
        lifespan=lifespan,
    )
    app.state.holder, app.state.events, app.state.metrics = holder, store, metrics

    # ------------------------------------------------------------ errors: always JSON, 4xx for the client

    @app.exception_handler(RequestValidationError)
    async def invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"loc": list(e["loc"]), "msg": _message(e), "type": e["type"]} for e in exc.errors()]
        where = lambda e: ".".join(str(p) for p in e["loc"])  # noqa: E731
        detail = "; ".join(f"{where(e)}: {e['msg']}" for e in errors[:5]) + ("; …" if len(errors) > 5 else "")
        return JSONResponse({"detail": detail, "errors": errors}, status_code=422)

    @app.exception_handler(Exception)
    async def crashed(_: Request, exc: Exception) -> JSONResponse:
        log.exception("unhandled error")
        return JSONResponse({"detail": f"internal error: {type(exc).__name__}"}, status_code=500)

    # ------------------------------------------------------------ helpers

    def known_user(run: LoadedRun, user_id: str) -> int:
        if user_id not in run.user_index:
            raise HTTPException(404, f"unknown user '{user_id}': {UNKNOWN_USER_HINT}")
        return run.user_index[user_id]

    def known_item(run: LoadedRun, item_id: str) -> int:
        if item_id not in run.item_index:
            raise HTTPException(404, f"unknown item '{item_id}': not in the catalogue of run {run.run}")
        return run.item_index[item_id]

    def type_mask(run: LoadedRun, item_type: str | None) -> np.ndarray | None:
        if item_type is None:
            return None
        if run.item_types is None:
            raise HTTPException(422, "item_type: this catalogue has no item types")
        if item_type not in run.type_masks:
            raise HTTPException(422, f"item_type: unknown type '{item_type}'; known: {', '.join(run.type_masks)}")
        return run.type_masks[item_type]

    def scored(run: LoadedRun, ids: np.ndarray, scores: np.ndarray) -> list[S.ScoredItem]:
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

    def grown(run: LoadedRun, user_id: str, reader: str) -> live.GrownHistory | None:
        """With live events, ``user_id``'s history grown by their events since the run's data,
        where the run type has the history method ``reader`` to answer from it; None where
        not, and the run's own view of the user stands."""
        if not settings.live_events or not hasattr(run.rec, reader):
            return None
        return live.grown(run.rec, store, user_id, run.data_written_at, run.ctr_threshold)

    def seen_excluded(run: LoadedRun, asked: bool | None) -> bool:
        """:func:`seen_left_out` for the served run (any run type may lack the flag)."""
        return seen_left_out(asked, getattr(run.rec, "repeat_items", False))

    def by_recommend(run: LoadedRun, user_id: str, k: int, exclude_seen: bool, allowed: np.ndarray | None, penalty: float):
        """A run type without vectors: its own ``recommend``, asking for more until the type filter leaves k."""

        def top(fetch: int) -> pd.DataFrame:
            # Asked for only where given: a run type need not take the penalty to be served.
            extra = {"popularity_penalty": penalty} if penalty else {}
            return run.rec.recommend(user_id, k=fetch, exclude_seen=exclude_seen, **extra)

        return fetch_until(run, top, k, allowed)

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

    # ------------------------------------------------------------ recommendations

    @app.get(
        "/users/{user_id}/recommendations",
        response_model=S.Recommendations,
        responses=_errors(404, 422),
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
        history = grown(run, user_id, "recommend_history")
        if history is None:
            return None
        allowed = type_mask(run, item_type)
        asked = HistoryAsk(k, exclude_seen, penalty, history.user_text)
        ids, scores = answered(lambda: ranked_history(run, history.items, history.values, {}, asked, allowed))
        return S.Recommendations(user_id=user_id, items=scored(run, ids, scores), new_events=history.new_events)

    @app.post(
        "/recommend",
        response_model=S.Recommendations,
        responses=_errors(404, 413, 422, 501),
        summary="Top-k items for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen. Items the model has never seen may come with their `text`, "
            "or with their text `fields` as the catalogue has them: it is embedded on the fly by the run's "
            "sentence encoder. A run trained on users described by text also reads the user's `user_text`."
        ),
    )
    def recommend_history(body: S.RecommendRequest) -> S.Recommendations:
        run = holder.current
        if not hasattr(run.rec, "recommend_history"):
            raise HTTPException(501, f"the run type of {run.run} cannot recommend for an ad-hoc history")
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

    @app.get(
        "/items/{item_id}/similar",
        response_model=S.Recommendations,
        responses=_errors(404, 422, 501),
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

    @app.get(
        "/users/{user_id}/explain",
        response_model=S.Explanation,
        responses=_errors(404, 422, 501),
        summary="Why an item scores as it does for a known user",
        description=(
            "The next-item score taken apart (its parts sum to it), and the history items behind the priors' parts. "
            "With `--live-events`, of the user's history grown by their events since the run's data."
        ),
    )
    def explain(
        user_id: UserId,
        item_id: Annotated[str, Query(min_length=1, max_length=128, description="the item to explain")],
        top: Annotated[int, Query(ge=0, le=S.MAX_K, description="history items to name")] = 5,
        occlusion: Annotated[bool, Query(description="also score the history with each item left out (one model pass per item)")] = False,
    ) -> S.Explanation:
        run = holder.current
        history = grown(run, user_id, "explain_history")
        if history is None:
            known_user(run, user_id)
        known_item(run, item_id)
        if history is not None:
            return explanation(answered(lambda: run.rec.explain_history(  # type: ignore[attr-defined]
                history.items, item_id, history.values, None, history.user_text, top, occlusion
            )), user_id, history.new_events)  # fmt: skip
        if not hasattr(run.rec, "explain"):
            raise HTTPException(501, f"the run type of {run.run} does not explain its scores (polyrec's own runs do)")
        return explanation(answered(lambda: run.rec.explain(user_id, item_id, top, occlusion)))  # e.g. no next-item model: 422

    @app.post(
        "/explain",
        response_model=S.Explanation,
        responses=_errors(404, 413, 422, 501),
        summary="Why an item scores as it does for an ad-hoc history (cold start)",
        description=(
            "As `GET /users/{user_id}/explain` for a user the model has never seen, given by their history (read as "
            "`POST /recommend` reads it: new items with their text, which no prior reads)."
        ),
    )
    def explain_history(body: S.ExplainHistoryRequest) -> S.Explanation:
        run = holder.current
        if not hasattr(run.rec, "explain_history"):
            raise HTTPException(501, f"the run type of {run.run} does not explain its scores (polyrec's own runs do)")
        known_item(run, body.item_id)
        items, ratings, texts = history_parts(run, body)
        return explanation(answered(lambda: run.rec.explain_history(  # type: ignore[attr-defined]
            items, body.item_id, ratings, texts, body.user_text, body.top, body.occlusion
        )))  # fmt: skip

    def explanation(e: Explanation, user_id: str | None = None, new_events: int | None = None) -> S.Explanation:
        """The answer for ``e``; ``user_id`` names the user of a grown history (``e`` has none)."""
        because = [S.Because(**row) for row in e.because.to_dict(orient="records")]
        without = [S.Without(**row) for row in e.without.to_dict(orient="records")]
        return S.Explanation(
            user_id=user_id or e.user_id, item_id=e.item_id, score=e.score, parts=e.parts, because=because, without=without,
            new_events=new_events,
        )  # fmt: skip

    # ------------------------------------------------------------ predictions and profiles

    @app.post(
        "/predict",
        response_model=S.Predictions,
        responses=_errors(404, 413, 422, 501),
        summary="Predicted rating and engagement probability for (user, item) pairs",
        description=(
            "With `--live-events`, a user with events since the run's data is predicted from their history grown by "
            "them, as `POST /predict/history` reads a history (`new_events` counts them)."
        ),
    )
    def predict(body: S.PredictRequest) -> S.Predictions:
        run = holder.current
        histories = {user: grown(run, user, "predict_history") for user in dict.fromkeys(p.user_id for p in body.pairs)}
        for pair in body.pairs:
            if histories[pair.user_id] is None:
                known_user(run, pair.user_id)
            known_item(run, pair.item_id)
        if not {"rating", "ctr"} & set(getattr(run.rec, "tasks", {"rating", "ctr"})):
            raise HTTPException(501, f"the run {run.run} predicts neither ratings nor engagement (its tasks: {', '.join(sorted(run.rec.tasks))})")
        pairs = body.pairs
        answers: list[S.Prediction] = [None] * len(pairs)  # type: ignore[list-item]  # each filled below
        plain = [k for k, p in enumerate(pairs) if histories[p.user_id] is None]
        if plain:
            pred = run.rec.predict([pairs[k].user_id for k in plain], [pairs[k].item_id for k in plain])
            for k, answer in zip(plain, predictions(pred, [(pairs[k].user_id, pairs[k].item_id) for k in plain]).predictions):
                answers[k] = answer
        for user, history in histories.items():
            if history is not None:
                mine = [k for k, p in enumerate(pairs) if p.user_id == user]
                items = [pairs[k].item_id for k in mine]
                pred = answered(lambda: run.rec.predict_history(history.items, items, history.values, None, history.user_text))  # type: ignore[attr-defined]  # noqa: B023
                for k, answer in zip(mine, predictions(pred, [(user, item) for item in items], history.new_events).predictions):
                    answers[k] = answer
        return S.Predictions(predictions=answers)

    @app.post(
        "/predict/history",
        response_model=S.Predictions,
        responses=_errors(404, 413, 422, 501),
        summary="Predicted rating and engagement probability of items for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen, given by their history as in `POST /recommend`. The model reads "
            "the history; the parts fitted per trained user are folded in from it where they can be, and the others "
            "add nothing (README, \"Users the model has never seen\")."
        ),
    )
    def predict_history(body: S.PredictHistoryRequest) -> S.Predictions:
        run = holder.current
        if not hasattr(run.rec, "predict_history"):
            raise HTTPException(501, f"the run type of {run.run} cannot predict for an ad-hoc history")
        for item_id in body.items:
            known_item(run, item_id)
        items, ratings, texts = history_parts(run, body)
        pred = answered(lambda: run.rec.predict_history(items, body.items, ratings, texts, body.user_text))  # type: ignore[attr-defined]
        return predictions(pred, [(None, item_id) for item_id in body.items])

    def predictions(pred: pd.DataFrame, pairs: list[tuple[str | None, str]], new_events: int | None = None) -> S.Predictions:
        """The answer for ``pairs`` (user id or None, item id) from a frame of their predictions."""
        rating = pred["rating"].tolist() if "rating" in pred else [None] * len(pred)
        ctr = pred["ctr"].tolist() if "ctr" in pred else [None] * len(pred)
        return S.Predictions(predictions=[
            S.Prediction(user_id=u, item_id=i, rating=r, ctr=c, new_events=new_events) for (u, i), r, c in zip(pairs, rating, ctr)
        ])  # fmt: skip

    @app.get(
        "/users/{user_id}/profile",
        response_model=S.Profile,
        responses=_errors(404, 422),
        summary="A known user's predicted attributes, top interests and a readable summary",
        description=(
            "With `--live-events`, of the user's history grown by their events since the run's data, as "
            "`POST /profile` reads a history (`new_events` counts them)."
        ),
    )
    def profile(user_id: UserId) -> S.Profile:
        run = holder.current
        history = grown(run, user_id, "profile_history")
        if history is not None:
            return history_profile(run, history.items, history.values, history.user_text, user_id, history.new_events)
        known_user(run, user_id)
        try:
            probabilities = run.rec.profile(user_id)
        except ValueError:  # the run learned no profile task: interests only
            probabilities = {}
        interests = run.rec.interests(user_id) if hasattr(run.rec, "interests") else []
        return profile_answer(user_id, probabilities, interests)

    @app.post(
        "/profile",
        response_model=S.Profile,
        responses=_errors(404, 413, 422, 501),
        summary="Predicted attributes, top interests and a readable summary for an ad-hoc history (cold start)",
        description=(
            "For a user the model has never seen, given by their history of catalogue items (with ratings where "
            "known). The tf-idf profile view reads the history through its regression; the autoencoder's user-row "
            "view has no row for a new user and adds nothing."
        ),
    )
    def profile_history(body: S.HistoryRequest) -> S.Profile:
        run = holder.current
        if not hasattr(run.rec, "profile_history"):
            raise HTTPException(501, f"the run type of {run.run} cannot profile an ad-hoc history")
        items, ratings, _ = history_parts(run, body)
        for item_id in items:
            known_item(run, item_id)
        return history_profile(run, items, ratings, body.user_text)

    def history_profile(
        run: LoadedRun, items: list[str], ratings: list[float | None], user_text: str | None,
        user_id: str | None = None, new_events: int | None = None,
    ) -> S.Profile:  # fmt: skip
        """The profile of a history of catalogue items (``POST /profile``'s, or a user's grown by live events)."""
        probabilities = {}  # a run without the profile task: interests only, as for a known user
        if "profile" in getattr(run.rec, "tasks", {"profile"}):
            probabilities = answered(lambda: run.rec.profile_history(items, ratings, user_text))  # type: ignore[attr-defined]
        interests = answered(lambda: run.rec.interests_history(items, ratings))  # type: ignore[attr-defined]
        return profile_answer(user_id, probabilities, interests, new_events)

    def profile_answer(
        user_id: str | None, probabilities: dict[str, dict[str, float]], interests: list[tuple[str, float]],
        new_events: int | None = None,
    ) -> S.Profile:
        attributes = {
            name: S.Attribute(prediction=max(p, key=p.get), probabilities=p) for name, p in probabilities.items() if p
        }
        return S.Profile(
            user_id=user_id,
            attributes=attributes,
            interests=[S.Interest(name=n, share=s) for n, s in interests],
            summary=summary(attributes, interests),
            new_events=new_events,
        )

    # ------------------------------------------------------------ feedback events

    @app.post(
        "/events",
        response_model=S.Stored,
        status_code=201,
        responses=_errors(413, 422),
        summary="Record feedback: one event (object) or several (array)",
        description=(
            "Acknowledged only after the SQLite commit (WAL, synchronous=FULL) is on disk. Give each event an "
            "`event_id` to make retries safe: an id already stored is not stored again."
        ),
    )
    def post_events(body: Annotated[S.EventsIn, Body()]) -> S.Stored:
        now = time.time()
        posted = body if isinstance(body, list) else [body]
        events = [
            Event(e.user_id, e.item_id, e.event_type, e.time.timestamp() if e.time else now, e.rating, e.event_id) for e in posted
        ]
        results = store.append(events, received=now)
        stored = sum(new for _, new in results)
        metrics.add("polyrec_events_stored_total", stored)
        return S.Stored(event_ids=[event_id for event_id, _ in results], stored=stored)

    @app.get("/events/count", response_model=S.Count, summary="Number of events stored")
    def events_count() -> S.Count:
        return S.Count(count=store.count())

    # ------------------------------------------------------------ operations

    @app.post(
        "/admin/reload",
        response_model=S.Health,
        responses=_errors(400, 401, 403, 409, 413, 422, 503),
        summary="Switch atomically to another saved run",
        description=(
            f"Needs the header `X-API-Key` equal to the environment variable `{ADMIN_KEY_ENV}` of the server "
            "(503 if it is unset). The new run is loaded completely while requests are answered by the old one, "
            "then swapped in; requests already running finish on the old one."
        ),
    )
    def reload(body: S.ReloadRequest, x_api_key: Annotated[str | None, Header()] = None) -> S.Health:
        expected = os.environ.get(ADMIN_KEY_ENV)
        if not expected:
            raise HTTPException(503, f"reload is disabled: the server was started without {ADMIN_KEY_ENV} set")
        if x_api_key is None:
            raise HTTPException(401, "missing X-API-Key header")
        if not hmac.compare_digest(x_api_key.encode(), expected.encode()):
            raise HTTPException(403, "wrong X-API-Key")
        try:
            holder.reload(body.run)
        except ReloadBusy as exc:
            raise HTTPException(409, str(exc)) from None
        except (FileNotFoundError, KeyError, ValueError, TypeError, OSError) as exc:
            message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
            raise HTTPException(400, f"cannot load run '{body.run}': {message}") from None
        return health_of(holder.current)

    def health_of(run: LoadedRun) -> S.Health:
        index = run.index_info()
        return S.Health(
            status="ok",
            run=run.run,
            users=len(run.user_index),
            items=len(run.item_ids),
            item_types=list(run.type_masks),
            index=S.IndexInfo(**index, recall_at_10=run.recall_at_10),
            loaded_at=datetime.fromtimestamp(run.loaded_at, timezone.utc),
            load_seconds=run.load_seconds,
            events_db=str(store.path),
            live_events=settings.live_events,
        )

    @app.get("/healthz", response_model=S.Health, summary="Liveness, the run being served and its index")
    async def healthz() -> S.Health:
        return health_of(holder.current)

    @app.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format 0.0.4)")
    def prometheus() -> PlainTextResponse:
        run = holder.current
        gauges = {
            "polyrec_model_items": ("Items in the served catalogue.", len(run.item_ids)),
            "polyrec_model_users": ("Known users of the served run.", len(run.user_index)),
            "polyrec_model_loaded_timestamp_seconds": ("When the served run was loaded.", run.loaded_at),
            "polyrec_index_recall_at_10": ("Recall@10 of the retrieval index against exact search.", run.recall_at_10),
            "polyrec_reloads": ("Successful reloads since start.", holder.reloads),
            "polyrec_events_in_store": ("Events in the event store.", store.count()),
        }
        return PlainTextResponse(metrics.render(gauges), media_type="text/plain; version=0.0.4")

    app.add_middleware(ServiceLayer, metrics=metrics, max_body=settings.max_body)
    return app


@dataclass(frozen=True)
class HistoryAsk:
    """What a request asks of a history's ranking besides the history."""

    k: int
    exclude_seen: bool | None
    popularity_penalty: float
    user_text: str | None


def _message(error: dict) -> str:
    if error["type"] == "json_invalid":  # loc holds the character position
        return f"not valid JSON at character {error['loc'][-1]}: {error.get('ctx', {}).get('error', error['msg'])}"
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        return "a JSON body is required"
    return error["msg"]


def summary(attributes: dict[str, S.Attribute], interests: list[tuple[str, float]]) -> str:
    """One or two readable sentences, e.g. "Likely gender M (69%), age 25-34 (41%). Mostly Drama (45%)."."""
    parts = [f"{name} {a.prediction} ({a.probabilities[a.prediction]:.0%})" for name, a in attributes.items()]
    text = f"Likely {', '.join(parts)}." if parts else "No attributes predicted."
    if interests:
        text += " Mostly " + ", ".join(f"{name} ({share:.0%})" for name, share in interests[:3]) + "."
    return text


def serve(run: str | Path, host: str = "127.0.0.1", port: int = 8000, events: str | Path = "events.sqlite",
          settings: ServeSettings = ServeSettings()) -> None:  # fmt: skip
    """Load ``run`` and answer HTTP on ``host:port`` until interrupted."""
    import faiss
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    app = create_app(run, events, settings)
    # One request is one small search or one small forward pass: a second thread per
    # operation only adds synchronisation, and the cores are better left to other requests
    # (a reload, too, then loads on one thread while requests are being answered).
    torch = sys.modules.get("torch")  # imported where loading the run needed it: an export does not
    if torch is not None:
        torch.set_num_threads(1)
    faiss.omp_set_num_threads(1)
    log.info("events: %s (SQLite, WAL, synchronous=FULL)", Path(events).resolve())
    uvicorn.run(app, host=host, port=port, log_level="warning", access_log=False)
