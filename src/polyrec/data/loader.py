"""One entry point for every data source: a built-in name or a folder whose format is detected."""

from __future__ import annotations

import os
from pathlib import Path

from .errors import DataError
from .generic import load_generic
from .movielens import load_ml100k, load_movielens_csv, load_movielens_dat
from .tables import Dataset

BUILTIN_DATASETS: tuple[str, ...] = ("ml-100k",)
_EXPECTED = (
    "expected dataset.yaml (generic CSV/Parquet folder), ratings.dat + movies.dat (MovieLens-1M/10M) "
    "or ratings.csv + movies.csv (MovieLens-20M/25M/latest)"
)


def load_dataset(dataset: str | None = None, data: str | os.PathLike[str] | None = None) -> Dataset:
    """Load a built-in dataset by name, or the folder ``data``; neither → ``"ml-100k"``.

    A folder with ``dataset.yaml`` is a generic folder (see ``generic.py``); one with
    ``ratings.dat`` and ``movies.dat`` is the MovieLens-1M format, one with ``ratings.csv``
    and ``movies.csv`` that of MovieLens-20M and later. A path to a
    ``dataset.yaml`` file itself is accepted too. Any other input raises ``DataError``.
    """
    if dataset is not None and data is not None:
        message = f"give either a built-in dataset ('{dataset}') or a data folder, not both"
        raise DataError(str(data), message)
    if data is None:
        name = dataset or BUILTIN_DATASETS[0]
        if name != "ml-100k":
            message = (
                f"unknown built-in dataset; built-in: {', '.join(BUILTIN_DATASETS)}. Other data "
                "loads from a folder with --data: a MovieLens release as it unzips (ML-1M, 10M, 20M, "
                "25M, latest), or a dataset.yaml folder (README, 'Bring your own data')"
            )
            raise DataError(name, message)
        return load_ml100k()

    folder = Path(data)
    if folder.is_file() and folder.name == "dataset.yaml":
        folder = folder.parent
    if not folder.is_dir():
        raise DataError(str(folder), f"data folder not found; {_EXPECTED}")
    if (folder / "dataset.yaml").is_file():
        return load_generic(folder)
    if (folder / "ratings.dat").is_file() and (folder / "movies.dat").is_file():
        return load_movielens_dat(folder)
    if (folder / "ratings.csv").is_file() and (folder / "movies.csv").is_file():
        return load_movielens_csv(folder)
    found = ", ".join(sorted(p.name for p in folder.iterdir())[:10]) or "nothing"
    raise DataError(str(folder), f"unrecognised data folder: {_EXPECTED}; found: {found}")
