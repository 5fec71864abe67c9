"""Building a ``Dataset`` from parsed tables: id validation and indexing, item texts, and the
policies every loader shares (see ``generic.py``): ids missing from a users/items file are
errors or kept (the loader says which), users without interactions are dropped, items without
text get their id as text, all counted in the notes.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .io import Table
from .tables import Dataset


def unique_ids(table: Table, column: str, what: str) -> pd.Series:
    """The id column of a users/items file; a missing or repeated id is an error."""
    ids = table.required_strings(column, what)
    repeated = ids.duplicated().to_numpy()
    if repeated.any():
        pos = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero((ids == ids.iloc[pos]).to_numpy())[0])
        message = f"duplicate {what} '{ids.iloc[pos]}' (first on {table.place(first)})"
        raise table.error(message, pos, column)
    return ids.reset_index(drop=True)


def index_ids(
    inter: Table, column: str, what: str, known: pd.Series | None, known_file: str | None,
    keep_unknown: bool = False,
) -> tuple[np.ndarray, pd.Series, int]:
    """Dense int64 indices of an interaction id column, the id of each index, and how many ids
    were not in ``known``.

    With ``known`` ids (a users/items file) indices follow that file. An id missing from it is
    an error, or with ``keep_unknown`` appended after the file's ids (in order of first
    appearance) — unless more than half of the distinct ids are missing, which says the
    column or the file is the wrong one. Without ``known``, ids are numbered in order of first
    appearance.
    """
    ids = inter.required_strings(column, what)
    if known is None:
        codes, uniques = pd.factorize(ids, sort=False)
        return codes.astype(np.int64), pd.Series(np.asarray(uniques, dtype=object), dtype=object), 0
    codes = pd.Index(known).get_indexer(ids)
    unknown = np.flatnonzero(codes < 0)
    if not len(unknown):
        return codes.astype(np.int64), known, 0
    pos = int(unknown[0])
    message = f"{what} '{ids.iloc[pos]}' is not in {Path(known_file).name}"
    if not keep_unknown:
        raise inter.error(message, pos, column)
    missing, added = pd.factorize(ids.iloc[unknown], sort=False)
    n_missing, n_distinct = len(added), int(ids.nunique())
    if 2 * n_missing > n_distinct:
        raise inter.error(
            f"{message} ({n_missing} of the {n_distinct} {what}s in the interactions are not): "
            f"is '{column}' the right column, and the file the right one?", pos, column,
        )  # fmt: skip
    codes[unknown] = len(known) + missing
    extended = pd.concat([known, pd.Series(np.asarray(added, dtype=object), dtype=object)], ignore_index=True)
    return codes.astype(np.int64), extended, n_missing


TextMaker = Callable[[Mapping[str, object], Sequence[str]], str]


def texts(frame: pd.DataFrame, text_columns: Sequence[str], make: TextMaker) -> list[str]:
    """``make(row, text_columns)`` for every row of ``frame`` ("" for each row without columns)."""
    columns = list(text_columns)
    if not columns:
        return [""] * len(frame)
    return [make(dict(zip(columns, values)), columns) for values in zip(*(frame[c] for c in columns))]


def assemble(
    name: str,
    inter: Table,
    user_column: str,
    item_column: str,
    values: Mapping[str, np.ndarray],
    users: pd.DataFrame | None,
    users_file: str | None,
    items: pd.DataFrame | None,
    items_file: str | None,
    attributes: Sequence[str],
    text_columns: Sequence[str],
    notes: list[str],
    drop_items_without_interactions: bool = False,
    keep_unknown_ids: bool = False,
) -> Dataset:
    """Index the interactions against the users/items tables and build the ``Dataset``.

    ``users``/``items`` hold ``user_id``/``item_id`` (validated unique) plus attribute or text
    columns, items a ``text`` column; ``None`` means "take them from the interactions".
    ``keep_unknown_ids``: interactions naming a user or item missing from its file keep it,
    as a user whose attributes are unknown or an item without text (``index_ids``).
    """
    known_users = None if users is None else users["user_id"]
    known_items = None if items is None else items["item_id"]
    user, user_ids, new_users = index_ids(
        inter, user_column, "user id", known_users, users_file, keep_unknown_ids
    )
    item, item_ids, new_items = index_ids(
        inter, item_column, "item id", known_items, items_file, keep_unknown_ids
    )
    if new_users:
        kept = f"users are not in {Path(users_file).name}: kept, attributes unknown"
        users = _append_ids(users, "user_id", user_ids, kept, notes)
    if new_items:
        kept = f"items are not in {Path(items_file).name}: kept, without text"
        items = _append_ids(items, "item_id", item_ids, kept, notes)
    if users is None:
        users = pd.DataFrame({"user_id": user_ids})
    if items is None:
        items = pd.DataFrame({"item_id": item_ids, "text": item_ids})
        notes.append("no items file: items come from the interactions and each item's text is its id")

    users_label = f"users in {Path(users_file).name}" if users_file else "users"
    items_label = f"items in {Path(items_file).name}" if items_file else "items"
    user, users = _keep_used(user, users, users_label, "dropped (no history to learn from)", notes)
    item_drop = "dropped" if drop_items_without_interactions else None
    item, items = _keep_used(item, items, items_label, item_drop, notes)

    empty_text = items["text"].astype(str).str.strip() == ""
    if empty_text.any():
        items.loc[empty_text, "text"] = items.loc[empty_text, "item_id"]
        notes.append(f"{int(empty_text.sum())} items have no text: their id is used as text")

    columns = {"user": user, "item": item, **{k: np.asarray(v, np.float64) for k, v in values.items()}}
    interactions = pd.DataFrame(columns)
    repeats = int(interactions.duplicated(["user", "item"]).sum())
    if repeats:
        notes.append(f"{repeats} interactions repeat an earlier (user, item) pair: kept")
    copies = int(interactions.duplicated().sum()) if "timestamp" in interactions else 0
    if copies:  # the same time and values: more likely a log written twice than a second purchase
        notes.append(
            f"{copies} of them copy an earlier interaction exactly, time included: if the log wrote them twice, "
            "drop them before training (kept, a copy can land on the other side of a split from its original)"
        )
    return Dataset(
        name=name, users=users.reset_index(drop=True), items=items.reset_index(drop=True),
        interactions=interactions, attributes=list(attributes), text_columns=list(text_columns),
        notes=notes,
    )  # fmt: skip


def _append_ids(
    table: pd.DataFrame, id_column: str, ids: pd.Series, note: str, notes: list[str]
) -> pd.DataFrame:
    """``table`` with a row for each of ``ids`` past its end, every other column missing
    (an item's text empty, so that it falls back to its id)."""
    added = pd.DataFrame({id_column: ids.iloc[len(table):].reset_index(drop=True)})
    if "text" in table:
        added["text"] = ""
    notes.append(f"{len(added)} {note} (the first: '{added[id_column].iloc[0]}')")
    return pd.concat([table, added], ignore_index=True)


def _keep_used(
    codes: np.ndarray, table: pd.DataFrame, label: str, drop: str | None, notes: list[str]
) -> tuple[np.ndarray, pd.DataFrame]:
    """Count the rows of ``table`` that no interaction uses; with ``drop`` (the note's reason)
    remove them and renumber ``codes``."""
    used = np.bincount(codes, minlength=len(table)) > 0
    n_unused = int((~used).sum())
    if n_unused == 0:
        return codes, table
    notes.append(f"{n_unused} {label} have no interactions: {drop or 'kept'}")
    if drop is None:
        return codes, table
    new_index = np.cumsum(used) - 1
    return new_index[codes].astype(np.int64), table[used].reset_index(drop=True)
