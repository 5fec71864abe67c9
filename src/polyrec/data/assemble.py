"""Building a ``Dataset`` from parsed tables: id validation and indexing, item texts, and the
policies every loader shares (see ``generic.py``): unknown ids are errors, users without
interactions are dropped, items without text get their id as text, all counted in the notes.
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
        message = f"duplicate {what} '{ids.iloc[pos]}' (first on row {table.row(first)})"
        raise table.error(message, pos, column)
    return ids.reset_index(drop=True)


def index_ids(
    inter: Table, column: str, what: str, known: pd.Series | None, known_file: str | None
) -> tuple[np.ndarray, pd.Series]:
    """Dense int64 indices of an interaction id column, and the id of each index.

    With ``known`` ids (a users/items file) indices follow that file and an unknown id is an
    error; without, ids are numbered in order of first appearance.
    """
    ids = inter.required_strings(column, what)
    if known is None:
        codes, uniques = pd.factorize(ids, sort=False)
        return codes.astype(np.int64), pd.Series(np.asarray(uniques, dtype=object), dtype=object)
    codes = pd.Index(known).get_indexer(ids)
    unknown = np.flatnonzero(codes < 0)
    if len(unknown):
        pos = int(unknown[0])
        raise inter.error(f"{what} '{ids.iloc[pos]}' is not in {Path(known_file).name}", pos, column)
    return codes.astype(np.int64), known


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
) -> Dataset:
    """Index the interactions against the users/items tables and build the ``Dataset``.

    ``users``/``items`` hold ``user_id``/``item_id`` (validated unique) plus attribute or text
    columns, items a ``text`` column; ``None`` means "take them from the interactions".
    """
    known_users = None if users is None else users["user_id"]
    known_items = None if items is None else items["item_id"]
    user, user_ids = index_ids(inter, user_column, "user id", known_users, users_file)
    item, item_ids = index_ids(inter, item_column, "item id", known_items, items_file)
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
    return Dataset(
        name=name, users=users.reset_index(drop=True), items=items.reset_index(drop=True),
        interactions=interactions, attributes=list(attributes), text_columns=list(text_columns),
        notes=notes,
    )  # fmt: skip


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
