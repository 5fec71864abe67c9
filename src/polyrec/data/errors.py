"""The one error type that bad input raises."""

from __future__ import annotations


class DataError(ValueError):
    """Bad input data, described in one line naming the file, row and column.

    The CLI prints ``str(error)`` without a traceback and exits non-zero, so the
    message must stand alone: ``"<file>: row <n>, column '<col>': <what is wrong>"``.
    """

    def __init__(self, file: str, message: str, row: int | None = None, column: str | None = None):
        self.file = str(file)
        self.row = row
        self.column = column
        where = [self.file]
        if row is not None:
            where.append(f"row {row}")
        if column is not None:
            where.append(f"column '{column}'")
        super().__init__(f"{', '.join(where)}: {message}")
