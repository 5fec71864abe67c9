"""Feedback events in SQLite: durable appends, and export as a dataset polyrec trains on.

Durability: the database runs in WAL mode with ``synchronous=FULL``, so a commit returns
only after the write-ahead log is on disk; ``EventStore.append`` returns after its commit,
and the service acknowledges an event only then. A process killed at any moment (SIGKILL)
loses no acknowledged event. Each event carries an ``event_id`` (the client's, or a UUID):
posting the same id again stores nothing new, so a client may retry after a lost answer.

This module needs only the standard library and pandas: exporting works without the
``serve`` extra installed.
"""

from __future__ import annotations

import sqlite3
import threading
import uuid
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from ..config import RunConfig
from ..data.tables import scale_ctr_threshold
from ..run_loader import load_tables

# Engagement label each event type implies; "rating" events take it from the rating.
EVENT_LABELS: dict[str, float | None] = {
    "view": 0.0,  # shown, not engaged with
    "click": 1.0,
    "like": 1.0,
    "purchase": 1.0,
    "dislike": 0.0,
    "rating": None,
}
EVENT_TYPES = tuple(EVENT_LABELS)

_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,  -- arrival order
    event_id TEXT NOT NULL UNIQUE,
    user_id TEXT NOT NULL,
    item_id TEXT NOT NULL,
    event_type TEXT NOT NULL,
    rating REAL,
    time REAL NOT NULL,                    -- when it happened, seconds since 1970 UTC
    received REAL NOT NULL                 -- when the store committed it
)
"""


@dataclass(frozen=True)
class Event:
    user_id: str
    item_id: str
    event_type: str
    time: float  # seconds since 1970 UTC
    rating: float | None = None
    event_id: str | None = None  # None: a fresh UUID


class EventStore:
    """An append-only SQLite table of events; safe to share between threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # One connection, one writer at a time (SQLite allows no more); autocommit mode, so
        # each append is exactly the explicit transaction below.
        self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None, timeout=30.0)
        self._lock = threading.Lock()
        with self._lock:
            mode = self._db.execute("PRAGMA journal_mode=WAL").fetchone()[0]
            if mode.lower() != "wal":
                raise RuntimeError(f"{self.path}: SQLite refused WAL mode (got {mode})")
            self._db.execute("PRAGMA synchronous=FULL")
            self._db.execute(_SCHEMA)
            # A user's events are read per request where the service reads them live (user_events).
            self._db.execute("CREATE INDEX IF NOT EXISTS events_by_user ON events (user_id, time)")

    def append(self, events: Iterable[Event], received: float) -> list[tuple[str, bool]]:
        """Store ``events`` in one transaction; returns (event_id, newly stored) for each.

        Returns only after the commit is durable. An event_id already stored is left as it is.
        """
        rows = [(e.event_id or uuid.uuid4().hex, e) for e in events]
        out: list[tuple[str, bool]] = []
        with self._lock:
            self._db.execute("BEGIN IMMEDIATE")
            try:
                for event_id, e in rows:
                    cur = self._db.execute(
                        "INSERT INTO events (event_id, user_id, item_id, event_type, rating, time, received) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?) ON CONFLICT(event_id) DO NOTHING",
                        (event_id, e.user_id, e.item_id, e.event_type, e.rating, e.time, received),
                    )
                    out.append((event_id, cur.rowcount == 1))
                self._db.execute("COMMIT")
            except BaseException:
                self._db.execute("ROLLBACK")
                raise
        return out

    def user_events(self, user_id: str, after: float | None = None) -> pd.DataFrame:
        """``user_id``'s events that happened after ``after`` (all where None), oldest first
        (ties in arrival order): columns item_id, event_type, rating (NaN where none), time."""
        query = "SELECT item_id, event_type, rating, time FROM events WHERE user_id = ?"
        args: tuple = (user_id,)
        if after is not None:
            query, args = query + " AND time > ?", (user_id, after)
        with self._lock:
            rows = self._db.execute(query + " ORDER BY time, id", args).fetchall()
        items, types, ratings, times = zip(*rows) if rows else ((), (), (), ())
        return pd.DataFrame({
            "item_id": pd.Series(items, dtype=object), "event_type": pd.Series(types, dtype=object),
            "rating": np.array([np.nan if r is None else r for r in ratings], dtype=np.float64),
            "time": np.array(times, dtype=np.float64),
        })  # fmt: skip

    def count(self) -> int:
        with self._lock:
            return int(self._db.execute("SELECT COUNT(*) FROM events").fetchone()[0])

    def close(self) -> None:
        with self._lock:
            self._db.close()


def read_events(path: str | Path) -> pd.DataFrame:
    """Every stored event in arrival order (columns as the ``events`` table)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no event store")
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:
        return pd.read_sql_query("SELECT * FROM events ORDER BY id", db)


def event_labels(events: pd.DataFrame, ctr_threshold: float = 4.0) -> np.ndarray:
    """0/1 engagement label of each event: by its type, or rating ≥ ``ctr_threshold``."""
    by_type = events["event_type"].map(EVENT_LABELS).astype(float).to_numpy()
    by_rating = (events["rating"].to_numpy(dtype=float) >= ctr_threshold).astype(float)
    return np.where(np.isnan(by_type), by_rating, by_type)


def run_ctr_threshold(run: Path | None, interactions: pd.DataFrame | None) -> float:
    """The rating from which ``run`` counted an interaction as engaged: its config's
    ``data.ctr_threshold``, or where that is left to the data, the point the scale of its
    ``interactions``' ratings gives (``Dataset.ctr_threshold``); MovieLens' 4 without a run or
    ratings."""
    config = None if run is None else run / "config.yaml"
    if config is None or not config.is_file():
        return 4.0
    threshold = RunConfig.load(config).data.ctr_threshold
    if threshold is not None:
        return float(threshold)
    if interactions is None or "rating" not in interactions:
        return 4.0
    return scale_ctr_threshold(float(interactions["rating"].min()), float(interactions["rating"].max()))


def export_events(
    db: str | Path, out: str | Path, run: str | Path | None = None, ctr_threshold: float | None = None
) -> tuple[Path, list[str]]:
    """Write the store as a dataset folder (``dataset.yaml`` + CSVs) for ``polyrec run --data``.

    Interactions get ``user_id, item_id, event_type, rating, label, ts`` (``label``: the
    engagement each event implies, see ``event_labels``). The ``rating`` column is declared in
    ``dataset.yaml`` where any interaction has a rating; the others leave it empty.

    With ``run`` (a run folder), the run's own interactions come first, and its items (with
    their texts) and users (with their attributes) are written too; items and users that only
    the events name are added with no text or attributes. Returns the folder and notes on
    what the dataset leaves out. ``ctr_threshold`` (None: ``run_ctr_threshold``) labels the
    events and the run's interactions that have a rating but no label.
    """
    run = None if run is None else Path(run)
    tables = None if run is None else load_tables(run)  # items, users, interactions: read once
    if ctr_threshold is None:
        ctr_threshold = run_ctr_threshold(run, None if tables is None else tables[2])
    events = read_events(db)
    frame = pd.DataFrame(
        {
            "user_id": events["user_id"],
            "item_id": events["item_id"],
            "event_type": events["event_type"],
            "rating": events["rating"].astype(float),
            "label": event_labels(events, ctr_threshold).astype(int),
            "ts": events["time"].astype(float),
        }
    )
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    spec: dict[str, object] = {"name": out.name}
    if tables is not None:
        frame, items, users = _with_run(tables, frame, ctr_threshold)
        items.to_csv(out / "items.csv", index=False)
        users.to_csv(out / "users.csv", index=False)
        item_spec: dict[str, object] = {"path": "items.csv", "id": "item_id", "text": ["text"]}
        if "item_type" in items.columns:
            item_spec["type"] = "item_type"
        spec["items"] = item_spec
        # A run's users table: id, attributes and, where users are described by text, "text".
        attributes = [c for c in users.columns if c not in ("user_id", "text")]
        user_spec: dict[str, object] = {"path": "users.csv", "id": "user_id", "attributes": attributes}
        if "text" in users.columns:
            user_spec["text"] = ["text"]
        spec["users"] = user_spec
    if frame.empty:
        raise ValueError(f"{db}: no events to export")
    inter: dict[str, object] = {"path": "interactions.csv", "user": "user_id", "item": "item_id", "label": "label", "timestamp": "ts"}
    notes = []
    if frame["rating"].notna().any():
        inter["rating"] = "rating"
        if missing := int(frame["rating"].isna().sum()):
            notes.append(f"{missing} of {len(frame)} interactions have no rating: the rating task learns from the "
                         "rated ones, and the label column carries engagement")  # fmt: skip
    spec["interactions"] = inter
    frame.to_csv(out / "interactions.csv", index=False)
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))
    return out, notes


# Numeric timestamps this large are epoch time in a finer unit than the events' seconds (as
# seconds, 1e11 is the year 5138; as milliseconds, any date after March 1973): (from, per second).
FINER_UNITS = ((1e17, 1e9), (1e14, 1e6), (1e11, 1e3))  # nanoseconds, microseconds, milliseconds


def epoch_seconds(times: np.ndarray) -> np.ndarray:
    """A run's numeric timestamps on the events' scale, seconds since 1970: values whose
    largest is 1e11 or more are read as epoch milliseconds (1e14: microseconds, 1e17:
    nanoseconds), as Java and JavaScript logs write them; others as given (seconds, or a unit
    of the data's own, small numbers after which every event comes)."""
    times = np.asarray(times, dtype=np.float64)
    if times.size == 0 or np.isnan(times).all():
        return times
    top = float(np.nanmax(np.abs(times)))
    for start, per_second in FINER_UNITS:
        if top >= start:
            return times / per_second
    return times


def _with_run(
    tables: list[pd.DataFrame], events: pd.DataFrame, ctr_threshold: float
) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """(interactions, items, users) of a run (its ``tables``: ``run_loader.load_tables``)
    followed by, or extended with, the events'."""
    items, users, past = tables
    items, users = items.astype({"item_id": str}), users.astype({"user_id": str})
    rating = past["rating"].astype(float) if "rating" in past else pd.Series(np.nan, index=past.index)
    if "label" in past:
        label = past["label"].astype(int)
    else:  # without a rating or a label, an interaction of the run was taken, i.e. engaged with
        label = ((rating >= ctr_threshold) | rating.isna()).astype(int)
    # On the events' scale, so that the events come after the run's data, not before it.
    ts = epoch_seconds(past["timestamp"].to_numpy(dtype=np.float64)) if "timestamp" in past else np.arange(len(past), dtype=float)
    before = pd.DataFrame(
        {
            "user_id": users["user_id"].to_numpy()[past["user"].to_numpy()],
            "item_id": items["item_id"].to_numpy()[past["item"].to_numpy()],
            "event_type": "history",
            "rating": rating.to_numpy(),
            "label": label.to_numpy(),
            "ts": ts,
        }
    )
    new_items = sorted(set(events["item_id"]) - set(items["item_id"]))
    new_users = sorted(set(events["user_id"]) - set(users["user_id"]))
    items = pd.concat([items, pd.DataFrame({"item_id": new_items})], ignore_index=True)
    users = pd.concat([users, pd.DataFrame({"user_id": new_users})], ignore_index=True)
    return pd.concat([before, events], ignore_index=True), items, users
