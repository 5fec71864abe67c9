"""Fitting the item prior (models/item_prior.py) after fine-tuning: EASE on the training
histories for each L2 of a grid, read at each decay of a grid and blended at each share of a
grid; the choice with the best validation NDCG@10 is kept — or none, where no choice beats the
model alone on validation. Once validation has been scored, the kept prior is refitted with its
λ on the training histories and the validation items (:func:`refit_item_prior`)."""

from __future__ import annotations

import numpy as np
import scipy.sparse as sp
import torch

from ..config import ModelConfig
from ..eval.predict import score_users
from ..eval.ranking import ndcg_at
from ..models.item_prior import ItemPrior, blend_standardised, standardised
from ..models.polyrec import PolyRecModel
from .protocol_data import ProtocolData
from .sequences import Histories, HistoryBatch, collate
from .solve_memo import remembered

# EASE's best L2 was 200-1000 on MovieLens-20M, Netflix and the Million Song Data (Steck 2019)
# and 100-300 on MovieLens-100K (protocol B, validation); the grid spans both, and smaller.
L2_GRID: tuple[float, ...] = (10.0, 30.0, 100.0, 300.0, 1000.0)
SHARE_GRID: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
# How much an item counts per step back in the history (models/item_prior.py): 1 = as a set.
DECAY_GRID: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8, 0.7)
# At most this many validation users choose (a fixed sample): the grid ranks the catalogue
# for them once per (λ, decay, share).
CHOICE_USERS = 5000


def taken_matrix(hist: Histories, n_items: int) -> sp.csr_matrix:
    """(users × items) binary: 1 where the user took the item (at least once)."""
    users, items, _ = hist.flat()
    m = sp.csr_matrix((np.ones(len(items)), (users, items)), shape=(hist.n_users, n_items))
    m.data[:] = 1.0  # duplicates were summed
    return m


def ease_neighbours(
    taken: sp.csr_matrix, l2: float, neighbors: int, max_items: int
) -> tuple[np.ndarray, np.ndarray]:
    """(I, k) sources and weights: each item's ``k = min(neighbors, covered)`` strongest incoming
    EASE weights. EASE inverts a (covered × covered) matrix, so only the ``max_items`` most-taken
    items take part; the others keep zero weights (their prior score is 0 for every user).
    Solved once per process for equal inputs (solve_memo.py: a study's configurations share it)."""
    inputs = (taken.indptr, taken.indices, taken.data, np.array(taken.shape), float(l2), int(neighbors), int(max_items))
    return remembered("ease_neighbours", inputs, lambda: _solve_ease(taken, l2, neighbors, max_items))


def _solve_ease(taken: sp.csr_matrix, l2: float, neighbors: int, max_items: int) -> tuple[np.ndarray, np.ndarray]:
    n_items = taken.shape[1]
    counts = np.asarray(taken.sum(0)).ravel()
    covered = np.flatnonzero(counts > 0)
    if len(covered) > max_items:
        covered = np.sort(covered[np.argsort(-counts[covered], kind="stable")[:max_items]])
    k = max(1, min(neighbors, len(covered)))
    sources = np.zeros((n_items, k), dtype=np.int64)
    weights = np.zeros((n_items, k), dtype=np.float32)
    if len(covered) < 2:
        return sources, weights
    x = taken[:, covered]
    gram = (x.T @ x).toarray().astype(np.float64) + l2 * np.eye(len(covered))
    p = np.linalg.inv(gram)
    b = -p / np.diag(p)[None, :]  # column j: the weights into item j
    np.fill_diagonal(b, 0.0)
    top = np.argpartition(-np.abs(b), k - 1, axis=0)[:k]  # (k, covered): strongest sources per target
    sources[covered] = covered[top].T
    weights[covered] = np.take_along_axis(b, top, axis=0).T
    return sources, weights


def best_on_grids(
    own: torch.Tensor, batch: HistoryBatch, taken: sp.csr_matrix, targets: np.ndarray, seen: sp.csr_matrix,
    cfg: ModelConfig, floor: float,
) -> dict:
    """The (λ, decay, share) of the grids whose blend of ``own`` (the model's :func:`standardised`
    scores of the users of ``batch``) with EASE fitted on ``taken`` ranks ``targets`` best:
    ``{"valid_ndcg", "l2", "decay", "share", "kept": (sources, weights)}`` — or
    ``{"valid_ndcg": floor}`` where no choice beats ``floor``."""
    best: dict = {"valid_ndcg": floor}
    for l2 in L2_GRID:
        sources, weights = ease_neighbours(taken, l2, cfg.item_prior_neighbors, cfg.item_prior_max_items)
        prior = ItemPrior(taken.shape[1], sources.shape[1])
        for decay in DECAY_GRID:
            prior.set(sources, weights, 0.0, decay)
            with torch.no_grad():
                prior_scores = standardised(prior.history_scores(batch.items, batch.mask))
            for share in SHARE_GRID:
                ndcg = ndcg_at(blend_standardised(own, prior_scores, share).numpy(), targets, seen)
                if ndcg > best["valid_ndcg"] + 1e-6:
                    best = {"valid_ndcg": ndcg, "l2": l2, "decay": decay, "share": share, "kept": (sources, weights)}
    return best


def fit_item_prior(model: PolyRecModel, data: ProtocolData, cfg: ModelConfig) -> dict[str, float]:
    """Attach the item prior to ``model`` if a (λ, decay, share) of the grids raises its
    validation NDCG@10; figures for metrics.json either way (λ, decay and share 0 where none
    did; nothing where validation ranks no next item)."""
    side = data.valid
    if not cfg.item_prior or "next_item" not in model.heads or side.next_users is None or not len(side.next_users):
        return {}
    n_items = model.spec.n_items
    pick = np.arange(len(side.next_users))
    if len(pick) > CHOICE_USERS:
        pick = np.sort(np.random.default_rng(data.seed).choice(pick, CHOICE_USERS, replace=False))
    users, targets = side.next_users[pick], side.next_items[pick]
    seen = taken_matrix(side.history, n_items)[users]  # one exclusion pattern for every choice
    own = torch.from_numpy(score_users(model, side.history, users))
    base = ndcg_at(own.numpy(), targets, seen)
    own = standardised(own)  # the blend's model part, the same for every choice
    batch = collate(side.history, users, model.spec.config.max_history)  # what scoring reads
    best = best_on_grids(own, batch, taken_matrix(data.train, n_items), targets, seen, cfg, floor=base)
    if "kept" in best:
        model.attach_item_prior(*best.pop("kept"), best["share"], best["decay"])
    return {"valid_ndcg_alone": base, "l2": 0.0, "decay": 0.0, "share": 0.0, **best}


def refit_item_prior(model: PolyRecModel, known: Histories, l2: float, cfg: ModelConfig) -> bool:
    """Refit ``model``'s kept prior with its chosen ``l2`` on ``known`` (the training histories
    with each user's validation item: what a test history holds), keeping its share and
    decay; False where the model keeps no prior or ``cfg`` leaves the refit off. Call it only
    once validation has been scored: the refitted prior has read the validation items."""
    prior = model.item_prior
    if prior is None or not cfg.item_prior_refit or l2 <= 0:  # l2 0: validation kept no prior
        return False
    sources, weights = ease_neighbours(taken_matrix(known, model.spec.n_items), l2, cfg.item_prior_neighbors, cfg.item_prior_max_items)
    model.attach_item_prior(sources, weights, float(prior.share), float(prior.decay))
    return True
