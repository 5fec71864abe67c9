"""The closed-form item-to-item maps the next-item priors read (models/item_prior.py).

Two linear maps from a history to a score per item, each solved in closed form over the most
taken items and kept as each target's strongest incoming weights:

- **EASE** (Steck, WWW 2019) reads a history as a set: ``B = I − P·diag(1/diag P)``, ``P =
  (XᵀX + λI)⁻¹`` over the binary user × item matrix (``diag B = 0``). It ranks by which items
  go with the whole history.
- **Transitions** (SLIT, Choi et al., "Session-aware Linear Item-Item Models", CIKM 2021):
  ``B = (SᵀS + λI)⁻¹ SᵀT``, where each row of S is the history *before* one training
  position, item k steps back weighted ``decay^k``, and the same row of T is the item taken
  *at* that position. It ranks by what tends to come next after the recent items.

Each solve is kept in memory by a digest of its inputs (solve_memo.py).
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import scipy.sparse as sp

from .sequences import Histories
from .solve_memo import remembered

# Items further back than this count 0 in a transition's source (0.9 ** 50 < 0.01).
TRANSITION_WINDOW = 50
# At most this many training positions (a seeded sample) enter the transition solve: its
# SᵀS product costs positions × window², so a large log is sampled rather than read whole.
MAX_TRANSITIONS = 300_000


def taken_matrix(hist: Histories, n_items: int) -> sp.csr_matrix:
    """(users × items) binary: 1 where the user took the item (at least once)."""
    users, items, _ = hist.flat()
    m = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(hist.n_users, n_items))
    m.data[:] = 1.0  # duplicates were summed
    return m


def covered_items(counts: np.ndarray, max_items: int) -> np.ndarray:
    """The taken items (sorted), at most the ``max_items`` most taken: the solves invert a
    matrix of that side."""
    covered = np.flatnonzero(counts > 0)
    if len(covered) > max_items:
        covered = np.sort(covered[np.argsort(-counts[covered], kind="stable")[:max_items]])
    return covered


def strongest_sources(b: np.ndarray, covered: np.ndarray, n_items: int, neighbors: int) -> tuple[np.ndarray, np.ndarray]:
    """(I, k) sources and weights of a (covered × covered) source → target map ``b``: each
    target's ``k = min(neighbors, covered)`` strongest incoming weights (zeros for the items
    outside ``covered``)."""
    k = max(1, min(neighbors, len(covered)))
    sources = np.zeros((n_items, k), dtype=np.int64)
    weights = np.zeros((n_items, k), dtype=np.float32)
    if len(covered) < 2:
        return sources, weights
    top = np.argpartition(-np.abs(b), k - 1, axis=0)[:k]  # (k, covered): strongest sources per target
    sources[covered] = covered[top].T
    weights[covered] = np.take_along_axis(b, top, axis=0).T
    return sources, weights


def ease_neighbours(
    taken: sp.csr_matrix, l2: float, neighbors: int, max_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(I, k) sources and weights: each item's ``k = min(neighbors, covered)`` strongest incoming
    EASE weights. Only the ``max_items`` most-taken items take part; the others keep zero
    weights (their prior score is 0 for every user). Solved once per process for equal inputs
    (solve_memo.py: a study's configurations share it)."""
    inputs = (taken.indptr, taken.indices, taken.data, np.array(taken.shape), float(l2), int(neighbors), int(max_items))
    return remembered("ease_neighbours", inputs, lambda: _solve_ease(taken, l2, neighbors, max_items))


def _solve_ease(taken: sp.csr_matrix, l2: float, neighbors: int, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    n_items = taken.shape[1]
    covered = covered_items(np.asarray(taken.sum(0)).ravel(), max_items)
    if len(covered) < 2:
        return strongest_sources(np.zeros((0, 0)), covered, n_items, neighbors)
    x = taken[:, covered]
    gram = (x.T @ x).toarray().astype(np.float64) + l2 * np.eye(len(covered))
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]  # column j: the weights into item j
    np.fill_diagonal(b, 0.0)
    return strongest_sources(b, covered, n_items, neighbors)


def transition_neighbours(
    hist: Histories, n_items: int, l2: float, decay: float, neighbors: int, max_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(I, k) sources and weights of the transition map fitted on ``hist``'s histories (oldest
    item first), as :func:`ease_neighbours` keeps EASE's. Solved once per process for equal
    inputs."""
    lengths = hist.lengths()
    items = np.concatenate(hist.items).astype(np.int64) if lengths.sum() else np.zeros(0, dtype=np.int64)
    inputs = (lengths, items, int(n_items), float(l2), float(decay), int(neighbors), int(max_items))
    return remembered(
        "transition_neighbours", inputs, lambda: _solve_transitions(lengths, items, n_items, l2, decay, neighbors, max_items)
    )


def transition_rows(
    lengths: np.ndarray, items: np.ndarray, column: np.ndarray, decay: float, sample: int | None = None
) -> tuple[sp.csr_matrix, np.ndarray]:
    """S (positions × covered), each row the decayed history before one position, and the
    covered column of the item taken there; positions whose item is not covered, or that
    have no covered item before them, are left out. ``column``: item → covered column (−1:
    not covered). ``sample``: where there are more positions than this, that many of them, a
    seeded sample, the rest never built: the rows the whole S has in those places, to the bit
    (built whole and then sampled, at MovieLens-1M's shape a solve's memory peaked 2.4 GiB
    above its start; 1.0 GiB now)."""
    total = count_positions(lengths, items, column)
    chosen = None
    if sample is not None and total > sample:
        chosen = np.sort(np.random.default_rng(0).choice(total, sample, replace=False))
    rows, cols, vals, targets = [], [], [], []
    n_rows = offset = 0
    for seq, pos, src, back, r, c, keep in _user_transitions(lengths, items, column):
        local = np.arange(len(keep))  # this user's positions (rows), in order
        if chosen is not None:
            lo, hi = np.searchsorted(chosen, [offset, offset + len(keep)])
            local = chosen[lo:hi] - offset
        offset += len(keep)
        if not len(local):
            continue
        renumber = np.full(len(pos), -1)
        renumber[keep[local]] = np.arange(len(local)) + n_rows
        row = renumber[r]
        kept = row >= 0
        rows.append(row[kept])
        cols.append(seq[src[r[kept], c[kept]]])
        vals.append(decay ** (back[c[kept]] - 1.0))
        targets.append(seq[pos[keep[local]]])
        n_rows += len(local)
    if not n_rows:
        return sp.csr_matrix((0, len(column))), np.zeros(0, dtype=np.int64)
    s = sp.csr_matrix((np.concatenate(vals), (np.concatenate(rows), np.concatenate(cols))), shape=(n_rows, int(column.max()) + 1))
    return s, np.concatenate(targets)


def count_positions(lengths: np.ndarray, items: np.ndarray, column: np.ndarray) -> int:
    """How many rows :func:`transition_rows` has in all, without building them: a position
    counts where its item is covered and so is one of the TRANSITION_WINDOW before it (a
    running count of covered items, where the rows need a (positions × window) grid)."""
    total = 0
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    for start, n in zip(starts, lengths):
        covered = column[items[start : start + n]] >= 0
        before = np.concatenate([[0], np.cumsum(covered)])  # covered items before each index
        pos = np.arange(1, n)
        total += int(np.count_nonzero(covered[pos] & (before[pos] > before[np.maximum(pos - TRANSITION_WINDOW, 0)])))
    return total


def _user_transitions(lengths: np.ndarray, items: np.ndarray, column: np.ndarray) -> Iterator[tuple[np.ndarray, ...]]:
    """Per user with a position to learn from: the covered columns of its history, the
    positions, their sources (positions × window), the window's steps back, the (position,
    step) of each covered source, and the positions kept (a covered target and source)."""
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    back = np.arange(1, TRANSITION_WINDOW + 1)
    for start, n in zip(starts, lengths):
        if n < 2:
            continue
        seq = column[items[start : start + n]]
        pos = np.arange(1, n)
        src = pos[:, None] - back[None, :]  # (positions, window) positions before each one
        ok = (src >= 0) & (seq[np.clip(src, 0, None)] >= 0) & (seq[pos] >= 0)[:, None]
        r, c = np.nonzero(ok)
        keep = np.unique(r)  # positions with a covered target and a covered source
        if len(keep):
            yield seq, pos, src, back, r, c, keep


def _solve_transitions(
    lengths: np.ndarray, items: np.ndarray, n_items: int, l2: float, decay: float, neighbors: int, max_items: int
) -> tuple[np.ndarray, np.ndarray]:
    covered = covered_items(np.bincount(items, minlength=n_items), max_items)
    if len(covered) < 2:
        return strongest_sources(np.zeros((0, 0)), covered, n_items, neighbors)
    column = np.full(n_items, -1)
    column[covered] = np.arange(len(covered))
    s, targets = transition_rows(lengths, items, column, decay, sample=MAX_TRANSITIONS)
    if s.shape[0] == 0:
        return strongest_sources(np.zeros((len(covered), len(covered))), covered, n_items, neighbors)
    t = sp.csr_matrix((np.ones(len(targets)), (np.arange(len(targets)), targets)), shape=(len(targets), len(covered)))
    gram = (s.T @ s).toarray() + l2 * np.eye(len(covered))
    b = np.linalg.solve(gram, (s.T @ t).toarray())  # row: source, column: target
    return strongest_sources(b, covered, n_items, neighbors)
