"""Benchmarks of `polyrec serve` on loopback: latency under load, a reload under load, SIGKILL.

    # latency of GET /users/{id}/recommendations?k=10 at 100 requests/s for 60 s, with a reload
    # (to the same run) half-way through
    python benchmarks/serve_load.py load --run runs/quickstart --rate 100 --duration 60

    # a synthetic catalogue of 100,000 items: build and train it once (a couple of minutes),
    # then load-test it like any run
    python benchmarks/serve_load.py synthetic --items 100000 --out runs/synthetic-100k
    python benchmarks/serve_load.py load --run runs/synthetic-100k --rate 100 --duration 60

    # live events: each user posts 3 clicks first, and every request reads them (+ encoder pass)
    python benchmarks/serve_load.py load --run runs/quickstart --rate 100 --duration 60 --reload-at -1 \
        --events-per-user 3 --server-args --live-events

    # durability: post events, SIGKILL the server mid-stream, restart, count acknowledged events
    python benchmarks/serve_load.py crash --run runs/quickstart --cycles 5

Every mode starts `polyrec serve` as a subprocess on 127.0.0.1, stops by itself (the load is
bounded by --duration, the crash test by --cycles) and prints one summary. The load is
open-loop: request i is due at t0 + i/rate whatever earlier requests do, and its latency is
measured from when it was due, so a slow server cannot hide its queueing (no coordinated
omission).
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
import uuid
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

ADMIN_KEY = "benchmark-admin-key"
HOST = "127.0.0.1"
STALE_AFTER_S = 4.0  # a kept-alive connection idle this long may be closed by the server (uvicorn: 5 s)


# ---------------------------------------------------------------- the server under test


class Server:
    """`polyrec serve` in a subprocess; its log goes to ``log``."""

    def __init__(self, run: str, port: int, events: Path, log: Path, extra: list[str] | None = None):
        self.run, self.port, self.events, self.log_path, self.extra = run, port, events, log, extra or []
        self.proc: subprocess.Popen | None = None

    def start(self, timeout: float = 600.0) -> float:
        """Start and wait until /healthz answers; returns the seconds it took."""
        env = {**os.environ, "POLYREC_ADMIN_KEY": ADMIN_KEY, "HF_HUB_OFFLINE": "1", "TOKENIZERS_PARALLELISM": "false"}
        cmd = [sys.executable, "-m", "polyrec.cli", "serve", "--run", self.run, "--host", HOST, "--port", str(self.port),
               "--events", str(self.events), *self.extra]  # fmt: skip
        start = time.monotonic()
        self.proc = subprocess.Popen(cmd, env=env, stdout=open(self.log_path, "a"), stderr=subprocess.STDOUT)
        while time.monotonic() - start < timeout:
            if self.proc.poll() is not None:
                raise RuntimeError(f"server exited with {self.proc.returncode}; see {self.log_path}")
            try:
                status, _ = request("GET", self.port, "/healthz", timeout=2.0)
                if status == 200:
                    return time.monotonic() - start
            except OSError:
                pass
            time.sleep(0.2)
        raise TimeoutError(f"server not ready after {timeout:.0f} s; see {self.log_path}")

    def health(self) -> dict:
        return json.loads(request("GET", self.port, "/healthz")[1])

    def kill(self) -> None:
        """SIGKILL: no shutdown handler runs, nothing is flushed."""
        if self.proc is not None and self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
            self.proc.wait()

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.kill()


def request(method: str, port: int, path: str, body: object = None, headers: dict | None = None, timeout: float = 30.0,
            conn: http.client.HTTPConnection | None = None) -> tuple[int, bytes]:  # fmt: skip
    """One HTTP request (on ``conn`` if given, keeping it alive); returns (status, body)."""
    own = conn is None
    conn = conn or http.client.HTTPConnection(HOST, port, timeout=timeout)
    try:
        data = None if body is None else json.dumps(body).encode()
        hdrs = {"Content-Type": "application/json", **(headers or {})} if data is not None else dict(headers or {})
        conn.request(method, path, body=data, headers=hdrs)
        resp = conn.getresponse()
        return resp.status, resp.read()
    finally:
        if own:
            conn.close()


def percentiles(latencies_s: list[float]) -> dict[str, float]:
    if not latencies_s:
        return {}
    ms = np.asarray(latencies_s) * 1000
    return {f"p{q}_ms": round(float(np.percentile(ms, q)), 2) for q in (50, 95, 99)} | {"max_ms": round(float(ms.max()), 2)}


# ---------------------------------------------------------------- load


def load(args: argparse.Namespace) -> dict:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    users = pd.read_parquet(Path(args.run) / "users.parquet")["user_id"].astype(str).tolist()
    server = Server(args.run, args.port, work / "load-events.sqlite", work / "server.log", args.server_args)
    startup = server.start()
    health = server.health()
    print(f"server up in {startup:.1f} s: {health['items']} items, {health['users']} users, index {health['index']}", flush=True)
    if args.events_per_user:
        post_clicks(args.port, users, pd.read_parquet(Path(args.run) / "items.parquet")["item_id"].astype(str).tolist(), args.events_per_user)

    local = threading.local()
    rng = random.Random(0)
    n = int(args.rate * args.duration)
    paths = [f"/users/{rng.choice(users)}/recommendations?k={args.k}" for _ in range(n)]
    due_latency, service_latency, errors = [0.0] * n, [0.0] * n, []
    finished = [0.0] * n

    stale: list[float] = []  # idle seconds of each kept-alive connection the server had closed

    def one(i: int, due: float) -> None:
        if not hasattr(local, "conn"):
            local.conn, local.used = http.client.HTTPConnection(HOST, args.port, timeout=10), None
        sent = time.perf_counter()
        try:
            try:
                status, body = request("GET", args.port, paths[i], conn=local.conn)
            except (http.client.RemoteDisconnected, BrokenPipeError, ConnectionResetError):
                # The server closes a kept-alive connection after it has been idle a while
                # (uvicorn: 5 s); a request sent as it does so gets no answer. HTTP clients send
                # an idempotent request again on a new connection (RFC 9112, 9.3.1), once; a
                # request that fails again, or on a connection that was not idle, is an error.
                if local.used is None or sent - local.used < STALE_AFTER_S:
                    raise
                stale.append(round(sent - local.used, 2))
                local.conn = http.client.HTTPConnection(HOST, args.port, timeout=10)
                status, body = request("GET", args.port, paths[i], conn=local.conn)
            if status != 200:
                errors.append((i, status, body[:200].decode(errors="replace")))
        except (OSError, http.client.HTTPException) as exc:
            idle = None if local.used is None else round(sent - local.used, 2)
            errors.append((i, "exception", f"{exc!r} (connection idle {idle} s)"))
            local.conn = http.client.HTTPConnection(HOST, args.port, timeout=10)
        end = time.perf_counter()
        local.used = end
        due_latency[i], service_latency[i], finished[i] = end - due, end - sent, end

    reload_result: dict = {}

    def reload() -> None:
        start = time.perf_counter()
        status, body = request("POST", args.port, "/admin/reload", {"run": args.reload_run or args.run},
                               {"X-API-Key": ADMIN_KEY}, timeout=600)  # fmt: skip
        reload_result.update(status=status, seconds=round(time.perf_counter() - start, 2), start=start, end=time.perf_counter())
        if status != 200:
            reload_result["body"] = body[:300].decode(errors="replace")

    print(f"load: {n} requests at {args.rate}/s for {args.duration} s ...", flush=True)
    reloader = None
    with ThreadPoolExecutor(max_workers=args.workers) as pool:
        t0 = time.perf_counter() + 0.5
        for i in range(n):
            due = t0 + i / args.rate
            if args.reload_at is not None and reloader is None and due - t0 >= args.reload_at:
                reloader = threading.Thread(target=reload)
                reloader.start()
            pause = due - time.perf_counter()
            if pause > 0:
                time.sleep(pause)
            pool.submit(one, i, due)
    elapsed = max(finished) - t0
    if reloader is not None:
        reloader.join()
    server.stop()

    result: dict = {
        "run": args.run,
        "items": health["items"],
        "index": health["index"],
        "requests": n,
        "rate_target": args.rate,
        "throughput_per_s": round(n / elapsed, 1),
        "errors": len(errors),
        "idle_connections_resent": len(stale),  # each after this many idle seconds:
        "resent_after_idle_s": stale[:10],
        "latency_from_due": percentiles(due_latency),
        "latency_from_send": percentiles(service_latency),
    }
    if reload_result:
        during = [due_latency[i] for i in range(n) if reload_result["start"] <= finished[i] <= reload_result["end"] + 1.0]
        result["reload"] = {k: v for k, v in reload_result.items() if k not in ("start", "end")}
        result["reload"]["requests_during"] = len(during)
        result["reload"]["latency_during"] = percentiles(during)
    if errors:
        result["first_errors"] = errors[:5]
    return result


def post_clicks(port: int, users: list[str], items: list[str], per_user: int) -> None:
    """``per_user`` clicks on random catalogue items for every user, time now: with
    `--live-events` every request then reads them (docs/serving.md, "Live events")."""
    rng = random.Random(1)
    events = [{"user_id": u, "item_id": rng.choice(items), "event_type": "click"} for u in users for _ in range(per_user)]
    for start in range(0, len(events), 1000):
        status, body = request("POST", port, "/events", events[start : start + 1000])
        if status != 201:
            raise RuntimeError(f"POST /events answered {status}: {body[:200]!r}")
    print(f"posted {len(events)} clicks ({per_user} a user)", flush=True)


# ---------------------------------------------------------------- crash


def crash(args: argparse.Namespace) -> dict:
    work = Path(args.workdir)
    work.mkdir(parents=True, exist_ok=True)
    db = work / "crash-events.sqlite"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    server = Server(args.run, args.port, db, work / "server.log", args.server_args)
    acked: list[str] = []
    cycles = []
    rng = random.Random(0)
    for cycle in range(args.cycles):
        server.start()
        stop = threading.Event()
        mine: list[str] = []
        sent = [0]

        def post() -> None:
            conn = http.client.HTTPConnection(HOST, args.port, timeout=10)
            while not stop.is_set():
                event = {"user_id": f"u{rng.randrange(1000)}", "item_id": f"i{rng.randrange(1000)}",
                         "event_type": "click", "event_id": uuid.uuid4().hex}  # fmt: skip
                sent[0] += 1
                try:
                    status, _ = request("POST", args.port, "/events", event, conn=conn)
                except (OSError, http.client.HTTPException):
                    return  # the server is gone: whatever was in flight is unacknowledged
                if status == 201:
                    mine.append(event["event_id"])

        clients = [threading.Thread(target=post) for _ in range(args.clients)]
        for c in clients:
            c.start()
        time.sleep(rng.uniform(args.min_kill_after, args.max_kill_after))
        server.kill()  # mid-stream: clients are posting right now
        stop.set()
        for c in clients:
            c.join()
        acked += mine
        cycles.append({"cycle": cycle + 1, "acknowledged": len(mine), "sent": sent[0]})
        print(f"cycle {cycle + 1}: {len(mine)} events acknowledged before SIGKILL", flush=True)

    server.start()  # one more restart: the store must open cleanly after the last kill
    status, body = request("GET", args.port, "/events/count")
    count = json.loads(body)["count"] if status == 200 else None
    with sqlite3.connect(f"file:{db}?mode=ro", uri=True) as conn:
        stored = {row[0] for row in conn.execute("SELECT event_id FROM events")}
    server.stop()
    lost = [e for e in acked if e not in stored]
    return {"cycles": cycles, "acknowledged": len(acked), "stored_after_restart": count, "lost": len(lost)}


# ---------------------------------------------------------------- a synthetic 100,000-item run


def synthetic(args: argparse.Namespace) -> dict:
    """A generic-format dataset with ``--items`` items and a next-item model trained on it.

    Items fall in 200 topics; each user follows one or two topics and takes Zipf-popular
    items from them, plus a few at random. Training reads IDs only (no text), one epoch,
    protocol B, sampled softmax: minutes on two cores. The point is a realistic catalogue
    size and trained (not random) vectors for the index, not a good model.
    """
    import polyrec
    from polyrec.config import RunConfig

    rng = np.random.default_rng(0)
    data = Path(args.out).with_name(Path(args.out).name + "-data")
    data.mkdir(parents=True, exist_ok=True)
    n_items, n_users, topics = args.items, args.users, 200
    topic = rng.integers(topics, size=n_items)
    by_topic = [np.flatnonzero(topic == t) for t in range(topics)]
    pd.DataFrame(
        {
            "item_id": [f"i{i}" for i in range(n_items)],
            "title": [f"item {i} of topic {topic[i]}" for i in range(n_items)],
            "item_type": np.where(rng.random(n_items) < 0.1, "ad", "product"),
        }
    ).to_csv(data / "items.csv", index=False)
    rows = []
    for u in range(n_users):
        mine = rng.choice(topics, size=rng.integers(1, 3), replace=False)
        for j in range(int(rng.integers(10, 40))):
            if rng.random() < 0.9:
                pool = by_topic[int(rng.choice(mine))]
                i = pool[min(int(rng.zipf(1.3)) - 1, len(pool) - 1)]
            else:
                i = int(rng.integers(n_items))
            rows.append((f"u{u}", f"i{i}", 1_600_000_000 + 3600 * j))
    pd.DataFrame(rows, columns=["user_id", "item_id", "ts"]).to_csv(data / "interactions.csv", index=False)
    (data / "dataset.yaml").write_text(
        "name: synthetic-catalogue\n"
        "interactions: {path: interactions.csv, user: user_id, item: item_id, timestamp: ts}\n"
        "items: {path: items.csv, id: item_id, text: [title], type: item_type}\n"
    )
    cfg = RunConfig()
    cfg.data.path, cfg.data.dataset = str(data), None
    cfg.text.enabled = False
    cfg.tasks, cfg.protocols, cfg.seeds = ["next_item"], ["B"], [0]
    cfg.model.layers, cfg.model.max_history = 1, 50
    cfg.train.epochs, cfg.train.threads, cfg.train.sampled_negatives, cfg.train.batch_size = 1, 1, 256, 64
    start = time.monotonic()
    result = polyrec.run(cfg, args.out, progress=False)
    return {"out": args.out, "items": n_items, "users": n_users, "interactions": len(rows),
            "train_and_eval_seconds": round(time.monotonic() - start, 1),
            "ndcg@10": result.metrics.get("B.next_item.ndcg@10")}  # fmt: skip


# ---------------------------------------------------------------- command line


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="mode", required=True)
    for name in ("load", "crash"):
        p = sub.add_parser(name)
        p.add_argument("--run", required=True, help="run folder to serve")
        p.add_argument("--port", type=int, default=8765)
        p.add_argument("--workdir", default="runs/serve-bench", help="event stores and the server log go here")
        p.add_argument("--server-args", nargs=argparse.REMAINDER, default=[], help="passed on to `polyrec serve`")
        if name == "load":
            p.add_argument("--rate", type=float, default=100.0, help="requests per second")
            p.add_argument("--duration", type=float, default=60.0, help="seconds (the benchmark stops by itself)")
            p.add_argument("--k", type=int, default=10)
            p.add_argument("--workers", type=int, default=16, help="client threads (connections)")
            p.add_argument("--reload-at", type=float, help="seconds into the load to POST /admin/reload (default: half-way; < 0: none)")
            p.add_argument("--reload-run", help="run to reload to (default: --run again)")
            p.add_argument("--events-per-user", type=int, default=0, help="clicks each user posts before the load (for --live-events)")
        else:
            p.add_argument("--cycles", type=int, default=5)
            p.add_argument("--clients", type=int, default=4, help="threads posting events")
            p.add_argument("--min-kill-after", type=float, default=1.0, help="seconds of posting before the kill (min)")
            p.add_argument("--max-kill-after", type=float, default=3.0)
    syn = sub.add_parser("synthetic")
    syn.add_argument("--items", type=int, default=100_000)
    syn.add_argument("--users", type=int, default=10_000)
    syn.add_argument("--out", default="runs/synthetic-100k")
    args = parser.parse_args()
    if args.mode == "load":
        args.reload_at = args.duration / 2 if args.reload_at is None else (None if args.reload_at < 0 else args.reload_at)
    result = {"load": load, "crash": crash, "synthetic": synthetic}[args.mode](args)
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
