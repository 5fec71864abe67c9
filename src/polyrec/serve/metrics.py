"""Request metrics in the Prometheus text format, and the ASGI layer that records them.

Written by hand (a counter and a histogram are a few lines) rather than adding a dependency.
Requests are labelled by route *template* (``/users/{user_id}/recommendations``), never by
raw path, so the number of series stays bounded whatever clients send.
"""

from __future__ import annotations

import json
import threading
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import numpy as np

# Seconds; dense below 50 ms, where the service's latency targets are.
BUCKETS = (0.001, 0.0025, 0.005, 0.0075, 0.01, 0.015, 0.02, 0.03, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(**labels: str) -> str:
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class Metrics:
    """Request counts per (method, route, status) and latency histograms per (method, route)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._requests: dict[tuple[str, str, int], int] = defaultdict(int)
        self._buckets: dict[tuple[str, str], list[int]] = defaultdict(lambda: [0] * len(BUCKETS))
        self._sum: dict[tuple[str, str], float] = defaultdict(float)
        self._count: dict[tuple[str, str], int] = defaultdict(int)
        self.counters: dict[str, int] = defaultdict(int)  # other counters, e.g. events stored

    def observe(self, method: str, route: str, status: int, seconds: float) -> None:
        with self._lock:
            self._requests[(method, route, status)] += 1
            key = (method, route)
            buckets = self._buckets[key]
            for b, bound in enumerate(BUCKETS):
                if seconds <= bound:
                    buckets[b] += 1
                    break
            self._sum[key] += seconds
            self._count[key] += 1

    def add(self, counter: str, n: int = 1) -> None:
        with self._lock:
            self.counters[counter] += n

    def render(self, gauges: dict[str, tuple[str, float]] | None = None) -> str:
        """The exposition text; ``gauges`` maps a name to (help, value)."""
        lines = [
            "# HELP polyrec_http_requests_total HTTP requests answered, by method, route and status.",
            "# TYPE polyrec_http_requests_total counter",
        ]
        with self._lock:
            for (method, route, status), n in sorted(self._requests.items()):
                lines.append(f"polyrec_http_requests_total{_labels(method=method, route=route, status=str(status))} {n}")
            lines += [
                "# HELP polyrec_http_request_duration_seconds Time from request to the end of the response.",
                "# TYPE polyrec_http_request_duration_seconds histogram",
            ]
            name = "polyrec_http_request_duration_seconds"
            for (method, route), buckets in sorted(self._buckets.items()):
                count, cumulative = self._count[(method, route)], np.cumsum(buckets)
                for bound, n in zip((*map(str, BUCKETS), "+Inf"), (*cumulative, count)):
                    lines.append(f"{name}_bucket{_labels(method=method, route=route, le=bound)} {n}")
                base = _labels(method=method, route=route)
                lines.append(f"{name}_sum{base} {self._sum[(method, route)]:.6f}")
                lines.append(f"{name}_count{base} {count}")
            counters = dict(self.counters)
        for name, n in sorted(counters.items()):
            lines += [f"# TYPE {name} counter", f"{name} {n}"]
        for name, (help_text, value) in sorted((gauges or {}).items()):
            lines += [f"# HELP {name} {help_text}", f"# TYPE {name} gauge", f"{name} {value:g}"]
        return "\n".join(lines) + "\n"


async def _send_json(send: Send, status: int, detail: str) -> None:
    body = json.dumps({"detail": detail}).encode()
    headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


class ServiceLayer:
    """ASGI middleware: request metrics, and a cap on request body size (413 above it).

    The body is read in full (at most ``max_body`` bytes) before the app sees the request,
    so an oversized body is refused whether or not it declares its length, and the app never
    holds more than ``max_body`` bytes of one request.
    """

    def __init__(self, app: ASGIApp, metrics: Metrics, max_body: int):
        self.app, self.metrics, self.max_body = app, metrics, max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        start = time.perf_counter()
        status = 500

        async def send_recorded(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            body = await self._read_body(scope, receive)
            if body is None:
                scope["route_label"] = "(body too large)"
                await _send_json(send_recorded, 413, f"request body larger than {self.max_body} bytes")
                return
            await self.app(scope, _replay(body, receive), send_recorded)
        finally:
            route = scope.get("route")
            label = getattr(route, "path", None) or scope.get("route_label", "(unmatched)")
            self.metrics.observe(scope["method"], label, status, time.perf_counter() - start)

    async def _read_body(self, scope: Scope, receive: Receive) -> bytes | None:
        """The whole body, or None if it exceeds ``max_body``."""
        declared = dict(scope.get("headers") or []).get(b"content-length")
        if declared is not None and declared.isdigit() and int(declared) > self.max_body:
            return None
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                break
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                return None
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        return b"".join(chunks)


def _replay(body: bytes, receive: Receive) -> Receive:
    """A ``receive`` that yields ``body`` once, then defers to the real one (disconnects)."""
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()

    return replay
