"""The operations routes of `polyrec serve`: feedback events, hot reload, health and metrics."""

from __future__ import annotations

import hmac
import os
import time
from datetime import datetime, timezone
from typing import Annotated

from fastapi import APIRouter, Body, Header, HTTPException
from fastapi.responses import PlainTextResponse

from . import schemas as S
from .events import Event
from .service import Service, errors
from .state import LoadedRun, ReloadBusy

ADMIN_KEY_ENV = "POLYREC_ADMIN_KEY"


def routes(service: Service) -> APIRouter:
    """``/events``, ``/events/count``, ``/admin/reload``, ``/healthz``, ``/metrics``."""
    router = APIRouter()
    holder, store, metrics, settings = service.holder, service.store, service.metrics, service.settings

    # ------------------------------------------------------------ feedback events

    @router.post(
        "/events",
        response_model=S.Stored,
        status_code=201,
        responses=errors(413, 422),
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

    @router.get("/events/count", response_model=S.Count, summary="Number of events stored")
    def events_count() -> S.Count:
        return S.Count(count=store.count())

    # ------------------------------------------------------------ operations

    @router.post(
        "/admin/reload",
        response_model=S.Health,
        responses=errors(400, 401, 403, 409, 413, 422, 503),
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

    @router.get("/healthz", response_model=S.Health, summary="Liveness, the run being served and its index")
    async def healthz() -> S.Health:
        return health_of(holder.current)

    @router.get("/metrics", response_class=PlainTextResponse, summary="Prometheus metrics (text format 0.0.4)")
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

    return router
