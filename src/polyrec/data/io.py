"""Reading delimited text and Parquet tables, and parsing their values, for every loader.

Row numbers in errors are what a user sees in a text editor: the line number in the file
where the record starts. A file with a header has the header on row 1, so its first data
row is row 2; the headerless MovieLens ``.dat`` files start their data on row 1. Parquet has
no lines; its rows are numbered as in the same table written to CSV (header = row 1). In a
folder of Parquet shards, a row is numbered within its own shard, and the error names it.
"""

from __future__ import annotations

import csv
import io
import os
import warnings
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow.parquet as pq

from .errors import DataError

_LABELS = {"0": 0.0, "1": 1.0, "0.0": 0.0, "1.0": 1.0, "false": 0.0, "true": 1.0, "no": 0.0, "yes": 1.0}


# ---------------------------------------------------------------- reading tables


@dataclass
class Table:
    """One file read as a DataFrame, plus the row number a user sees for each record.

    Text files hold every column as str ("" where empty); Parquet keeps its own dtypes.
    Row numbers are computed only when an error needs one (a second pass over the text).
    """

    file: str
    frame: pd.DataFrame
    header_row: int | None
    _row_numbers: Callable[[], np.ndarray]
    _rows: np.ndarray | None = field(default=None, repr=False)
    # A folder of Parquet shards: each shard's file and number of records, in reading order;
    # a record's row is then counted within its own shard.
    shards: tuple[tuple[str, int], ...] = ()
    # Every column the file has, where only some were read (Parquet read by column).
    available: list[str] | None = None

    def row(self, pos: int) -> int:
        """File row (see module docstring) of the record at position ``pos``."""
        if self._rows is None:
            self._rows = self._row_numbers()
        if pos < len(self._rows):
            return int(self._rows[pos])
        # Only if a pathological file made the two parsers disagree on the record count.
        return pos + (self.header_row or 0) + 1

    def locate(self, pos: int) -> tuple[str, int]:
        """(file, row) of the record at position ``pos``: its shard's file in a folder of shards."""
        if not self.shards:
            return self.file, self.row(pos)
        ends = np.cumsum([n for _, n in self.shards])
        return self.shards[int(np.searchsorted(ends, pos, side="right"))][0], self.row(pos)

    def place(self, pos: int) -> str:
        """Where the record at ``pos`` is, for a message: "row 7", or "<shard>, row 7"."""
        file, row = self.locate(pos)
        return f"{file}, row {row}" if self.shards else f"row {row}"

    def error(self, message: str, pos: int | None = None, column: str | None = None) -> DataError:
        if pos is None:
            return DataError(self.file, message, column=column)
        file, row = self.locate(pos)
        return DataError(file, message, row=row, column=column)

    def column(self, name: str) -> pd.Series:
        """The column ``name``; a missing one is an error that lists the available columns."""
        if name not in self.frame.columns:
            available = ", ".join(map(str, self.available or self.frame.columns))
            message = f"column not found; available columns: {available}"
            raise DataError(self.file, message, self.header_row, name)
        return self.frame[name]

    def strings(self, name: str) -> pd.Series:
        """Column ``name`` as stripped str (object dtype), ``pd.NA`` where empty."""
        col = self.column(name)
        if pd.api.types.is_float_dtype(col):
            # Parquet float ids (ints upcast by a missing value): 7.0 must read "7", as in a CSV.
            values = [pd.NA if pd.isna(v) else f"{v:.0f}" if v.is_integer() else str(v) for v in col]
            return pd.Series(values, index=col.index, dtype=object, name=name)
        text = col.astype(object).where(col.notna(), "").astype(str).str.strip().astype(object)
        return text.where(text != "", pd.NA)

    def required_strings(self, name: str, what: str) -> pd.Series:
        """Like ``strings``, but a missing value is an error naming its row."""
        values = self.strings(name)
        missing = np.flatnonzero(values.isna().to_numpy())
        if len(missing):
            raise self.error(f"missing {what}", int(missing[0]), name)
        return values


def read_table(path: str | os.PathLike[str], columns: Collection[str] | None = None) -> Table:
    """Read a ``.csv``/``.tsv`` (UTF-8) or ``.parquet`` file, or a folder of ``.parquet``
    shards (:func:`read_parquet_folder`), into a ``Table``. ``columns``: the only ones the
    caller reads; Parquet, stored by column, then leaves the others on disk (an export's many
    unused columns cost no memory), while a text file is read whole."""
    path = Path(path)
    if path.is_dir():
        return read_parquet_folder(path, columns)
    suffix = path.suffix.lower()
    if suffix not in (".csv", ".tsv", ".parquet"):
        raise DataError(str(path), f"unsupported file type '{suffix}': use .csv, .tsv or .parquet")
    if not path.is_file():
        raise DataError(str(path), "file not found")
    if suffix == ".parquet":
        return _read_parquet(path, columns)
    sep = "\t" if suffix == ".tsv" else ","
    return read_text_table(str(path), decode(path, "utf-8", sep), sep=sep)


def decode(path: Path, encoding: str, sep: str | None = None) -> str:
    """The file's text; a decoding error names the row (and, given the field separator
    ``sep`` of a file with a header, the column) of the first bad byte."""
    raw = path.read_bytes()
    try:
        # utf-8-sig: drop the byte-order mark that spreadsheet exports put first.
        return raw.decode("utf-8-sig" if encoding == "utf-8" else encoding)
    except UnicodeDecodeError as e:
        line_start = raw.rfind(b"\n", 0, e.start) + 1
        row = raw.count(b"\n", 0, e.start) + 1
        column = None
        if sep is not None and row > 1:  # which header field the bad byte falls under
            first_line = raw.split(b"\n", 1)[0].decode(encoding, "replace").rstrip("\r")
            header = next(csv.reader([first_line], delimiter=sep))
            before = raw[line_start : e.start].decode(encoding, "replace")
            index = len(next(csv.reader([before], delimiter=sep), [""])) - 1
            column = header[index] if 0 <= index < len(header) else None
        message = f"byte 0x{raw[e.start]:02x} is not valid {encoding}: save the file as {encoding}"
        raise DataError(str(path), message, row, column) from None


def read_text_table(
    file: str,
    text: str,
    *,
    sep: str,
    quoting: int = csv.QUOTE_MINIMAL,
    names: Sequence[str] | None = None,
) -> Table:
    """Parse delimited ``text`` (header on the first line unless ``names`` are given)."""
    if not text.strip():
        raise DataError(file, "the file is empty", row=1)
    has_header = names is None

    def row_numbers() -> np.ndarray:
        # Same record boundaries as pandas (quoted newlines, blank lines skipped).
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
        starts, end = [], 0
        for record in reader:
            if _is_record(record):
                starts.append(end + 1)
            end = reader.line_num
        return np.asarray(starts[1:] if has_header else starts, dtype=np.int64)

    try:
        with warnings.catch_warnings():
            # pandas only warns when every row is longer than the header; make that an error.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.StringIO(text), sep=sep, quoting=quoting, dtype=str, na_filter=False,
                index_col=False, header=0 if has_header else None,
                names=None if has_header else list(names),
            )  # fmt: skip
    except (pd.errors.ParserError, pd.errors.ParserWarning) as e:
        raise _ragged_row_error(file, text, sep, quoting, has_header, names, e) from None
    if has_header:
        header = next(csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting))
        seen: set[str] = set()
        for name in (h.strip() for h in header):
            if name in seen:
                raise DataError(file, "column name appears twice in the header", row=1, column=name)
            seen.add(name)
        frame.columns = [str(c).strip() for c in frame.columns]
    if frame.empty:
        raise DataError(file, "no data rows: the file has only a header", row=2 if has_header else 1)
    return Table(file, frame, 1 if has_header else None, row_numbers)


def _ragged_row_error(
    file: str,
    text: str,
    sep: str,
    quoting: int,
    has_header: bool,
    names: Sequence[str] | None,
    cause: Exception,
) -> DataError:
    """Find the first record longer than the header (pandas names a record, not a line)."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=sep, quoting=quoting)
    width, start, end = (None if has_header else len(names)), None, 0
    for record in reader:
        if _is_record(record):
            start = end + 1
            if width is None:
                width = len(record)
            elif len(record) > width:
                return DataError(file, f"{len(record)} fields, but the header has {width}", row=start)
        end = reader.line_num
    if "EOF inside string" in str(cause):
        return DataError(file, "a quoted field is never closed (unbalanced '\"')", row=start)
    return DataError(file, f"cannot parse the file: {cause}")


def _is_record(record: list[str]) -> bool:
    """Whether pandas counts this csv record: it skips blank and whitespace-only lines."""
    return bool(record) and not (len(record) == 1 and not record[0].strip())


def _parquet_frame(path: Path, columns: Collection[str] | None) -> tuple[pd.DataFrame, list[str]]:
    """The file's records (only ``columns``, where given) and every column it has."""
    try:
        names = [n for n in pq.read_schema(path).names if not n.startswith("__index_level_")]
        keep = None if columns is None else [n for n in names if n.strip() in columns]
        frame = pd.read_parquet(path, columns=keep)
    except Exception as e:  # pyarrow raises many types for corrupt files
        raise DataError(str(path), f"cannot read Parquet file: {e}") from None
    frame.columns = [str(c).strip() for c in frame.columns]
    return frame.reset_index(drop=True), [n.strip() for n in names]


def _read_parquet(path: Path, columns: Collection[str] | None = None) -> Table:
    frame, names = _parquet_frame(path, columns)
    if frame.empty:
        raise DataError(str(path), "no data rows: the table is empty", row=2)
    return Table(str(path), frame, 1, lambda: np.arange(len(frame), dtype=np.int64) + 2, available=names)


def read_parquet_folder(folder: Path, columns: Collection[str] | None = None) -> Table:
    """Every ``.parquet`` file under ``folder`` (the part files a Spark, Hive or BigQuery export
    writes), in sorted path order, as one table. Subfolders named ``key=value`` (Hive
    partitions) give their files a column ``key`` holding ``value``, as Spark reads them back.
    Every shard must have the same columns; an error names the shard and its row."""
    files = sorted(p for p in folder.rglob("*.parquet") if p.is_file())
    if not files:
        raise DataError(str(folder), "a folder given as a table must hold .parquet files; it holds none")
    frames: list[pd.DataFrame] = []
    first: list[str] = []  # the first shard's columns, partition keys included
    for file in files:
        frame, names = _parquet_frame(file, columns)
        for part in file.relative_to(folder).parent.parts:
            key, sep, value = part.partition("=")
            if sep and key not in names:
                names.append(key)
                if columns is None or key in columns:
                    frame[key] = value
        if frames and set(names) != set(first):
            raise DataError(str(file), f"its columns ({', '.join(names)}) differ from {files[0]}'s ({', '.join(first)})")
        first = first or names
        frames.append(frame[list(frames[0].columns)] if frames else frame)
    frame = pd.concat(frames, ignore_index=True)
    if frame.empty:
        raise DataError(str(folder), "no data rows: every shard is empty")
    shards = tuple((str(f), len(x)) for f, x in zip(files, frames))
    return Table(
        str(folder), frame, 1, lambda: np.concatenate([np.arange(n, dtype=np.int64) + 2 for _, n in shards]),
        shards=shards, available=first,
    )  # fmt: skip


# ---------------------------------------------------------------- parsing values


def parse_numbers(table: Table, column: str, what: str, missing_ok: bool = False) -> np.ndarray:
    """Column as float64; a non-numeric value is an error naming its row, and so is a missing
    one unless ``missing_ok`` (then NaN)."""
    col = table.column(column)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        values = col.to_numpy(dtype=np.float64, na_value=np.nan)
    else:
        numbers = pd.to_numeric(table.strings(column), errors="coerce")
        values = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(values)
    if missing_ok:
        bad &= table.strings(column).notna().to_numpy()
    _raise_first_bad(table, column, bad, what, "expected a number")
    return values


def parse_timestamps(table: Table, column: str) -> np.ndarray:
    """Numbers as given (any monotone unit), or ISO 8601 date-times as seconds since 1970 UTC.

    The first value decides which of the two the column holds; naive date-times are UTC.
    """
    col = table.column(column)
    if pd.api.types.is_numeric_dtype(col) and not pd.api.types.is_bool_dtype(col):
        return parse_numbers(table, column, "timestamp")
    if pd.api.types.is_datetime64_any_dtype(col):
        times = pd.to_datetime(col, utc=True)
    else:
        text = table.strings(column)
        numbers = pd.to_numeric(text, errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
        present = np.flatnonzero(text.notna().to_numpy())
        first = int(present[0]) if len(present) else 0
        if np.isfinite(numbers[first]):
            _raise_first_bad(table, column, ~np.isfinite(numbers), "timestamp", "expected a number")
            return numbers
        times = pd.to_datetime(text, format="ISO8601", utc=True, errors="coerce")
        _raise_first_bad(
            table, column, times.isna().to_numpy(), "timestamp",
            "expected an ISO 8601 date-time such as 2021-03-04 or 2021-03-04T10:15:00Z "
            "(the first value is one)",
        )  # fmt: skip
    seconds = (times - pd.Timestamp(0, tz="UTC")) / pd.Timedelta(seconds=1)
    values = np.asarray(seconds, dtype=np.float64)
    _raise_first_bad(table, column, np.isnan(values), "timestamp", "expected a date-time")
    return values


def parse_labels(table: Table, column: str, missing_ok: bool = False) -> np.ndarray:
    """0/1, true/false or yes/no (any case) as float64 0.0/1.0; a missing value is an error
    naming its row unless ``missing_ok`` (then NaN)."""
    col = table.column(column)
    if pd.api.types.is_bool_dtype(col) and not col.isna().any():
        return col.to_numpy(dtype=np.float64)
    strings = table.strings(column)
    values = strings.str.lower().map(_LABELS).to_numpy(dtype=np.float64, na_value=np.nan)
    bad = np.isnan(values)
    if missing_ok:
        bad &= strings.notna().to_numpy()
    _raise_first_bad(table, column, bad, "label", "expected 0/1, true/false or yes/no")
    return values


def _raise_first_bad(table: Table, column: str, bad: np.ndarray, what: str, expected: str) -> None:
    positions = np.flatnonzero(bad)
    if len(positions):
        pos = int(positions[0])
        value = table.frame[column].iloc[pos]
        if pd.isna(value) or not str(value).strip():
            raise table.error(f"missing {what}: {expected}", pos, column)
        raise table.error(f"cannot read {what} {str(value).strip()!r}: {expected}", pos, column)
