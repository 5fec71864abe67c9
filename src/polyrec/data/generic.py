"""The generic loader: a folder described by ``dataset.yaml``.

Table reading and value parsing live in ``io.py``, assembly of the ``Dataset`` in
``assemble.py`` (both shared with the MovieLens loaders); errors name the file, row and
column as ``io.py`` describes.

``dataset.yaml``::

    name: my-shop                                   # optional, default: the folder name
    interactions: {path: interactions.csv, user: user_id, item: item_id,
                   rating: rating, timestamp: ts, label: clicked}   # last three optional
    items: {path: items.csv, id: item_id, text: [title, categories, brand], type: item_type}
    users: {path: users.csv, id: user_id, attributes: [gender, age, occupation], text: [bio]}

A rating or a label may be empty (``_ratings``, ``_labels``): that interaction has none, as in
a log of views beside the odd rating. ``items`` and ``users`` are optional, as are their ``id`` (default: the interactions'
column name), ``text``, ``type`` and ``attributes``. A user's ``text`` columns describe the
user to the model (an input, encoded like item text); the ``attributes`` are what the profile
task predicts, so no column may be both. Files are ``.csv``, ``.tsv`` (UTF-8)
or ``.parquet``, or a folder of ``.parquet`` shards (``io.read_parquet_folder``); ids are
read as str.

Policies: interactions naming an id missing from an existing users/items file keep it — a
user whose attributes are unknown (a users file often covers only the users who gave them),
an item without text — and the notes count them; when more than half of the distinct ids
are missing, the column or the file is the wrong one, and that is an error. Items with no
text (no items file, no text columns, or all text fields empty) get their id as text, so the text model never sees an empty string. Users
listed in a users file but without any interaction are dropped (no history to learn
from); items without interactions are kept (they are still candidates). Every such case
is counted in ``Dataset.notes``.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

from .assemble import assemble, texts, unique_ids
from .attributes import prepare_attributes
from .errors import DataError
from .io import Table, decode, parse_labels, parse_numbers, parse_timestamps, read_table
from .tables import Dataset

NOTE_NO_RATING = "no rating column: task 'rating' is off"
NOTE_NO_TIMESTAMP = "no timestamp column: protocol B orders each user's interactions by file order"


def item_text(row: Mapping[str, object], text_columns: Sequence[str]) -> str:
    """Generic item text: one column → its value; several → "name: value" pieces.

    Empty values are left out, e.g. ``"title: Blue kettle. brand: Acme"``.
    """
    values = [(c, str(row[c]).strip()) for c in text_columns if not pd.isna(row[c])]
    values = [(c, v) for c, v in values if v]
    if len(text_columns) == 1:
        return values[0][1] if values else ""
    return ". ".join(f"{c.replace('_', ' ')}: {v}" for c, v in values)


# ---------------------------------------------------------------- dataset.yaml


_SECTIONS: dict[str, tuple[tuple[str, ...], tuple[str, ...]]] = {
    # section: (required keys, optional keys)
    "interactions": (("path", "user", "item"), ("rating", "timestamp", "label")),
    "items": (("path",), ("id", "text", "type")),
    "users": (("path",), ("id", "attributes", "text")),
}
_LIST_KEYS = ("text", "attributes")


@dataclass
class _Spec:
    name: str
    sections: dict[str, dict[str, object]]


def _read_spec(path: Path) -> _Spec:
    """Read and check ``dataset.yaml``; errors name the key and its line."""
    if not path.is_file():
        raise DataError(str(path), "file not found")
    text = decode(path, "utf-8")
    try:
        data, root = yaml.safe_load(text), yaml.compose(text)
    except yaml.YAMLError as e:
        mark = getattr(e, "problem_mark", None)
        problem = getattr(e, "problem", None) or e
        line = None if mark is None else mark.line + 1
        raise DataError(str(path), f"not valid YAML: {problem}", line) from None

    def fail(message: str, *keys: str) -> DataError:
        return DataError(str(path), message, _yaml_line(root, keys), ".".join(keys))

    if not isinstance(data, dict):
        raise DataError(str(path), "expected a mapping with keys name, interactions, items, users", 1)
    for key in data:
        if key not in ("name", *_SECTIONS):
            raise fail(f"unknown key; allowed keys: name, {', '.join(_SECTIONS)}", str(key))
    sections: dict[str, dict[str, object]] = {}
    for section, (required, optional) in _SECTIONS.items():
        if section not in data:
            if section == "interactions":
                message = "missing required key (path, user and item columns of the interactions file)"
                raise DataError(str(path), message, None, section)
            continue
        body = data[section]
        if not isinstance(body, dict):
            raise fail(f"expected a mapping with keys {', '.join(required + optional)}", section)
        allowed = ", ".join(required + optional)
        for key in body:
            if key not in required + optional:
                raise fail(f"unknown key; allowed keys: {allowed}", section, str(key))
        for key in required:
            if key not in body:
                line = _yaml_line(root, (section,))
                raise DataError(str(path), f"missing required key '{key}'", line, f"{section}.{key}")
        sections[section] = {
            key: _check_value(value, key, lambda m, key=key: fail(m, section, key))
            for key, value in body.items()
        }
    name = data.get("name", path.parent.resolve().name)
    if not isinstance(name, (str, int)) or not str(name).strip():
        raise fail("expected a non-empty dataset name", "name")
    return _Spec(str(name).strip(), sections)


def _check_value(value: object, key: str, fail: Callable[[str], DataError]) -> str | list[str]:
    """Column names and paths are text (YAML numbers such as ``2020`` are accepted as text)."""
    def text(v: object) -> str:
        if isinstance(v, bool) or not isinstance(v, (str, int)) or not str(v).strip():
            raise fail(f"expected a {'file path' if key == 'path' else 'column name'}, got {v!r}")
        return str(v).strip()

    if key in _LIST_KEYS:
        return [text(v) for v in value] if isinstance(value, list) else [text(value)]
    return text(value)


def _yaml_line(node: yaml.Node | None, keys: Sequence[str]) -> int | None:
    """1-based line of the deepest of ``keys`` found in the composed YAML tree."""
    line = None
    for key in keys:
        if not isinstance(node, yaml.MappingNode):
            break
        match = next(((k, v) for k, v in node.value if str(k.value) == key), None)
        if match is None:
            break
        line, node = match[0].start_mark.line + 1, match[1]
    return line


# ---------------------------------------------------------------- the loader


def load_generic(folder: str | os.PathLike[str]) -> Dataset:
    """Load a folder described by ``dataset.yaml`` (format in the module docstring)."""
    folder = Path(folder)
    spec = _read_spec(folder / "dataset.yaml")
    inter_spec = spec.sections["interactions"]
    notes: list[str] = []
    # Every key of the section but its path names a column (_SECTIONS).
    inter = read_table(folder / str(inter_spec["path"]), {str(v) for k, v in inter_spec.items() if k != "path"})
    user_col, item_col = str(inter_spec["user"]), str(inter_spec["item"])
    for column in (user_col, item_col):
        inter.column(column)  # a missing id column is reported before any value error

    values: dict[str, np.ndarray] = {}
    if "rating" in inter_spec:
        values["rating"] = _ratings(inter, str(inter_spec["rating"]), "label" in inter_spec, notes)
    else:
        notes.append(NOTE_NO_RATING)
    if "timestamp" in inter_spec:
        values["timestamp"] = parse_timestamps(inter, str(inter_spec["timestamp"]))
    else:
        notes.append(NOTE_NO_TIMESTAMP)
    if "label" in inter_spec:
        values["label"] = _labels(inter, str(inter_spec["label"]), notes)

    users, users_file, attributes, user_text_columns = _users(folder, spec.sections.get("users"), user_col, notes)
    items, items_file, text_columns = _items(folder, spec.sections.get("items"), item_col, notes)
    ds = assemble(
        spec.name, inter, user_col, item_col, values, users, users_file, items, items_file,
        attributes, text_columns, notes, keep_unknown_ids=True,
    )  # fmt: skip
    # Several columns may each be encoded on their own (text.per_field): a long title
    # cannot then push a short category out of the encoder's window.
    ds.text_fields = text_columns if len(text_columns) > 1 else []
    ds.user_text_columns = user_text_columns
    return ds


def _ratings(inter: Table, column: str, has_label: bool, notes: list[str]) -> np.ndarray:
    """The rating column, where some interactions may have none (NaN): a log of views and
    clicks with the odd rating, or feedback events beside a run's ratings. An interaction
    without a rating is still history and a next-item target; rating learns from the rated
    ones, and so does ctr where no label column says what engaged. A column with no value at
    all is the wrong column."""
    ratings = parse_numbers(inter, column, "rating", missing_ok=True)
    unrated = int(np.isnan(ratings).sum())
    if unrated == len(ratings) and unrated:
        raise inter.error("no interaction has a rating: leave 'rating' out of dataset.yaml if the data has none", column=column)
    if unrated:
        learns = "rating learns" if has_label else "rating and ctr learn"
        notes.append(
            f"{unrated:,} of {len(ratings):,} interactions have no rating ({unrated / len(ratings):.0%}): they are "
            f"history and next-item targets; {learns} from the rated ones"
        )
    return ratings


def _labels(inter: Table, column: str, notes: list[str]) -> np.ndarray:
    """The label column, where some interactions may have none (NaN): organic views beside
    the impressions whose click was logged. ctr learns from the labelled ones; the label
    column decides engagement alone, so a rating does not stand in for a missing label."""
    labels = parse_labels(inter, column, missing_ok=True)
    unlabelled = int(np.isnan(labels).sum())
    if unlabelled == len(labels) and unlabelled:
        raise inter.error("no interaction has a label: leave 'label' out of dataset.yaml if the data has none", column=column)
    if unlabelled:
        notes.append(
            f"{unlabelled:,} of {len(labels):,} interactions have no label ({unlabelled / len(labels):.0%}): they are "
            "history and next-item targets; ctr learns from the labelled ones"
        )
    return labels


def _users(
    folder: Path, spec: dict[str, object] | None, default_id: str, notes: list[str]
) -> tuple[pd.DataFrame | None, str | None, list[str], list[str]]:
    """The users table (id, bucketized attributes and, with text columns, the composed
    ``text``), its file name, attribute names and text columns."""
    if spec is None:
        notes.append("no users file: task 'profile' is off")
        return None, None, [], []
    id_column, attributes = str(spec.get("id", default_id)), list(spec.get("attributes", []))
    text_columns = list(spec.get("text", []))
    yaml_file = str(folder / "dataset.yaml")
    both = [c for c in text_columns if c in attributes]
    if both:  # the model would read the very label the profile task is scored on
        message = f"column '{both[0]}' is both a user text and an attribute: an attribute is a profile target, so it cannot also be an input"
        raise DataError(yaml_file, message, None, "users.text")
    if "text" in attributes and text_columns:  # the composed text takes the column name "text"
        raise DataError(yaml_file, "an attribute named 'text' clashes with the users' composed text", None, "users.attributes")
    table = read_table(folder / str(spec["path"]), {id_column, *attributes, *text_columns})
    ids = unique_ids(table, id_column, "user id")
    raw = pd.DataFrame({a: table.strings(a) for a in attributes})
    columns, attribute_notes = prepare_attributes(raw, attributes)
    notes.extend(attribute_notes)
    for name in list(attributes):
        values = columns[name].dropna().unique()
        if len(values) < 2:  # nothing to tell users apart by, nor to score a prediction on
            shown = f"a single value, '{values[0]}'" if len(values) else "no value"
            notes.append(f"attribute '{name}' has {shown}: left out")
            attributes.remove(name)
            columns = columns.drop(columns=name)
    if not attributes:
        notes.append("users file has no attribute columns: task 'profile' is off")
    users = pd.concat([pd.DataFrame({"user_id": ids}), columns], axis=1)
    if text_columns:
        users["text"] = texts(pd.DataFrame({c: table.strings(c) for c in text_columns}), text_columns, item_text)
    return users, table.file, attributes, text_columns


def _items(
    folder: Path, spec: dict[str, object] | None, default_id: str, notes: list[str]
) -> tuple[pd.DataFrame | None, str | None, list[str]]:
    """The items table (id, text columns, text, optional item_type), its file and text columns."""
    if spec is None:
        return None, None, []
    id_column, text_columns = str(spec.get("id", default_id)), list(spec.get("text", []))
    wanted = {id_column, *text_columns, *([str(spec["type"])] if "type" in spec else [])}
    table = read_table(folder / str(spec["path"]), wanted)
    ids = unique_ids(table, id_column, "item id")
    items = pd.DataFrame({"item_id": ids})
    for c in text_columns:
        items[c] = table.strings(c)
    items["text"] = texts(items, text_columns, item_text)
    if "type" in spec:
        items["item_type"] = table.strings(str(spec["type"]))
    return items, table.file, text_columns
