"""Time one training step of an autoencoder fit: the hand-written backward the fits use
(``TrainingDeviation``) against autograd's backward of the plain reference
(``ItemAutoencoder._deviation``), on random ratings of a given shape, one thread.

    python benchmarks/autoencoder_step.py                          # MovieLens-100K's shape
    python benchmarks/autoencoder_step.py 6040 3706 742000         # MovieLens-1M's training side

Prints milliseconds per step (a batch of 4,096 ratings, width 500, the fit's loss and Adam
step), best of three rounds of 15 steps each, for both.
"""

from __future__ import annotations

import sys
import time

import numpy as np
import torch

from polyrec.models.item_autoencoder import ItemAutoencoder
from polyrec.train.item_autoencoder_fit import BATCH


def main(n_users: int = 943, n_items: int = 1682, n_ratings: int = 80_000, width: int = 500) -> None:
    torch.set_num_threads(1)
    rng = np.random.default_rng(0)
    pairs = np.unique(rng.integers(0, n_users, n_ratings) * n_items + rng.integers(0, n_items, n_ratings))
    users, items = pairs // n_items, pairs % n_items
    ratings = rng.integers(1, 6, len(pairs)).astype(np.float64)
    ae = ItemAutoencoder(n_users, n_items, width, len(pairs))
    ae.set_ratings(users, items, ratings)
    opt = torch.optim.Adam(ae.parameters(), lr=1e-3)
    u, i, r = (torch.from_numpy(a) for a in (users, items, ratings))
    r = r.float()

    def step(reference: bool) -> None:
        rows = torch.randint(0, len(pairs), (BATCH,))
        own = ae.inputs(r[rows])
        d = ae._deviation(u[rows], i[rows], own) if reference else ae(u[rows], i[rows], own=own)
        loss = ((3.5 + d - r[rows]) ** 2).mean() + 200.0 / len(pairs) * ae.penalty()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()

    print(f"{n_users:,} users, {n_items:,} items, {len(pairs):,} ratings, width {width}, batch {BATCH}, one thread")
    for name, reference in (("hand-written backward", False), ("autograd's, of the reference", True)):
        step(reference)  # warm-up: the kept rater-major matrix, allocator
        rounds = []
        for _ in range(3):
            start = time.perf_counter()
            for _ in range(15):
                step(reference)
            rounds.append((time.perf_counter() - start) / 15 * 1000)
        print(f"{name}: {min(rounds):.1f} ms a step")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:4]))
