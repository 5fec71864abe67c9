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
    ``encode``: texts → (len, D) unit vectors (``encode_texts`` with the run's settings),
    called once, on every text at once (one cache read and at most one model load).

    Why not the joined text: the encoder reads a text up to its window (256 tokens for
    MiniLM), so a long first field can cut the next ones off, and even inside the window a
    long noisy title outweighs a short category. Encoded apart, every field counts once.
    """
    n = len(whole)
    rows: list[int] = []  # the item each text to encode belongs to
    texts: list[str] = []
    for values in fields:
        if len(values) != n:
            raise ValueError(f"a text field has {len(values)} values for {n} items")
        for i, value in enumerate(values):
            text = "" if pd.isna(value) else str(value).strip()
            if text:
                rows.append(i)
                texts.append(text)
    has_field = np.zeros(n, dtype=bool)
    has_field[rows] = True
    for i in np.flatnonzero(~has_field):
        rows.append(int(i))
        texts.append(whole[i])
    vectors = encode(texts)
    total = np.zeros((n, vectors.shape[1]), dtype=np.float64)
    np.add.at(total, np.asarray(rows), vectors)
    norms = np.linalg.norm(total, axis=1, keepdims=True)
    return (total / np.maximum(norms, 1e-12)).astype(np.float32)
