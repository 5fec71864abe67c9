"""Live events (`polyrec serve --live-events`): a user's history grown by the feedback events
stored since the run's data was read, so that recommendations follow what the user just did
without waiting for the next training run.

Which events are new: those that happened after the user's latest interaction in the run's
data. Events exported into that data (``polyrec events export``) happened before it, so a run
trained on them does not read them twice. Where the run's data had no timestamps, the events
after its tables were written count. A user the run does not know is given by their events
alone. Events of items outside the run's catalogue are left out (an event carries no text),
as are all events of a run type that cannot read a history (``history_of``).

An event is read as ``polyrec events export`` writes it for training: every event type is an
interaction; its value is its rating (none for the other types), or in a run on 0/1 labels
without ratings the label the event implies (``event_labels``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from .events import EventStore, event_labels, run_ctr_threshold
from .state import LoadedRun


def new_events(run: LoadedRun, store: EventStore, user_id: str) -> pd.DataFrame:
    """``user_id``'s events of catalogue items since the run's data, oldest first (empty where
    none, or where the run cannot read a history)."""
    if not hasattr(run.rec, "history_of"):
        return pd.DataFrame(columns=["item_id", "event_type", "rating", "time"])
    after = None
    if user_id in run.user_index:
        after = run.rec.known_until(user_id)  # type: ignore[attr-defined]
        if after is None:  # no timestamps in the run's data: since its tables were written
            after = run.data_written_at
    events = store.user_events(user_id, after)
    # A few events against a large catalogue: look each one up (Series.isin walks the catalogue).
    return events[[item in run.item_index for item in events["item_id"]]].reset_index(drop=True)


def grown_history(run: LoadedRun, user_id: str, events: pd.DataFrame) -> tuple[list[str], list[float | None]]:
    """The user's history as the run knows it (none for a user it does not know), followed by
    ``events``: item ids and values, as ``recommend_history`` takes them."""
    items, values = run.rec.history_of(user_id) if user_id in run.user_index else ([], [])  # type: ignore[attr-defined]
    if run.rec.values_are_labels:  # type: ignore[attr-defined]
        added = event_labels(events, run_ctr_threshold(Path(run.run), None))
    else:
        added = events["rating"].to_numpy(dtype=np.float64)
    return items + events["item_id"].tolist(), values + [None if np.isnan(v) else float(v) for v in added]


def known_user_text(run: LoadedRun, user_id: str) -> str | None:
    """The text that described a known user in the run's data (None where none)."""
    users = run.rec.users_
    if user_id not in run.user_index or "text" not in users.columns:
        return None
    text = users["text"].iloc[run.user_index[user_id]]
    return None if pd.isna(text) or not str(text).strip() else str(text)
