"""The feedback event store: durability under SIGKILL, idempotent appends, export for training."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from polyrec.cli import main
from polyrec.data.generic import load_generic
from polyrec.serve.events import Event, EventStore, epoch_seconds, event_labels, export_events, read_events

WRITER = """
import sys
from polyrec.serve.events import Event, EventStore
store, start = EventStore(sys.argv[1]), int(sys.argv[2])
for i in range(start, start + 1_000_000):
    store.append([Event("u1", "i1", "click", 0.0, None, f"e{i}")], received=0.0)
    print(f"e{i}", flush=True)  # acknowledged: printed only after the commit returned
"""


def test_store_runs_in_wal_mode_with_full_sync(tmp_path) -> None:
    store = EventStore(tmp_path / "ev.sqlite")
    other = sqlite3.connect(tmp_path / "ev.sqlite")
    assert other.execute("PRAGMA journal_mode").fetchone()[0] == "wal"  # a property of the file
    assert store._db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL (per connection)


def test_no_acknowledged_event_is_lost_to_sigkill(tmp_path) -> None:
    db = tmp_path / "ev.sqlite"
    acked: list[str] = []
    for cycle in range(3):
        writer = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(db), str(cycle * 1_000_000)], stdout=subprocess.PIPE, text=True
        )
        deadline, mine = time.monotonic() + 60, 0
        while mine < 50 + 40 * cycle and time.monotonic() < deadline:  # killed at a different point each time
            line = writer.stdout.readline()
            if not line:
                break
            acked.append(line.strip())
            mine += 1
        os.kill(writer.pid, signal.SIGKILL)
        acked += [line.strip() for line in writer.stdout.read().splitlines() if line.strip()]  # printed before the kill
        writer.wait()
        assert mine > 0, "the writer acknowledged nothing"
    stored = set(read_events(db)["event_id"])
    assert set(acked) <= stored, f"lost: {sorted(set(acked) - stored)[:5]}"
    assert len(acked) >= 50 + 90 + 130


def test_append_is_idempotent_per_event_id(tmp_path) -> None:
    store = EventStore(tmp_path / "ev.sqlite")
    first = store.append([Event("u", "i", "click", 1.0, event_id="a"), Event("u", "j", "view", 2.0)], received=5.0)
    assert first[0] == ("a", True) and first[1][1] is True and len(first[1][0]) == 32  # a UUID
    again = store.append([Event("u", "i", "like", 3.0, event_id="a")], received=6.0)
    assert again == [("a", False)] and store.count() == 2
    rows = read_events(tmp_path / "ev.sqlite")
    assert rows.loc[rows["event_id"] == "a", "event_type"].item() == "click"  # the first one stays


def test_event_labels_follow_type_then_rating() -> None:
    frame = pd.DataFrame(
        {"event_type": ["view", "click", "like", "purchase", "dislike", "rating", "rating"], "rating": [np.nan] * 5 + [4.5, 2.0]}
    )
    assert event_labels(frame).tolist() == [0, 1, 1, 1, 0, 1, 0]


def _fill(db: Path, events: list[Event]) -> None:
    store = EventStore(db)
    store.append(events, received=0.0)
    store.close()


def test_export_alone_is_a_dataset_polyrec_loads(tmp_path) -> None:
    events = [Event(f"u{k % 3}", f"i{k % 5}", "rating", 100.0 + k, rating=float(1 + k % 5)) for k in range(12)]
    _fill(tmp_path / "ev.sqlite", events)
    out, notes = export_events(tmp_path / "ev.sqlite", tmp_path / "data")
    assert notes == []
    ds = load_generic(out)
    assert (ds.n_users, ds.n_items, len(ds.interactions)) == (3, 5, 12)
    assert ds.has_rating and ds.has_label and ds.has_timestamp
    np.testing.assert_array_equal(ds.interactions["rating"], [1 + k % 5 for k in range(12)])
    np.testing.assert_array_equal(ds.interactions["label"], [float(1 + k % 5 >= 4) for k in range(12)])


def test_export_keeps_ratings_with_gaps_and_says_so(tmp_path) -> None:
    """Clicks beside rating events: the rating column is declared, empty where an event has
    none, so the next run still learns rating from the rated ones."""
    _fill(tmp_path / "ev.sqlite", [Event("u", "i", "rating", 1.0, rating=5.0), Event("u", "j", "click", 2.0)])
    out, notes = export_events(tmp_path / "ev.sqlite", tmp_path / "data")
    assert len(notes) == 1 and "1 of 2 interactions have no rating" in notes[0]
    ds = load_generic(out)
    assert ds.has_rating and ds.interactions["label"].tolist() == [1.0, 1.0]
    np.testing.assert_array_equal(ds.interactions["rating"], [5.0, np.nan])


def test_export_with_a_run_labels_its_unrated_interactions_as_taken(tmp_path) -> None:
    """A run whose data had ratings with gaps and no label column: an unrated interaction
    was taken (as in data with neither), a rated one is labelled by the threshold."""
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"item_id": ["a", "b"], "text": ["Alpha", "Beta"]}).to_parquet(run / "items.parquet")
    pd.DataFrame({"user_id": ["x", "y"]}).astype("string").to_parquet(run / "users.parquet")
    pd.DataFrame({"user": [0, 1, 1], "item": [0, 0, 1], "rating": [5.0, np.nan, 2.0], "timestamp": [1.0, 2.0, 3.0]}).to_parquet(
        run / "interactions.parquet"
    )
    _fill(tmp_path / "ev.sqlite", [Event("x", "b", "view", 10.0)])
    export_events(tmp_path / "ev.sqlite", tmp_path / "data", run)
    ds = load_generic(tmp_path / "data")
    assert ds.interactions["label"].tolist() == [1.0, 1.0, 0.0, 0.0]
    np.testing.assert_array_equal(ds.interactions["rating"], [5.0, np.nan, 2.0, np.nan])


def test_timestamps_in_epoch_milliseconds_and_finer_are_read_as_seconds() -> None:
    seconds = np.array([1.6e9, 1.7e9])
    for per_second in (1, 1e3, 1e6, 1e9):
        np.testing.assert_allclose(epoch_seconds(seconds * per_second), seconds)
    np.testing.assert_array_equal(epoch_seconds(np.array([3.0, 7.0, np.nan])), [3.0, 7.0, np.nan])  # a unit of its own
    assert epoch_seconds(np.array([])).size == 0


def test_live_events_of_a_run_in_epoch_milliseconds_are_those_after_its_data(tmp_path) -> None:
    from polyrec.serve import live

    class Run:  # what live events read of a run whose latest interaction of user x is at 1.6e12 ms
        def history_of(self, user: str) -> tuple[list[str], list[float | None]]:
            return ["a"], [5.0]

        def recommend_history(self, *args, **kwargs) -> None: ...

        def knows_user(self, user: str) -> bool:
            return user == "x"

        def known_until(self, user: str) -> float:
            return 1_600_000_060_000.0

        def in_catalogue(self, item: str) -> bool:
            return True

    _fill(tmp_path / "ev.sqlite", [Event("x", "before", "click", 1_600_000_000.0), Event("x", "after", "click", 1_700_000_000.0)])
    store = EventStore(tmp_path / "ev.sqlite")
    try:
        assert live.new_events(Run(), store, "x", None)["item_id"].tolist() == ["after"]
    finally:
        store.close()


def test_export_with_a_run_in_epoch_milliseconds_puts_the_events_after_its_data(tmp_path) -> None:
    """A run whose timestamps were epoch milliseconds: its interactions are written in seconds,
    the events' unit, so that the events come after them."""
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"item_id": ["a", "b"], "text": ["Alpha", "Beta"]}).to_parquet(run / "items.parquet")
    pd.DataFrame({"user_id": ["x"]}).astype("string").to_parquet(run / "users.parquet")
    ms = [1_600_000_000_000.0, 1_600_000_060_000.0]
    pd.DataFrame({"user": [0, 0], "item": [0, 1], "rating": [5.0, 2.0], "timestamp": ms}).to_parquet(run / "interactions.parquet")
    _fill(tmp_path / "ev.sqlite", [Event("x", "a", "click", 1_700_000_000.0)])
    export_events(tmp_path / "ev.sqlite", tmp_path / "data", run)
    written = pd.read_csv(tmp_path / "data" / "interactions.csv")
    assert written["ts"].tolist() == [1_600_000_000.0, 1_600_000_060.0, 1_700_000_000.0]
    ds = load_generic(tmp_path / "data")
    assert ds.interactions.sort_values("timestamp")["rating"].isna().tolist() == [False, False, True]  # the click last


def test_export_of_an_empty_store_fails_clearly(tmp_path) -> None:
    EventStore(tmp_path / "ev.sqlite").close()
    with pytest.raises(ValueError, match="no events to export"):
        export_events(tmp_path / "ev.sqlite", tmp_path / "data")
    with pytest.raises(FileNotFoundError, match="no event store"):
        export_events(tmp_path / "missing.sqlite", tmp_path / "data")


def test_export_with_a_run_appends_events_to_its_data(tmp_path) -> None:
    """A run folder's tables (as `polyrec run` saves them) followed by the events."""
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"item_id": ["a", "b"], "text": ["Alpha", "Beta"], "item_type": ["ad", "product"]}).to_parquet(run / "items.parquet")
    pd.DataFrame({"user_id": ["x", "y", "w"], "gender": ["F", pd.NA, "M"]}).astype("string").to_parquet(run / "users.parquet")
    pd.DataFrame({"user": [0, 1, 1], "item": [0, 0, 1], "rating": [5.0, 2.0, 4.0], "timestamp": [1.0, 2.0, 3.0]}).to_parquet(
        run / "interactions.parquet"
    )
    _fill(tmp_path / "ev.sqlite", [Event("x", "b", "rating", 10.0, rating=3.0), Event("z", "c", "rating", 11.0, rating=5.0)])
    assert main(["events", "export", "--db", str(tmp_path / "ev.sqlite"), "--out", str(tmp_path / "data"), "--run", str(run)]) == 0
    ds = load_generic(tmp_path / "data")
    assert ds.users["user_id"].tolist() == ["x", "y", "z"] and ds.items["item_id"].tolist() == ["a", "b", "c"]
    assert ds.items["text"].tolist() == ["Alpha", "Beta", "c"]  # a new item: its id as text
    assert ds.items["item_type"].tolist()[:2] == ["ad", "product"]
    assert len(ds.interactions) == 5 and ds.interactions["rating"].tolist() == [5.0, 2.0, 4.0, 3.0, 5.0]
    assert ds.users["gender"].isna().tolist() == [False, True, True]  # w never interacts: dropped


def test_export_keeps_a_runs_user_text_as_text_not_as_an_attribute(tmp_path) -> None:
    run = tmp_path / "run"
    run.mkdir()
    pd.DataFrame({"item_id": ["a", "b"], "text": ["Alpha", "Beta"]}).to_parquet(run / "items.parquet")
    users = pd.DataFrame({"user_id": ["x", "y"], "gender": ["F", "M"], "text": ["reads sci-fi", ""]})
    users.astype("string").to_parquet(run / "users.parquet")
    pd.DataFrame({"user": [0, 1], "item": [0, 1], "rating": [5.0, 2.0], "timestamp": [1.0, 2.0]}).to_parquet(run / "interactions.parquet")
    _fill(tmp_path / "ev.sqlite", [Event("x", "b", "rating", 10.0, rating=3.0)])
    assert main(["events", "export", "--db", str(tmp_path / "ev.sqlite"), "--out", str(tmp_path / "data"), "--run", str(run)]) == 0
    ds = load_generic(tmp_path / "data")
    assert ds.attributes == ["gender"] and ds.user_text_columns == ["text"]
    assert ds.user_texts() == ["reads sci-fi", ""]


def test_export_with_a_run_labels_ratings_on_the_run_s_own_scale(tmp_path) -> None:
    """A run on a 2–10 scale that left its ctr threshold to the data counted 8 and up as
    engaged: its interactions and the events' ratings are labelled so, not at MovieLens' 4."""
    from polyrec.config import RunConfig

    run = tmp_path / "run"
    run.mkdir()
    RunConfig().save(run / "config.yaml")  # data.ctr_threshold: null
    pd.DataFrame({"item_id": ["a", "b"], "text": ["Alpha", "Beta"]}).to_parquet(run / "items.parquet")
    pd.DataFrame({"user_id": ["x", "y"]}).astype("string").to_parquet(run / "users.parquet")
    pd.DataFrame({"user": [0, 1, 1], "item": [0, 0, 1], "rating": [10.0, 2.0, 8.0], "timestamp": [1.0, 2.0, 3.0]}).to_parquet(
        run / "interactions.parquet"
    )
    _fill(tmp_path / "ev.sqlite", [Event("x", "b", "rating", 10.0, rating=6.0), Event("y", "a", "rating", 11.0, rating=9.0)])
    export_events(tmp_path / "ev.sqlite", tmp_path / "data", run)
    ds = load_generic(tmp_path / "data")
    assert ds.interactions["label"].tolist() == [1.0, 0.0, 1.0, 0.0, 1.0]
