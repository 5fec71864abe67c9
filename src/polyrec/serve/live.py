"""Live events: a user's history grown by the feedback events stored since the run's data was
read, so that recommendations follow what the user just did without waiting for the next
training run (`polyrec serve --live-events`, `polyrec recommend --events`).

Which events are new: those that happened after the user's latest interaction in the run's
data (its timestamps read as seconds since 1970, or as epoch milliseconds and finer where
they are that large: ``events.epoch_seconds``). Events exported into that data (``polyrec
events export``) happened before it, so a run trained on them does not read them twice.
Where the run's data had no timestamps, the events after its tables were written count. A
user the run does not know is given by their events alone. Events of items outside the run's
catalogue are left out (an event carries no text), as are all events of a run type that
cannot read a history (``reads_live_events``).

An event is read as ``polyrec events export`` writes it for training: every event type is an
interaction; its value is its rating (none for the other types), or in a run on 0/1 labels
without ratings the label the event implies (``event_labels``).

Like ``events.py``, this needs neither FastAPI nor FAISS.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .events import EventStore, epoch_seconds, event_labels, run_ctr_threshold


def reads_live_events(rec: Any) -> bool:
    """Whether the run type can read a history grown by events: it gives back a known user's
    history (``history_of``) and ranks any (``recommend_history``), and says it can where
    that depends on the run (``reads_live_events``: an export of a model of users' texts)."""
    return hasattr(rec, "history_of") and hasattr(rec, "recommend_history") and getattr(rec, "reads_live_events", True)


def tables_written_at(run: str | Path) -> float | None:
    """When the run's tables were written (its interactions file's time; None where it has
    none): what the events of a run without timestamps must come after."""
    tables = Path(run) / "interactions.parquet"
    return tables.stat().st_mtime if tables.is_file() else None


def new_events(rec: Any, store: EventStore, user_id: str, written_at: float | None) -> pd.DataFrame:
    """``user_id``'s events of catalogue items since the run's data, oldest first (empty where
    none, or where the run cannot read a history). ``written_at``: ``tables_written_at``."""
    if not reads_live_events(rec):
        return pd.DataFrame(columns=["item_id", "event_type", "rating", "time"])
    after = None
    if rec.knows_user(user_id):
        after = rec.known_until(user_id)
        if after is None:  # no timestamps in the run's data: since its tables were written
            after = written_at
        else:  # on the events' scale: epoch milliseconds and finer read as seconds
            after = float(epoch_seconds(np.array([after]))[0])
    events = store.user_events(user_id, after)
    # A few events against a large catalogue: look each one up (Series.isin walks the catalogue).
    return events[[rec.in_catalogue(item) for item in events["item_id"]]].reset_index(drop=True)


def grown_history(
    rec: Any, user_id: str, events: pd.DataFrame, ctr_threshold: float | None
) -> tuple[list[str], list[float | None]]:
    """The user's history as the run knows it (none for a user it does not know), followed by
    ``events``: item ids and values, as ``recommend_history`` takes them. ``ctr_threshold``
    labels a rating event in a run on labels (``live_threshold``; needed there only)."""
    items, values = rec.history_of(user_id) if rec.knows_user(user_id) else ([], [])
    if rec.values_are_labels:
        if ctr_threshold is None:
            raise ValueError("a run on labels reads an event's label: grown_history needs the run's ctr_threshold")
        added = event_labels(events, ctr_threshold)
    else:
        added = events["rating"].to_numpy(dtype=np.float64)
    return items + events["item_id"].tolist(), values + [None if np.isnan(v) else float(v) for v in added]


@dataclass(frozen=True)
class GrownHistory:
    """A user's history grown by their live events, in the form the history methods
    (``recommend_history``, ``predict_history``, ``profile_history``, ``explain_history``) take."""

    items: list[str]
    values: list[float | None]
    user_text: str | None  # what described a known user in the run's data (a history alone carries none)
    new_events: int  # how many events grew it
    as_user: str | None  # the known user whose history it is (None: a user the run does not know)


def grown(rec: Any, store: EventStore, user_id: str, written_at: float | None, ctr_threshold: float | None) -> GrownHistory | None:
    """``user_id``'s history grown by their events since the run's data (:func:`new_events`,
    :func:`grown_history`); None where there are none, and the run's own view of a known
    user stands."""
    events = new_events(rec, store, user_id, written_at)
    if events.empty:
        return None
    items, values = grown_history(rec, user_id, events, ctr_threshold)
    return GrownHistory(items, values, known_user_text(rec, user_id), len(events), user_id if rec.knows_user(user_id) else None)


def known_user_text(rec: Any, user_id: str) -> str | None:
    """The text that described a known user in the run's data (None where none)."""
    users = rec.users_
    if not rec.knows_user(user_id) or "text" not in users.columns:
        return None
    text = users["text"].iloc[rec.user_index(user_id)]
    return None if pd.isna(text) or not str(text).strip() else str(text)


def live_threshold(run: str | Path) -> float:
    """The run's ctr threshold, which labels rating events where the run reads labels."""
    return run_ctr_threshold(Path(run), None)
