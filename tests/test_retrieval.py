"""FAISS retrieval: exact search agrees with brute force; IVF widens until the filters leave k."""

from __future__ import annotations

import numpy as np
import pytest

from polyrec.serve.retrieval import IndexSettings, VectorIndex


@pytest.fixture(scope="module")
def clustered() -> tuple[np.ndarray, np.ndarray]:
    """2,000 item vectors in 20 clusters and 50 queries near the clusters."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(20, 16))
    items = centres[rng.integers(20, size=2000)] + 0.3 * rng.normal(size=(2000, 16))
    queries = centres[rng.integers(20, size=50)] + 0.3 * rng.normal(size=(50, 16))
    return items.astype(np.float32), queries.astype(np.float32)


def brute_force(items: np.ndarray, q: np.ndarray, k: int, exclude=(), allowed=None) -> list[int]:
    scores = items @ q
    scores[list(exclude)] = -np.inf
    if allowed is not None:
        scores[~allowed] = -np.inf
    order = np.argsort(-scores, kind="stable")
    return [int(i) for i in order[:k] if np.isfinite(scores[i])]


def test_exact_index_equals_brute_force_with_filters(clustered) -> None:
    items, queries = clustered
    index = VectorIndex(items)
    assert index.kind == "exact" and index.recall_at(queries) == 1.0
    rng = np.random.default_rng(1)
    allowed = rng.random(len(items)) < 0.05
    for q in queries[:10]:
        exclude = rng.choice(len(items), 300, replace=False)
        got, scores = index.top_k(q, 10, exclude, allowed)
        assert got.tolist() == brute_force(items, q, 10, exclude, allowed)
        np.testing.assert_allclose(scores, (items @ q)[got], rtol=1e-5)


def test_fewer_than_k_only_when_the_filters_leave_fewer(clustered) -> None:
    items, queries = clustered
    allowed = np.zeros(len(items), bool)
    allowed[[3, 50, 700]] = True
    for index in (VectorIndex(items), VectorIndex(items, IndexSettings(exact_below=100, nlist=40, nprobe=1))):
        got, _ = index.top_k(queries[0], 10, np.array([50]), allowed)
        assert sorted(got.tolist()) == [3, 700]  # no −1 padding, no excluded or disallowed item


def test_ivf_recall_is_measured_and_grows_with_nprobe(clustered) -> None:
    items, queries = clustered
    recalls = []
    for nprobe in (1, 4, 40):
        index = VectorIndex(items, IndexSettings(exact_below=100, nlist=40, nprobe=nprobe))
        assert index.describe() == {"kind": "ivf", "items": 2000, "nlist": 40, "nprobe": nprobe}
        recalls.append(index.recall_at(queries, 10))
    assert recalls[0] <= recalls[1] <= recalls[2] == 1.0  # scanning every group is exact search
    assert recalls[0] < 1.0  # one group of 40 misses some: the measurement is not vacuous


def test_ivf_widens_the_search_for_rare_allowed_items(clustered) -> None:
    items, queries = clustered
    index = VectorIndex(items, IndexSettings(exact_below=100, nlist=40, nprobe=1))
    allowed = np.zeros(len(items), bool)
    allowed[np.random.default_rng(2).choice(len(items), 30, replace=False)] = True  # 1.5% of the catalogue
    for q in queries[:10]:
        got, _ = index.top_k(q, 10, allowed=allowed)
        assert len(got) == 10 and allowed[got].all() and len(set(got.tolist())) == 10
