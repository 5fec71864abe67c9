"""Full-ranking next-item metrics.

Protocol: full ranking over the whole catalogue, excluding items already in the
user's history. Ties count against the target (its rank = number of other candidates
scoring >= it, plus one). HR@K, NDCG@K, MRR@K for K in (10, 20). No sampled negatives.

Usage on a large catalogue, one chunk of users at a time (rows are independent, so
the result does not depend on the chunking)::

    ranks = np.concatenate([
        target_ranks(model_scores(users[s:s + 1024]), targets[s:s + 1024], history[s:s + 1024])
        for s in range(0, len(users), 1024)
    ])
    ranking_metrics(ranks)
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import scipy.sparse as sp

DEFAULT_KS: tuple[int, ...] = (10, 20)
# The rank of a target that is not a candidate (it repeats an item of the user's history):
# past any K, so it counts as a miss in every metric.
NOT_A_CANDIDATE = np.iinfo(np.int64).max


def _exclusion_pattern(
    exclude: Sequence[np.ndarray] | sp.spmatrix | sp.sparray | None, n_rows: int, n_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(row, item) pairs to exclude, each pair once, from either accepted form."""
    if exclude is None:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    if sp.issparse(exclude):
        if exclude.shape != (n_rows, n_items):
            raise ValueError(f"exclude has shape {exclude.shape}, scores have {(n_rows, n_items)}")
        m = sp.csr_matrix(exclude, copy=True)
        # The stored pattern is the history, whatever the values (a stored 0 rating is
        # still an item the user has seen); summing ones merges duplicate entries.
        m.data = np.ones_like(m.data, dtype=np.float64)
        m.sum_duplicates()
        rows = np.repeat(np.arange(n_rows, dtype=np.int64), np.diff(m.indptr))
        return rows, m.indices.astype(np.int64)
    if len(exclude) != n_rows:
        raise ValueError(f"exclude has {len(exclude)} rows, scores have {n_rows}")
    lists = [np.unique(np.asarray(e, dtype=np.int64).reshape(-1)) for e in exclude]
    rows = np.repeat(np.arange(n_rows, dtype=np.int64), [len(e) for e in lists])
    items = np.concatenate(lists) if lists else np.zeros(0, dtype=np.int64)
    if items.size and (items.min() < 0 or items.max() >= n_items):
        raise ValueError(f"exclude holds item indices outside 0..{n_items - 1}")
    return rows, items


def target_ranks(
    scores: np.ndarray,
    targets: np.ndarray,
    exclude: Sequence[np.ndarray] | sp.spmatrix | sp.sparray | None = None,
) -> np.ndarray:
    """1-based rank of each user's target item among its candidates.

    ``scores``: shape (U, I), float; higher means ranked earlier. Must not hold NaN
    (``-inf`` is fine, e.g. to mask items by hand: it ties with other ``-inf`` items).
    ``targets``: shape (U,), int item index of each row's held-out item.
    ``exclude``: the items that are not candidates for each row (the user's history):
    a list of U integer arrays, or a sparse (U, I) matrix whose stored entries (any
    value, explicit zeros included) mark excluded items; ``None`` excludes nothing.
    Duplicates are harmless. A target in its own row's exclusion set (a re-consumed
    item) is not a candidate either, as PROTOCOLS.md reads: its rank is
    ``NOT_A_CANDIDATE``, a miss. Keeping it as the one history item left in the ranking
    would tell a model that scores the history high where the target is, and such a model
    would hit nearly every re-consumed target (``benchmarks/odd_shop_logs.py``'s
    ``repeats-iso``, every held-out item a repeat: test NDCG@10 0.75 that way).

    Returns shape (U,) int64: ``1 + #{candidates j != target : scores[j] >= scores[target]}``,
    so ties count against the target. Rows are independent: calling this on any subset
    of rows (with the matching targets and exclusion rows) gives those rows' ranks.
    """
    s = np.asarray(scores)
    if s.ndim != 2:
        raise ValueError(f"scores must be 2-D (users, items), got shape {s.shape}")
    n_rows, n_items = s.shape
    t = np.asarray(targets).reshape(-1)
    if t.size != n_rows:
        raise ValueError(f"targets has {t.size} entries, scores have {n_rows} rows")
    if not np.issubdtype(t.dtype, np.integer):
        raise ValueError(f"targets must be integer item indices, got dtype {t.dtype}")
    t = t.astype(np.int64)
    if n_rows and (t.min() < 0 or t.max() >= n_items):
        raise ValueError(f"targets hold item indices outside 0..{n_items - 1}")
    if np.isnan(s).any():
        # NaN compares False with everything, which would silently rank the target first.
        raise ValueError("scores contain NaN")

    rows = np.arange(n_rows)
    target_score = s[rows, t][:, None]
    # Candidates scoring >= the target, over the whole row; minus 1 for the target itself.
    n_ge = np.count_nonzero(s >= target_score, axis=1) - 1

    ex_rows, ex_items = _exclusion_pattern(exclude, n_rows, n_items)
    is_target = ex_items == t[ex_rows]
    excluded_target = np.bincount(ex_rows[is_target], minlength=n_rows) > 0
    ex_rows, ex_items = ex_rows[~is_target], ex_items[~is_target]
    # Excluded items were counted above only where they score >= the target: take them back.
    ex_ge = s[ex_rows, ex_items] >= target_score[ex_rows, 0]
    n_ge -= np.bincount(ex_rows[ex_ge], minlength=n_rows)
    ranks = (n_ge + 1).astype(np.int64)
    ranks[excluded_target] = NOT_A_CANDIDATE
    return ranks


def ranking_metrics(ranks: np.ndarray, ks: Sequence[int] = DEFAULT_KS) -> dict[str, float]:
    """Mean HR@K, NDCG@K and MRR@K over users, from the target ranks.

    ``ranks``: shape (U,), 1-based ranks from ``target_ranks`` (one relevant item per
    user). For each K in ``ks``: HR@K = [rank <= K]; NDCG@K = 1 / log2(rank + 1) if
    rank <= K else 0 (the ideal DCG with one relevant item is 1); MRR@K = 1 / rank if
    rank <= K else 0. Keys are ``"hr@K"``, ``"ndcg@K"``, ``"mrr@K"``, in ``ks`` order.
    """
    r = np.asarray(ranks).reshape(-1)
    if r.size == 0:
        raise ValueError("ranking_metrics: no ranks")
    if r.min() < 1:
        raise ValueError("ranking_metrics: ranks are 1-based, got a rank below 1")
    r = r.astype(np.float64)
    out: dict[str, float] = {}
    for k in ks:
        hit = r <= k
        out[f"hr@{k}"] = float(np.mean(hit))
        out[f"ndcg@{k}"] = float(np.mean(np.where(hit, 1.0 / np.log2(r + 1.0), 0.0)))
        out[f"mrr@{k}"] = float(np.mean(np.where(hit, 1.0 / r, 0.0)))
    return out


def ndcg_at(
    scores: np.ndarray, targets: np.ndarray, exclude: Sequence[np.ndarray] | sp.spmatrix | sp.sparray | None, k: int = 10
) -> float:
    """Mean NDCG@k of ``scores`` (:func:`target_ranks`' arguments): what model selection reads."""
    return ranking_metrics(target_ranks(scores, targets, exclude), ks=(k,))[f"ndcg@{k}"]
