"""Progress bars of the training loops. Jobs that train side by side in worker processes
(run_jobs.py) each draw their bar on their own terminal line, under one shared lock."""

from __future__ import annotations

from typing import Any, Iterable

from tqdm.auto import tqdm

_LINE: int | None = None  # this process's bar line; None: the next free one (one process)


def set_bar_line(line: int | None, lock: Any) -> None:
    """Draw this process's bars on ``line`` under ``lock`` (shared by the processes whose
    bars share the terminal); ``None, None``: back to one process."""
    global _LINE
    _LINE = line
    if lock is not None:
        tqdm.set_lock(lock)


def bar(items: Iterable, desc: str, enabled: bool) -> tqdm:
    """A transient bar over ``items`` (gone from the terminal when done)."""
    return tqdm(items, desc=desc, disable=not enabled, leave=False, position=_LINE)


def counter(desc: str, enabled: bool, total: int | None = None) -> tqdm:
    """A transient bar advanced by hand (``update()``), for work that is not one loop."""
    return tqdm(total=total, desc=desc, disable=not enabled, leave=False, position=_LINE)
