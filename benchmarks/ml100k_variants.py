"""Write MovieLens-100K in other shapes polyrec must read, for end-to-end checks:

- ``<out>/ml100k-dat/``: the MovieLens-1M ``.dat`` format (``::``-separated, latin-1);
- ``<out>/ml100k-implicit/``: a generic folder with interactions only — no users file, no
  ratings, no timestamps (only ``next_item`` can train; protocol B uses file order);
- ``<out>/ml100k-half-rated/``: a generic folder with users, items and every interaction,
  half of the ratings (drawn at random, seed 0) left empty: a log of views beside ratings;
- ``<out>/ml100k-rated-half/``: the same folder with the rated half of the interactions
  alone: what such a log gave when a rating column could have no gaps.

    python benchmarks/ml100k_variants.py /tmp/variants
    polyrec run --data /tmp/variants/ml100k-dat --seeds 0 --out runs/dat
    polyrec run --data /tmp/variants/ml100k-implicit --seeds 0 --out runs/implicit
    polyrec run --data /tmp/variants/ml100k-half-rated --seeds 0 --out runs/half-rated
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from polyrec.data.loader import load_dataset

AGE_CODES = {"<18": 1, "18-24": 18, "25-34": 25, "35-44": 35, "45-49": 45, "50-55": 50, "56+": 56}


def main(out: Path) -> None:
    ds = load_dataset("ml-100k")
    inter = ds.interactions.sort_values("timestamp", kind="stable")
    uid = ds.users["user_id"].to_numpy()
    iid = ds.items["item_id"].to_numpy()

    dat = out / "ml100k-dat"
    dat.mkdir(parents=True, exist_ok=True)
    occupations = {o: k for k, o in enumerate(sorted(ds.users["occupation"].unique()))}
    with open(dat / "users.dat", "w", encoding="latin-1") as f:
        for row in ds.users.itertuples():
            f.write(f"{row.user_id}::{row.gender}::{AGE_CODES[row.age]}::{occupations[row.occupation]}::00000\n")
    with open(dat / "movies.dat", "w", encoding="latin-1") as f:
        for row in ds.items.itertuples():
            # "Title (1995). Genres: A, B." → "Title (1995)" and "A|B"
            title, _, genres = row.text.partition(". Genres: ")
            genres = genres.rstrip(".").replace(", ", "|") or "unknown"
            f.write(f"{row.item_id}::{title}::{genres}\n".encode("latin-1", "replace").decode("latin-1"))
    with open(dat / "ratings.dat", "w", encoding="latin-1") as f:
        for u, i, r, t in inter[["user", "item", "rating", "timestamp"]].itertuples(index=False):
            f.write(f"{uid[u]}::{iid[i]}::{int(r)}::{int(t)}\n")

    implicit = out / "ml100k-implicit"
    implicit.mkdir(parents=True, exist_ok=True)
    frame = inter.assign(user_id=uid[inter["user"]], item_id=iid[inter["item"]])[["user_id", "item_id"]]
    frame.to_csv(implicit / "interactions.csv", index=False)
    (implicit / "dataset.yaml").write_text(
        "name: ml100k-implicit\ninteractions: {path: interactions.csv, user: user_id, item: item_id}\n"
    )
    half = inter.assign(user_id=uid[inter["user"]], item_id=iid[inter["item"]])
    half = half[["user_id", "item_id", "rating", "timestamp"]].astype({"rating": "Int64", "timestamp": "int64"})
    half["rating"] = half["rating"].mask(np.random.default_rng(0).random(len(half)) < 0.5)
    for name, frame in (("ml100k-half-rated", half), ("ml100k-rated-half", half[half["rating"].notna()])):
        _write_generic(out / name, name, frame, ds.items, ds.users)
    print(f"wrote {dat}, {implicit}, {out / 'ml100k-half-rated'} and {out / 'ml100k-rated-half'}")


def _write_generic(folder: Path, name: str, inter: pd.DataFrame, items: pd.DataFrame, users: pd.DataFrame) -> None:
    """A generic folder: the interactions given, and MovieLens-100K's items (their text) and users."""
    folder.mkdir(parents=True, exist_ok=True)
    inter.to_csv(folder / "interactions.csv", index=False)
    items[["item_id", "text"]].to_csv(folder / "items.csv", index=False)
    users[["user_id", "gender", "age", "occupation"]].to_csv(folder / "users.csv", index=False)
    (folder / "dataset.yaml").write_text(
        f"name: {name}\n"
        "interactions: {path: interactions.csv, user: user_id, item: item_id, rating: rating, timestamp: timestamp}\n"
        "items: {path: items.csv, id: item_id, text: [text]}\n"
        "users: {path: users.csv, id: user_id, attributes: [gender, age, occupation]}\n"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1] if len(sys.argv) > 1 else "runs/variants"))
