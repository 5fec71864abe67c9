"""Write three synthetic shops in the generic folder format, to try item text with several
columns and users described by text.

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
- ``shop-user-bios``: the category titles with 6,000 interactions (about 4 a user, where a
  history says little), and a ``bio`` text column in the users file: "Shops for <favourite
  category>." for 80 % of its users, another category for the rest. Compare
  ``text: {users: false}`` (C) with the default, which reads the bios (README, "Bring your
  own data").

Items' text columns: title, category, brand (README, "Bring your own data").

``python benchmarks/synthetic_shop.py DIR --large`` writes ``shop-large`` alone: the
category-titles shop at the size of an Amazon review category (15,000 users, 12,000 items,
about 200,000 interactions), to time ``polyrec run`` on a larger catalogue
(docs/results/scale.md). ``--huge`` writes ``shop-huge``: 40,000 users, 100,000 items, about
600,000 interactions, to time training steps with and without a sampled softmax
(``train.sampled_negatives``; its text is for ``text: {enabled: false}`` runs, as encoding
100,000 items takes long on two cores).
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


def write_shop(
    out: Path, category_titles: bool, n_events: int = N_EVENTS, user_bios: bool = False,
    n_users: int = N_USERS, n_items: int = N_ITEMS,
) -> None:
    rng = np.random.default_rng(0)
    out.mkdir(parents=True, exist_ok=True)
    item_cat = rng.integers(0, len(CATEGORIES), n_items)
    if category_titles:
        titles = [
            " ".join(np.where(rng.random(25) < 0.7, rng.choice(OWN[item_cat[i]], 25), rng.choice(GENERIC, 25)))
            + f" model {i}"
            for i in range(n_items)
        ]
    else:
        titles = [" ".join(rng.choice(SHARED, 25)) + f" model {i}" for i in range(n_items)]
    items = pd.DataFrame({
        "sku": [f"S{i}" for i in range(n_items)], "title": titles, "category": [CATEGORIES[c] for c in item_cat],
        "brand": rng.choice(["Acme", "Globex", "Initech", ""], n_items),
    })  # fmt: skip
    items.to_csv(out / "items.csv", index=False)
    taste = rng.integers(0, len(CATEGORIES), n_users)
    users = rng.integers(0, n_users, n_events)
    favourite = rng.random(n_events) < 0.6
    chosen = np.where(favourite, 0, rng.integers(0, n_items, n_events))
    for k in np.flatnonzero(favourite):
        chosen[k] = rng.choice(np.flatnonzero(item_cat == taste[users[k]]))
    clicked = (rng.random(n_events) < np.where(item_cat[chosen] == taste[users], 0.5, 0.15)).astype(int)
    ts = 1_600_000_000 + rng.integers(0, 10_000_000, n_events)
    events = pd.DataFrame({"customer": [f"C{u}" for u in users], "sku": [f"S{i}" for i in chosen], "clicked": clicked, "ts": ts})
    events.drop_duplicates(["customer", "sku"]).to_csv(out / "interactions.csv", index=False)
    known = np.unique(users)[: int(0.6 * len(np.unique(users)))]
    segment = np.array(["a", "b"])[taste[known] % 2]
    segment = np.where(rng.random(len(known)) < 0.1, "", segment)
    users_file = pd.DataFrame({"customer": [f"C{u}" for u in known], "segment": segment})
    user_spec: dict[str, object] = {"path": "users.csv", "id": "customer", "attributes": ["segment"]}
    if user_bios:  # drawn after everything else, so the other shops stay as they were
        told = np.where(rng.random(len(known)) < 0.8, taste[known], rng.integers(0, len(CATEGORIES), len(known)))
        users_file["bio"] = [f"Shops for {CATEGORIES[c].split(' > ')[1].lower()}." for c in told]
        user_spec["text"] = ["bio"]
    users_file.to_csv(out / "users.csv", index=False)
    spec = {
        "name": out.name,
        "interactions": {"path": "interactions.csv", "user": "customer", "item": "sku", "timestamp": "ts", "label": "clicked"},
        "items": {"path": "items.csv", "id": "sku", "text": ["title", "category", "brand"]},
        "users": user_spec,
    }
    (out / "dataset.yaml").write_text(yaml.safe_dump(spec, sort_keys=False))


SIZES = {  # option → (folder, users, items, interactions)
    "--large": ("shop-large", 15_000, 12_000, 200_000),
    "--huge": ("shop-huge", 40_000, 100_000, 600_000),
}


def main(out: Path, size: str | None = None) -> None:
    if size is not None:
        name, users, items, events = SIZES[size]
        write_shop(out / name, category_titles=True, n_events=events, n_users=users, n_items=items)
        print(f"wrote {out / name}")
        return
    write_shop(out / "shop-noisy-titles", category_titles=False)
    write_shop(out / "shop-category-titles", category_titles=True)
    write_shop(out / "shop-user-bios", category_titles=True, n_events=6000, user_bios=True)
    print(f"wrote {out / 'shop-noisy-titles'}, {out / 'shop-category-titles'} and {out / 'shop-user-bios'}")


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3) or not set(sys.argv[2:]) <= set(SIZES):
        sys.exit(__doc__)
    main(Path(sys.argv[1]), *sys.argv[2:])
