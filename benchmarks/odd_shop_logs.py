"""Write small shop logs in shapes the bundled data never has, for bring-your-own-data checks:

- ``repeats-iso``: a third of the purchases repeated later (repeat buyers), ISO-8601 times;
- ``half-stars``: ratings on a 0.5–5 scale;
- ``ten-point``: ratings on a 2–10 scale (where a fixed ctr threshold of 4 takes 98 %);
- ``implicit-bare``: user and item ids alone (no ratings, times, items or users file);
- ``string-labels``: yes/no click labels in Parquet, no ratings, no users file;
- ``many-solo``: 500 users with a single purchase and no attributes beside 300 regular ones,
  times in milliseconds.

300 users and 400 items in five categories; 60 % of a user's purchases come from a favourite
category, rated about a star higher. Titles are 4 or 30 words of shared noise (one in seven
with accented letters, one missing); a user's segment follows the favourite category.

    python benchmarks/odd_shop_logs.py DIR
    polyrec run --data DIR/ten-point --seeds 0 --epochs 3 --out runs/ten-point   # each folder alike
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

CATEGORIES = ["kitchen", "garden", "toys", "books", "audio"]
NOISE = ["steel", "blue", "large", "pack", "of", "premium", "x", "2"]
INTERACTIONS = {"user": "user_id", "item": "item_id", "rating": "rating", "timestamp": "ts"}
ITEMS = {"id": "item_id", "text": ["title", "category"]}
USERS = {"id": "user_id", "attributes": ["segment", "age"]}


def shop(rng: np.random.Generator, n_users: int = 300, n_items: int = 400, n: int = 8000):
    """(interactions, items, users) of the common shop, in time order."""
    item_cat = rng.integers(0, len(CATEGORIES), n_items)
    favourite = rng.integers(0, len(CATEGORIES), n_users)
    users = rng.integers(0, n_users, n)
    own = rng.random(n) < 0.6
    items = np.array([rng.choice(np.flatnonzero(item_cat == favourite[u])) if o else rng.integers(n_items) for u, o in zip(users, own)])
    liked = item_cat[items] == favourite[users]
    rating = np.clip(np.round(3 + liked + rng.normal(0, 1, n)), 1, 5)
    inter = pd.DataFrame({
        "user_id": [f"user {u:03d}" for u in users], "item_id": [f"SKU-{i:05d}" for i in items],
        "rating": rating, "ts": 1_600_000_000 + 37 * np.arange(n) + rng.integers(0, 30, n),
    })  # fmt: skip
    titles = [" ".join(rng.choice(NOISE, 30 if i % 5 == 0 else 4)) for i in range(n_items)]
    items_table = pd.DataFrame({
        "item_id": [f"SKU-{i:05d}" for i in range(n_items)],
        "title": [("Ünïcode — " if i % 7 == 0 else "") + t for i, t in enumerate(titles)],
        "category": [CATEGORIES[c] for c in item_cat],
    })  # fmt: skip
    items_table.loc[3, "title"] = None
    users_table = pd.DataFrame({
        "user_id": [f"user {u:03d}" for u in range(n_users)],
        "segment": [["a", "b", "c"][f % 3] for f in favourite], "age": rng.integers(15, 70, n_users),
    })  # fmt: skip
    return inter, items_table, users_table


def write(folder: Path, inter: pd.DataFrame, interactions: dict, items=None, users=None, parquet: bool = False) -> None:
    """``dataset.yaml`` and the tables (``(frame, spec)`` pairs for items and users)."""
    folder.mkdir(parents=True, exist_ok=True)
    suffix = ".parquet" if parquet else ".csv"
    spec: dict[str, object] = {"name": folder.name}
    for section, frame, columns in (("interactions", inter, interactions), ("items", *(items or (None, None))), ("users", *(users or (None, None)))):
        if frame is None:
            continue
        path = folder / f"{section}{suffix}"
        frame.to_parquet(path, index=False) if parquet else frame.to_csv(path, index=False)
        spec[section] = {"path": path.name, **columns}
    (folder / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False, allow_unicode=True))


def main(out: Path) -> None:
    rng = np.random.default_rng(0)
    inter, items, users = shop(rng)
    both = {"items": (items, ITEMS), "users": (users, USERS)}
    again = inter.sample(3000, random_state=1).assign(ts=lambda d: d.ts + 500_000)
    repeats = pd.concat([inter, again]).assign(ts=lambda d: pd.to_datetime(d.ts, unit="s").dt.strftime("%Y-%m-%dT%H:%M:%SZ"))
    write(out / "repeats-iso", repeats, INTERACTIONS, **both)
    half = np.clip(inter.rating - 0.5 * rng.integers(0, 2, len(inter)), 0.5, 5)
    write(out / "half-stars", inter.assign(rating=half), INTERACTIONS, **both)
    write(out / "ten-point", inter.assign(rating=inter.rating * 2), INTERACTIONS, **both)
    write(out / "implicit-bare", inter[["user_id", "item_id"]], {"user": "user_id", "item": "item_id"})
    clicks = inter.assign(clicked=np.where(inter.rating >= 4, "yes", "no")).drop(columns="rating")
    label = {"user": "user_id", "item": "item_id", "timestamp": "ts", "label": "clicked"}
    write(out / "string-labels", clicks, label, items=(items, ITEMS), parquet=True)
    solo = pd.DataFrame({"user_id": [f"solo {k}" for k in range(500)], "item_id": inter.item_id.sample(500, random_state=2).to_numpy(), "rating": 4.0, "ts": 1_700_000_000})
    many = pd.concat([inter.head(3000), solo])
    write(out / "many-solo", many.assign(ts=many.ts * 1000), INTERACTIONS, items=(items, ITEMS),
          users=(pd.concat([users, solo[["user_id"]]]), USERS))  # fmt: skip
    print(f"wrote {', '.join(sorted(p.name for p in out.iterdir()))} under {out}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
