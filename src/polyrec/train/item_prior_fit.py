"""Fitting the next-item priors (models/item_prior.py) after fine-tuning: EASE on the training
histories for each L2 of a grid, read at each decay of a grid and blended at each share of a
grid; the choice with the best validation NDCG@10 is kept — or none, where no choice beats the
model alone on validation. Then the transition prior (train/item_item_solves.py) beside it, on
grids of its own, kept only where it raises validation NDCG@10 further. Once validation has
been scored, the kept priors are refitted with their λ on the training histories and the
validation items (:func:`refit_item_prior`)."""

from __future__ import annotations

from typing import Callable

import numpy as np
import scipy.sparse as sp
import torch

from ..config import ModelConfig
from ..eval.predict import score_users
from ..eval.ranking import ndcg_at, ranking_metrics, target_ranks
from ..models.item_prior import ItemPrior, blend_standardised, standardised
from ..models.polyrec import PolyRecModel
from ..progress import counter
from .item_item_solves import ease_neighbours, taken_matrix, transition_neighbours
from .protocol_data import ProtocolData
from .sequences import Histories, HistoryBatch, collate

# EASE's best L2 was 200-1000 on MovieLens-20M, Netflix and the Million Song Data (Steck 2019)
# and 100-300 on MovieLens-100K (protocol B, validation); the grid spans both, and smaller.
L2_GRID: tuple[float, ...] = (10.0, 30.0, 100.0, 300.0, 1000.0)
SHARE_GRID: tuple[float, ...] = (0.1, 0.15, 0.2, 0.25, 0.3, 0.4)
# How much an item counts per step back in the history (models/item_prior.py): 1 = as a set.
DECAY_GRID: tuple[float, ...] = (1.0, 0.95, 0.9, 0.8, 0.7)
# The transition prior's grids (train/item_item_solves.py), searched once EASE's choice is
# known, with EASE's share searched again beside it (0 included: the transitions alone).
TRANSITION_L2_GRID: tuple[float, ...] = (10.0, 100.0, 1000.0)
TRANSITION_DECAY_GRID: tuple[float, ...] = (0.9, 0.7)
TRANSITION_SHARE_GRID: tuple[float, ...] = (0.05, 0.1, 0.15, 0.2, 0.3)
# At most this many validation users choose (a fixed sample): the grid ranks the catalogue
# for them once per (λ, decay, share), about 500 times in all. On a large catalogue fewer
# choose, so that each ranking scores at most CHOICE_CELLS (user, item) pairs, but never
# fewer than MIN_CHOICE_USERS: MovieLens-1M (3,706 items) keeps its 5,000; on a 12,000-item
# shop of 15,000 users 1,666 choose, and the choice took 140 s where it had taken about 650
# (docs/results/scale.md).
CHOICE_USERS = 5000
CHOICE_CELLS = 20_000_000
MIN_CHOICE_USERS = 1000


def choice_users(n_users: int, n_items: int) -> int:
    """How many of ``n_users`` validation users choose the priors over ``n_items`` items."""
    return min(n_users, CHOICE_USERS, max(MIN_CHOICE_USERS, CHOICE_CELLS // max(n_items, 1)))


# Each choice is ranked this many (user, item) cells at a time: a part of the users' rows
# stays in the CPU's caches and in memory the allocator reuses, where ranking all at once
# allocated and faulted in fresh (users × catalogue) arrays for every choice (about 1.4 s a
# choice for 1,000 users of a 100,000-item catalogue, most of it in the kernel).
RANK_CELLS = 2_000_000

Kept = tuple[np.ndarray, np.ndarray]  # (I, k) sources and weights of one prior


def _no_tick() -> None:
    pass


def blend_ndcg(own: torch.Tensor, parts: list[tuple[torch.Tensor, float]], targets: np.ndarray, seen: sp.csr_matrix) -> float:
    """Validation NDCG@10 of ``blend_standardised(own, parts)``, ranked :data:`RANK_CELLS` at
    a time: the figure ``ndcg_at`` gives for the whole blend, to the bit (a row's blend and
    rank read that row alone, and the mean runs over the same ranks in the same order)."""
    step = max(1, RANK_CELLS // max(own.shape[1], 1))
    ranks = []
    for s in range(0, len(own), step):
        rows = slice(s, s + step)
        blend = blend_standardised(own[rows], [(z[rows], share) for z, share in parts])
        ranks.append(target_ranks(blend.numpy(), targets[rows], None if seen is None else seen[rows]))
    return ranking_metrics(np.concatenate(ranks), ks=(10,))["ndcg@10"]


def part_scores(kept: Kept, decay: float, batch: HistoryBatch) -> torch.Tensor:
    """The :func:`standardised` scores of one prior for the users of ``batch``."""
    sources, weights = kept
    prior = ItemPrior(len(sources), sources.shape[1])
    prior.set(sources, weights, 0.0, decay)
    with torch.no_grad():
        return standardised(prior.history_scores(batch.items, batch.mask))


def best_on_grids(
    own: torch.Tensor, batch: HistoryBatch, taken: sp.csr_matrix, targets: np.ndarray, seen: sp.csr_matrix,
    cfg: ModelConfig, floor: float, beside: tuple[tuple[torch.Tensor, float], ...] = (), tick: Callable[[], object] = _no_tick,
) -> dict:
    """The (λ, decay, share) of the grids whose blend of ``own`` (the model's :func:`standardised`
    scores of the users of ``batch``) with EASE fitted on ``taken`` — and ``beside``, parts
    blended at fixed shares — ranks ``targets`` best:
    ``{"valid_ndcg", "l2", "decay", "share", "kept": (sources, weights)}`` — or
    ``{"valid_ndcg": floor}`` where no choice beats ``floor``. ``tick`` is called after each
    choice is scored (a progress bar's update)."""
    best: dict = {"valid_ndcg": floor}
    for l2 in L2_GRID:
        kept = ease_neighbours(taken, l2, cfg.item_prior_neighbors, cfg.item_prior_max_items)
        for decay in DECAY_GRID:
            z = part_scores(kept, decay, batch)
            for share in SHARE_GRID:
                ndcg = blend_ndcg(own, [(z, share), *beside], targets, seen)
                tick()
                if ndcg > best["valid_ndcg"] + 1e-6:
                    best = {"valid_ndcg": ndcg, "l2": l2, "decay": decay, "share": share, "kept": kept}
    return best


def best_with_transitions(
    own: torch.Tensor, batch: HistoryBatch, ease: dict, taken: sp.csr_matrix, hist: Histories,
    targets: np.ndarray, seen: sp.csr_matrix, cfg: ModelConfig, tick: Callable[[], object] = _no_tick,
) -> dict:
    """``ease`` (:func:`best_on_grids`' choice) with a transition prior fitted on ``hist``
    beside it, where one raises validation NDCG@10: first the transition part's λ, decay and
    share with EASE's share searched again (0: dropped), then EASE's λ and decay again with
    the transition part fixed. Adds ``transition_l2``, ``transition_decay``,
    ``transition_share`` and ``transition_kept`` to ``ease``'s keys, or returns it as it is."""
    n_items = taken.shape[1]
    best = dict(ease)
    ease_z = part_scores(ease["kept"], ease["decay"], batch) if "kept" in ease else None
    ease_shares = (0.0, *SHARE_GRID) if ease_z is not None else (0.0,)
    for l2 in TRANSITION_L2_GRID:
        for decay in TRANSITION_DECAY_GRID:
            kept = transition_neighbours(hist, n_items, l2, decay, cfg.item_prior_neighbors, cfg.item_prior_max_items)
            z = part_scores(kept, decay, batch)
            for share in TRANSITION_SHARE_GRID:
                for ease_share in ease_shares:
                    parts = [(z, share)] if ease_z is None else [(ease_z, ease_share), (z, share)]
                    ndcg = blend_ndcg(own, parts, targets, seen)
                    tick()
                    if ndcg > best["valid_ndcg"] + 1e-6:
                        best = {**best, "valid_ndcg": ndcg, "share": ease_share, "transition_l2": l2,
                                "transition_decay": decay, "transition_share": share, "transition_kept": kept,
                                "transition_z": z}
    if "transition_kept" not in best:
        return best
    transition = (best.pop("transition_z"), best["transition_share"])
    best.update(best_on_grids(own, batch, taken, targets, seen, cfg, best["valid_ndcg"], (transition,), tick))
    if best["share"] == 0.0:  # the transitions alone: no EASE part
        best = {k: v for k, v in best.items() if k not in ("l2", "decay", "kept")}
    return best


def fit_item_prior(model: PolyRecModel, data: ProtocolData, cfg: ModelConfig, progress: bool = False) -> dict[str, float]:
    """Attach the item prior, and the transition prior beside it, to ``model`` where a choice
    of their grids raises its validation NDCG@10; figures for metrics.json either way (λ,
    decay and share 0 for a part not kept; nothing where validation ranks no next item).
    ``progress``: a bar over the choices scored."""
    side = data.valid
    if not cfg.item_prior or "next_item" not in model.heads or side.next_users is None or not len(side.next_users):
        return {}
    n_items = model.spec.n_items
    pick = np.arange(len(side.next_users))
    choosing = choice_users(len(pick), n_items)
    if len(pick) > choosing:
        pick = np.sort(np.random.default_rng(data.seed).choice(pick, choosing, replace=False))
    users, targets = side.next_users[pick], side.next_items[pick]
    # One exclusion pattern for every choice (none where users take items again).
    seen = None if side.repeat_items else taken_matrix(side.history, n_items)[users]
    own = torch.from_numpy(score_users(model, side.history, users))
    base = ndcg_at(own.numpy(), targets, seen)
    own = standardised(own)  # the blend's model part, the same for every choice
    batch = collate(side.history, users, model.spec.config.max_history)  # what scoring reads
    taken = taken_matrix(data.train, n_items)
    ease_grid = len(L2_GRID) * len(DECAY_GRID) * len(SHARE_GRID)
    # At most: the transitions' grid with EASE's shares and 0, then EASE's grid again beside them.
    transition_grid = len(TRANSITION_L2_GRID) * len(TRANSITION_DECAY_GRID) * len(TRANSITION_SHARE_GRID) * (len(SHARE_GRID) + 1)
    total = ease_grid + (transition_grid + ease_grid if cfg.transition_prior else 0)
    with counter(f"next-item priors, protocol {data.protocol} seed {data.seed}", progress, total) as bar:
        best = best_on_grids(own, batch, taken, targets, seen, cfg, base, tick=bar.update)
        if cfg.transition_prior:
            best = best_with_transitions(own, batch, best, taken, data.train, targets, seen, cfg, bar.update)
    if "kept" in best:
        model.attach_item_prior(*best.pop("kept"), best["share"], best["decay"])
    if "transition_kept" in best:
        model.attach_item_prior(
            *best.pop("transition_kept"), best["transition_share"], best["transition_decay"], part="transition_prior"
        )
    none = {"l2": 0.0, "decay": 0.0, "share": 0.0}
    if cfg.transition_prior:
        none.update({"transition_l2": 0.0, "transition_decay": 0.0, "transition_share": 0.0})
    return {"valid_ndcg_alone": base, **none, **best}


def refit_item_prior(
    model: PolyRecModel, known: Histories, l2: float, cfg: ModelConfig, transition_l2: float = 0.0
) -> bool:
    """Refit ``model``'s kept priors with their chosen λ (``l2`` for EASE, ``transition_l2``
    for the transition prior) on ``known`` (the training histories with each user's
    validation item: what a test history holds), keeping their shares and decays; False
    where the model keeps no prior or ``cfg`` leaves the refit off. Call it only once
    validation has been scored: the refitted priors have read the validation items."""
    if not cfg.item_prior_refit:
        return False
    refitted = False
    prior, n_items = model.item_prior, model.spec.n_items
    if prior is not None and l2 > 0:  # l2 0: validation kept no EASE part
        sources, weights = ease_neighbours(taken_matrix(known, n_items), l2, cfg.item_prior_neighbors, cfg.item_prior_max_items)
        model.attach_item_prior(sources, weights, float(prior.share), float(prior.decay))
        refitted = True
    prior = model.transition_prior
    if prior is not None and transition_l2 > 0:
        decay = float(prior.decay)
        kept = transition_neighbours(known, n_items, transition_l2, decay, cfg.item_prior_neighbors, cfg.item_prior_max_items)
        model.attach_item_prior(*kept, float(prior.share), decay, part="transition_prior")
        refitted = True
    return refitted
