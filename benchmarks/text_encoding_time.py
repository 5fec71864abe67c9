"""How long the sentence encoder takes over a catalogue of long product texts, by `text.max_tokens`.

    python benchmarks/text_encoding_time.py [--encoders all-MiniLM-L6-v2,all-mpnet-base-v2] [--max-tokens none,128,64]

The catalogue: 1,100 synthetic products, each a title of 20–120 random words (30 without one),
a category path and a brand, turned into text as a `dataset.yaml` folder's items are
(`title: …. category: …. brand: …`). Each (encoder, max_tokens) pair encodes it once into a
fresh, empty cache and prints the seconds; the README's figures under "Configuration" come from
this script (two cores).
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np

from polyrec.data.generic import item_text
from polyrec.text import MINILM, encode_texts

CATEGORIES = ["Electronics > Audio > Headphones", "Home & Kitchen > Cookware", "Books > Fiction", "Toys",
              "Beauty > Skin care", "Sports > Outdoor > Camping"]  # fmt: skip
COLUMNS = ["title", "category", "brand"]


def product_texts(n_items: int = 1100, seed: int = 7) -> list[str]:
    rng = np.random.default_rng(seed)
    words = [f"w{i}" for i in range(3000)]
    titles = [" ".join(rng.choice(words, rng.integers(20, 120))) for _ in range(n_items)]
    categories = rng.choice(CATEGORIES, n_items)
    brands = rng.choice(["Acme", "Globex", None, "Initech"], n_items)
    for i in rng.choice(n_items, 30, replace=False):
        titles[i] = None
    rows = zip(titles, categories, brands)
    return [item_text({"title": t, "category": c, "brand": b}, COLUMNS) for t, c, b in rows]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--encoders", default=MINILM, help="comma-separated (all-mpnet-base-v2 needs the teacher extra)")
    ap.add_argument("--max-tokens", default="none,128,64", help="comma-separated; none = the encoder's own limit")
    args = ap.parse_args()
    texts = product_texts()
    for encoder in args.encoders.split(","):
        for value in args.max_tokens.split(","):
            max_tokens = None if value == "none" else int(value)
            with tempfile.TemporaryDirectory() as cache:
                start = time.perf_counter()
                encode_texts(texts, encoder, cache_dir=cache, progress=False, max_tokens=max_tokens)
                seconds = time.perf_counter() - start
            print(f"{encoder}, max_tokens {value}: {seconds:.1f} s for {len(texts)} items", flush=True)


if __name__ == "__main__":
    main()
