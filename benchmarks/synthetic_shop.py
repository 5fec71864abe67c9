"""Write two synthetic shops in the generic folder format, to try item text with several columns.

    python benchmarks/synthetic_shop.py DIR
    polyrec run --data DIR/shop-noisy-titles --protocols A --seeds 0 --epochs 20 --out runs/shop-apart
    polyrec run --data DIR/shop-noisy-titles --protocols A --seeds 0 --epochs 20 --config C --out runs/shop-joined
    python benchmarks/compare_valid.py runs/shop-joined runs/shop-apart

(C sets ``text: {per_field: false}``.) Both shops: 1,500 users, 2,500 items in six
categories, about 40,000 interactions with a click label and a timestamp, no rating. A user
has a favourite category: 60 % of their interactions are with its items, the rest uniform
over the catalogue, and an item of the favourite category is clicked with probability 0.50,
any other with 0.15. The users file covers 60 % of the users, with one attribute (their
favourite's parity, 10 % of it missing).

- ``shop-noisy-titles``: a title is 25 words drawn from one vocabulary shared by all
  categories, so only the ``category`` column tells them apart;
- ``shop-category-titles``: 70 % of a title's words come from its category's own vocabulary.

Items' text columns: title, category, brand (README, "Bring your own data").
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import yaml

N_USERS, N_ITEMS, N_EVENTS = 1500, 2500, 40000
CATEGORIES = ["Home > Kitchen", "Electronics > Audio", "Clothing > Men", "Toys > Kids", "Office > Furniture", "Sports > Outdoor"]
SHARED = (
    "stainless steel kettle wireless bluetooth headphones organic cotton shirt kids toy ergonomic office chair "
    "led lamp waterproof hiking boots ceramic mug set phone case usb charger cable yoga mat"
).split()
OWN = [
    "stainless steel kettle electric cordless 1.7L boil dry protection teapot mug ceramic pan nonstick skillet".split(),
    "wireless bluetooth headphones over-ear noise cancelling earbuds speaker bass stereo microphone".split(),
    "men cotton shirt slim fit long sleeve casual button down oxford polo jacket".split(),
    "kids toy building blocks educational puzzle plush doll race car for ages 3+".split(),
    "ergonomic office chair mesh lumbar support adjustable desk standing monitor stand".split(),
    "waterproof hiking boots trail running shoes backpack tent camping outdoor lightweight".split(),
]
GENERIC = "premium quality best gift new 2024 edition pack set large small black white blue".split()


def write_shop(out: Path, category_titles: bool) -> None:
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    item_cat = rng.integers(0, len(CATEGORIES), N_ITEMS)
    if category_titles:
        titles = [
            " ".join(np.where(rng.random(25) < 0.7, rng.choice(OWN[item_cat[i]], 25), rng.choice(GENERIC, 25)))
            + f" model {i}"
            for i in range(N_ITEMS)
        ]
    else:
        titles = [" ".join(rng.choice(SHARED, 25)) + f" model {i}" for i in range(N_ITEMS)]
    items = pd.DataFrame({
        "sku": [f"S{i}" for i in range(N_ITEMS)], "title": titles, "category": [CATEGORIES[c] for c in item_cat],
        "brand": rng.choice(["Acme", "Globex", "Initech", ""], N_ITEMS),
    })  # fmt: skip
    items.to_csv(out / "items.csv", index=False)
    taste = rng.integers(0, len(CATEGORIES), N_USERS)
    users = rng.integers(0, N_USERS, N_EVENTS)
    favourite = rng.random(N_EVENTS) < 0.6
    chosen = np.where(favourite, 0, rng.integers(0, N_ITEMS, N_EVENTS))
    for k in np.flatnonzero(favourite):
        chosen[k] = rng.choice(np.flatnonzero(item_cat == taste[users[k]]))
    clicked = (rng.random(N_EVENTS) < np.where(item_cat[chosen] == taste[users], 0.5, 0.15)).astype(int)
    ts = 1_600_000_000 + rng.integers(0, 10_000_000, N_EVENTS)
    events = pd.DataFrame({"customer": [f"C{u}" for u in users], "sku": [f"S{i}" for i in chosen], "clicked": clicked, "ts": ts})
    events.drop_duplicates(["customer", "sku"]).to_csv(out / "interactions.csv", index=False)
    known = np.unique(users)[: int(0.6 * len(np.unique(users)))]
    segment = np.array(["a", "b"])[taste[known] % 2]
    segment = np.where(rng.random(len(known)) < 0.1, "", segment)
    pd.DataFrame({"customer": [f"C{u}" for u in known], "segment": segment}).to_csv(out / "users.csv", index=False)
    spec = {
        "name": out.name,
        "interactions": {"path": "interactions.csv", "user": "customer", "item": "sku", "timestamp": "ts", "label": "clicked"},
        "items": {"path": "items.csv", "id": "sku", "text": ["title", "category", "brand"]},
        "users": {"path": "users.csv", "id": "customer", "attributes": ["segment"]},
    }
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


def main(out: Path) -> None:
    write_shop(out / "shop-noisy-titles", category_titles=False)
    write_shop(out / "shop-category-titles", category_titles=True)
    print(f"wrote {out / 'shop-noisy-titles'} and {out / 'shop-category-titles'}")


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit(__doc__)
    main(Path(sys.argv[1]))
