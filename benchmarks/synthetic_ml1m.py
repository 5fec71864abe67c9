"""Write a synthetic data set with MovieLens-1M's shape in its ``.dat`` format, to measure
how polyrec's defaults scale to data ten times the bundled one (time per epoch, memory).

6,040 users, 3,706 items, about a million ratings: history lengths log-normal around
MovieLens-1M's median of 96 (at least 20 each), item popularity long-tailed, ratings 1–5
from latent factors plus biases and noise, gender tied to one factor, timestamps increasing
within each user. The figures it supports are cost figures; its quality figures say only
that the model learns what the generator planted.

    python benchmarks/synthetic_ml1m.py /tmp/ml1m-synthetic
    polyrec run --data /tmp/ml1m-synthetic --seeds 0 --out runs/ml1m-synthetic
"""

from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
from ml100k_variants import AGE_CODES  # MovieLens-1M's age codes (a sibling script)

GENRES = ["Action", "Adventure", "Animation", "Children's", "Comedy", "Crime", "Documentary", "Drama",
          "Fantasy", "Film-Noir", "Horror", "Musical", "Mystery", "Romance", "Sci-Fi", "Thriller", "War",
          "Western"]
WORDS = ["night", "river", "last", "city", "dream", "war", "love", "return", "shadow", "king", "blue",
         "house", "secret", "summer", "road", "star", "dark", "heart", "game", "island"]


def write(out: Path, users: int = 6040, items: int = 3706, seed: int = 0) -> int:
    rng = np.random.default_rng(seed)
    out.mkdir(parents=True, exist_ok=True)
    k = 8
    user_f = rng.normal(size=(users, k))
    item_f = rng.normal(size=(items, k)) * 0.5
    user_bias = rng.normal(scale=0.4, size=users)
    item_bias = rng.normal(scale=0.5, size=items)
    popularity = 1.0 / (np.arange(items) + 20.0) ** 1.1
    rng.shuffle(popularity)
    lengths = np.clip(rng.lognormal(np.log(96), 1.0, size=users), 20, 2300).astype(int)

    genre_of = rng.integers(0, len(GENRES), size=(items, 2))
    with open(out / "movies.dat", "w", encoding="latin-1") as f:
        for i in range(items):
            title = " ".join(rng.choice(WORDS, size=rng.integers(1, 4))).title()
            genres = "|".join(sorted({GENRES[g] for g in genre_of[i]}))
            f.write(f"{i + 1}::{title} {i + 1} ({1930 + i % 70})::{genres}\n")
    with open(out / "users.dat", "w", encoding="latin-1") as f:
        for u in range(users):
            gender = "F" if user_f[u, 0] + rng.normal(scale=1.0) > 0.8 else "M"
            f.write(f"{u + 1}::{gender}::{rng.choice(list(AGE_CODES.values()))}::{rng.integers(0, 21)}::00000\n")
    n = 0
    with open(out / "ratings.dat", "w", encoding="latin-1") as f:
        for u in range(users):
            # Users lean to items that suit them: popularity tilted by the latent fit.
            p = popularity * np.exp(0.5 * item_f @ user_f[u])
            chosen = rng.choice(items, size=min(lengths[u], items), replace=False, p=p / p.sum())
            score = 3.2 + user_bias[u] + item_bias[chosen] + item_f[chosen] @ user_f[u] + rng.normal(scale=0.6, size=len(chosen))
            ratings = np.clip(np.rint(score), 1, 5).astype(int)
            times = 956_703_932 + np.sort(rng.integers(0, 3e7, size=len(chosen)))
            f.writelines(f"{u + 1}::{i + 1}::{r}::{t}\n" for i, r, t in zip(chosen, ratings, times))
            n += len(chosen)
    return n


if __name__ == "__main__":
    target = Path(sys.argv[1] if len(sys.argv) > 1 else "runs/ml1m-synthetic")
    print(f"wrote {write(target):,} ratings to {target}")
