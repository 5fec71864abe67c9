"""`polyrec serve`: a FastAPI service over a saved run.

The service owns no model code: it loads a run (``state.load_run``), answers from the
recommender's public methods and FAISS indexes built at load, and appends feedback to an
SQLite event store. ``create_app`` builds the app (used by tests with FastAPI's test
client) from the routes of ``routes_recommend``, ``routes_answers`` and ``routes_ops``,
which share a ``service.Service``; ``serve`` runs it with uvicorn.

Latency: a known user's recommendations cost one index search over precomputed vectors, or,
where the run blends item-to-item priors into its scores, one exact pass over the catalogue
from what was kept at load (``blended.py``). Endpoints that run the model (ad-hoc histories,
predictions, profiles) run in the thread pool so they never hold up the event loop.
"""

from __future__ import annotations

import logging
import sys
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from . import routes_answers, routes_ops, routes_recommend
from .events import EventStore
from .metrics import Metrics, ServiceLayer
from .routes_ops import ADMIN_KEY_ENV
from .service import Service, ServeSettings
from .state import ModelHolder, load_run

__all__ = ["ADMIN_KEY_ENV", "ServeSettings", "create_app", "serve"]

log = logging.getLogger("polyrec.serve")


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

    service = Service(holder, store, metrics, settings)
    for routes in (routes_recommend.routes, routes_answers.routes, routes_ops.routes):
        app.include_router(routes(service))

    app.add_middleware(ServiceLayer, metrics=metrics, max_body=settings.max_body)
    return app


def _message(error: dict) -> str:
    if error["type"] == "json_invalid":  # loc holds the character position
        return f"not valid JSON at character {error['loc'][-1]}: {error.get('ctx', {}).get('error', error['msg'])}"
    if error["type"] == "missing" and tuple(error["loc"]) == ("body",):
        return "a JSON body is required"
    return error["msg"]


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
