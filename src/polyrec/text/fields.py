"""An item's vector from several text fields, each encoded on its own."""

from __future__ import annotations

from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd


def mean_of_fields(
    fields: Sequence[Sequence[object]], whole: Sequence[str], encode: Callable[[list[str]], np.ndarray]
) -> np.ndarray:
    """(N, D) L2-normalised mean of each item's non-empty fields' vectors.

    ``fields``: one sequence of N values per field (None, NaN or blank: the item lacks that
    field); ``whole``: each item's whole text, encoded instead for an item that has no field;
    ``encode``: texts → (len, D) unit vectors (``encode_texts`` with the run's settings).

    Why not the joined text: the encoder reads a text up to its window (256 tokens for
    MiniLM), so a long first field can cut the next ones off, and even inside the window a
    long noisy title outweighs a short category. Encoded apart, every field counts once.
    """
    n = len(whole)
    total: np.ndarray | None = None
    for values in fields:
        if len(values) != n:
            raise ValueError(f"a text field has {len(values)} values for {n} items")
        texts = ["" if pd.isna(v) else str(v).strip() for v in values]
        present = np.array([bool(t) for t in texts], dtype=bool)
        if not present.any():
            continue
        vectors = encode([t for t, p in zip(texts, present) if p])
        if total is None:
            total = np.zeros((n, vectors.shape[1]), dtype=np.float64)
        total[present] += vectors
    bare = np.ones(n, dtype=bool) if total is None else ~np.any(total != 0.0, axis=1)
    if bare.any():
        vectors = encode([whole[i] for i in np.flatnonzero(bare)])
        if total is None:
            total = np.zeros((n, vectors.shape[1]), dtype=np.float64)
        total[bare] = vectors
    assert total is not None
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.maximum(norms, 1e-12)).astype(np.float32)
