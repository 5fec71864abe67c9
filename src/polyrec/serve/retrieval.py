"""Top-k retrieval by inner product with FAISS: exact below a catalogue size, IVF above it.

The exact index (``IndexFlatIP``) scans every item: on a few tens of thousands of items it
answers in well under a millisecond. Above ``exact_below`` items the index is an inverted
file (``IndexIVFFlat``, inner product): items are grouped around ``nlist`` k-means centroids
and a query scans only the ``nprobe`` groups nearest to it. Its recall@10 against exact
search is measured on real queries when it is built (``recall_at``) and reported.

Filters (items the user has seen, an item type) are applied after the search, so the search
over-fetches; when too few items survive the filters it asks again for twice as many (and,
for IVF, scans twice as many groups) until ``k`` survive or the catalogue is exhausted.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import faiss
import numpy as np


@dataclass(frozen=True)
class IndexSettings:
    exact_below: int = 50_000  # catalogues smaller than this get the exact index
    nlist: int | None = None  # IVF groups; default 2·√N
    nprobe: int = 16  # IVF groups scanned per query (before any widening for filters)
    train_size: int = 64  # IVF k-means trains on at most this many points per group
    seed: int = 0


class VectorIndex:
    """Inner-product search over the rows of ``vectors`` (N, D); ids are row numbers."""

    def __init__(self, vectors: np.ndarray, settings: IndexSettings = IndexSettings()):
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        self.n, dim = vectors.shape
        self.settings = settings
        self.vectors = vectors
        if self.n < settings.exact_below:
            self.kind, self.nlist, self.nprobe = "exact", 1, 1
            self.index: faiss.Index = faiss.IndexFlatIP(dim)
        else:
            self.kind = "ivf"
            self.nlist = settings.nlist or max(1, int(2 * math.sqrt(self.n)))
            self.nprobe = min(settings.nprobe, self.nlist)
            quantizer = faiss.IndexFlatIP(dim)
            self.index = faiss.IndexIVFFlat(quantizer, dim, self.nlist, faiss.METRIC_INNER_PRODUCT)
            self.index.cp.seed = settings.seed
            rng = np.random.default_rng(settings.seed)
            sample = vectors[rng.permutation(self.n)[: settings.train_size * self.nlist]]
            self.index.train(sample)
        self.index.add(vectors)

    def describe(self) -> dict[str, object]:
        out: dict[str, object] = {"kind": self.kind, "items": self.n}
        if self.kind == "ivf":
            out.update(nlist=self.nlist, nprobe=self.nprobe)
        return out

    def search(self, queries: np.ndarray, k: int, nprobe: int | None = None) -> tuple[np.ndarray, np.ndarray]:
        """(n, k) scores and ids of the best ``k`` rows for each query; id −1 pads a short answer."""
        queries = np.ascontiguousarray(np.atleast_2d(queries), dtype=np.float32)
        k = min(k, self.n)
        if self.kind == "ivf":
            # Per-call parameters, not index.nprobe: concurrent requests may widen differently.
            params = faiss.SearchParametersIVF(nprobe=min(nprobe or self.nprobe, self.nlist))
            return self.index.search(queries, k, params=params)
        return self.index.search(queries, k)

    def top_k(
        self,
        query: np.ndarray,
        k: int,
        exclude: np.ndarray | None = None,
        allowed: np.ndarray | None = None,
    ) -> tuple[np.ndarray, np.ndarray]:
        """Ids and scores of the best ``k`` rows for one query, best first.

        ``exclude``: row ids never returned (e.g. items the user has seen). ``allowed``: (N,)
        bool, only rows where it is True are returned (e.g. one item type). Fewer than ``k``
        come back only when fewer than ``k`` rows pass the filters.
        """
        n_excluded = 0 if exclude is None else len(exclude)
        share = 1.0 if allowed is None else max(float(allowed.mean()), 1.0 / self.n)
        fetch = min(self.n, math.ceil((k + n_excluded) / share))
        nprobe = self.nprobe
        while True:
            scores, ids = self.search(query, fetch, nprobe)
            scores, ids = scores[0], ids[0]
            found = ids >= 0
            keep = found.copy()
            if exclude is not None and len(exclude):
                keep &= ~np.isin(ids, exclude)
            if allowed is not None:
                keep &= allowed[np.where(found, ids, 0)]
            exhaustive = self.kind == "exact" or nprobe >= self.nlist
            if keep.sum() >= k or (exhaustive and (fetch >= self.n or found.sum() < fetch)):
                return ids[keep][:k], scores[keep][:k]
            fetch, nprobe = min(self.n, 2 * fetch), min(self.nlist, 2 * nprobe)

    def recall_at(self, queries: np.ndarray, k: int = 10) -> float:
        """Mean share of the exact top ``k`` that this index returns for ``queries`` (1.0 if exact)."""
        if self.kind == "exact" or len(queries) == 0:
            return 1.0
        exact = faiss.IndexFlatIP(self.vectors.shape[1])
        exact.add(self.vectors)
        _, truth = exact.search(np.ascontiguousarray(queries, dtype=np.float32), k)
        _, got = self.search(queries, k)
        hits = [len(set(t[t >= 0]) & set(g[g >= 0])) / max(int((t >= 0).sum()), 1) for t, g in zip(truth, got)]
        return float(np.mean(hits))
