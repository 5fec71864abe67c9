"""Recipe: joint multi-task fine-tuning with AdamW and early stopping on validation.

Read top to bottom: build the model → loop over epochs of user batches (after each step,
update the moving average of the weights) → after each epoch, score the validation side of
the protocol's own tasks with the averaged weights → keep the best of them.
"""

from __future__ import annotations

import copy
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from ..config import PROTOCOL_TASKS, ModelConfig, TrainConfig
from ..models.item_neighbors import baseline
from ..models.item_raters import sample_raters
from ..models.polyrec import ModelSpec, PolyRecModel
from ..progress import bar as progress_bar
from .data_parallel import DataParallel
from .item_autoencoder_fit import (
    autoencoder_ratings,
    fit_engagement_autoencoder,
    fit_item_autoencoder,
    fit_user_autoencoder,
    validation_ratings,
)
from .item_prior_fit import fit_item_prior
from .join_fit import fit_history_profile, fit_join, fit_profile_join
from .losses import task_losses
from .protocol_data import ProtocolData
from .refit_head import SoftProfileTargets, refit_profile_head
from .sequences import HistoryBatch, collate, length_bucketed_batches
from .validation import NEXT_ITEM_SELECTION, validation_losses
from .weight_average import WeightAverage, ema_decay
from .weighting import LossWeighting, SharedParameters, make_weighting


@dataclass
class FitResult:
    model: PolyRecModel
    best_epoch: int
    train_seconds: float
    # task → {"train": [...], "valid": [...], "weight": [...], "gate": [[...], ...]} per epoch: losses,
    # the weighting strategy's effective λ, the mean gate over the experts in "gate_experts".
    curves: dict[str, dict[str, list]] = field(default_factory=dict)
    seconds_to_best: float = 0.0  # training time until the end of the best epoch (validation included)
    # The item autoencoder's validation RMSE and how it joins the heads (see item_autoencoder_fit.py, join_fit.py).
    autoencoder: dict[str, float] = field(default_factory=dict)
    # The item prior's choice on validation (see item_prior_fit.py); empty where none was fitted.
    item_prior: dict[str, float] = field(default_factory=dict)


class Objective(Protocol):
    """What one training step minimises: named losses, combined by the loss weighting."""

    # Losses besides the model's tasks, with their fixed λ (e.g. distillation's cluster term).
    extra_losses: dict[str, float]

    def losses(self, model: PolyRecModel, batch: HistoryBatch, fractions: tuple[float, float]) -> dict[str, torch.Tensor]: ...

    def parameters(self) -> list[torch.nn.Parameter]: ...  # trained beside the model, not saved with it

    def profile_refit_targets(self, data: ProtocolData) -> SoftProfileTargets | None: ...  # soft labels for the profile refit


@dataclass
class TaskObjective:
    """The tasks' own losses against the true labels (plain fine-tuning)."""

    profile_labels: dict[str, np.ndarray]
    sampled_negatives: int = 0
    extra_losses: dict[str, float] = field(default_factory=dict)

    def losses(self, model: PolyRecModel, batch: HistoryBatch, fractions: tuple[float, float]) -> dict[str, torch.Tensor]:
        return task_losses(model, batch, self.profile_labels, self.sampled_negatives, *fractions)

    def parameters(self) -> list[torch.nn.Parameter]:
        return []

    def profile_refit_targets(self, data: ProtocolData) -> SoftProfileTargets | None:
        return None


def build_model(
    data: ProtocolData,
    tasks: list[str],
    n_items: int,
    text_vectors: np.ndarray | None,
    cfg: ModelConfig,
    rating_range: tuple[float, float] | None = None,
    ctr_threshold: float | None = None,
    repeat_items: bool = False,
) -> PolyRecModel:
    spec = ModelSpec(
        n_items=n_items,
        tasks=list(tasks),
        n_rating_tokens=data.rating_tokens.n_tokens,
        global_mean=data.global_mean,
        text_dim=None if text_vectors is None else int(text_vectors.shape[1]),
        attribute_classes=data.attribute_classes,
        rating_levels=list(data.rating_tokens.levels),
        labels_only=data.rating_tokens.labels_only,
        rating_range=rating_range,
        ctr_threshold=ctr_threshold,
        repeat_items=repeat_items,
        n_users=data.train.n_users,
        user_text_dim=None if data.user_vectors is None else int(data.user_vectors.shape[1]),
        config=cfg,
    )
    rated = autoencoder_ratings(data) if cfg.item_autoencoder > 0 and validation_ratings(data) is not None else None
    if rated is not None:
        spec.autoencoder_ratings, spec.user_row_profile = len(rated[0]), True
        spec.rating_task_autoencoder = True
        spec.user_autoencoder = cfg.user_autoencoder
        spec.engagement_autoencoder = cfg.engagement_autoencoder
        spec.user_engagement_autoencoder = cfg.user_engagement_autoencoder
        spec.item_neighbors, spec.item_neighbors_kept = cfg.item_neighbors, cfg.item_neighbors_kept
        spec.text_neighbors = cfg.text_neighbors
    # The tf-idf profile view, where this protocol evaluates profile (its join needs validation users).
    spec.history_profile = cfg.history_profile and "profile" in PROTOCOL_TASKS[data.protocol] and "profile" in tasks
    spec.history_profile_weights = spec.history_profile
    users = None if data.user_vectors is None else torch.from_numpy(data.user_vectors)
    model = PolyRecModel(spec, None if text_vectors is None else torch.from_numpy(text_vectors), users)
    if model.item_raters is not None:
        # Raters come from the training side only: no valid or test rating is ever read.
        model.item_raters.set_raters(
            *sample_raters(data.train.items, data.train.tokens, n_items, cfg.item_raters, data.seed)
        )
    if rated is not None:
        for ae in model.autoencoders():
            ae.set_ratings(*rated)  # the training side's ratings only
        knn = [(v, vectors) for v, vectors in ((model.item_neighbors, None), (model.text_neighbors, text_vectors)) if v is not None]
        if knn:  # both kNN views read the same residuals: counted once
            users, items, ratings = rated
            mean, b_user, b_item = baseline(users, items, ratings, spec.n_users, spec.n_items)
            for view, vectors in knn:
                view.set_baseline(mean, b_item)  # a new user's residuals are counted from it
                view.set_residuals(users, items, ratings - (mean + b_user[users] + b_item[items]), vectors)
    return model


def selection_score(valid: dict[str, float], watched: list[str], weights: dict[str, float]) -> float:
    """Lower is better: Σ λ_t · validation loss_t, with next_item judged by 1 − NDCG@10 (its
    main metric) rather than its cross-entropy, which keeps falling with confidence alone."""
    total = 0.0
    for t in watched:
        if t == "next_item" and NEXT_ITEM_SELECTION in valid:
            total += weights.get(t, 1.0) * (1.0 - valid[NEXT_ITEM_SELECTION])
        elif t in valid:
            total += weights.get(t, 1.0) * valid[t]
    return total


def auxiliary_fractions(cfg: TrainConfig, protocol: str) -> tuple[float, float]:
    """Shares of history positions (rating+ctr, next_item) trained on under ``protocol``: all
    for the tasks it evaluates, ``cfg``'s fractions for the auxiliary ones."""
    main_tasks = PROTOCOL_TASKS[protocol]
    pair = 1.0 if "rating" in main_tasks or "ctr" in main_tasks else cfg.aux_fraction
    following = 1.0 if "next_item" in main_tasks else cfg.next_item_fraction_in_a  # only A lacks it
    return pair, following


def joint_optimizer(params: list[torch.nn.Parameter], cfg: TrainConfig) -> torch.optim.AdamW:
    """AdamW over the joint model's parameters, fused: one kernel updates them all, where the
    per-tensor loop spent 6 % of a protocol-B step on about sixty small tensors' bookkeeping."""
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def training_step(
    model: PolyRecModel,
    batch: HistoryBatch,
    objective: Objective,
    weighting: LossWeighting,
    shared: SharedParameters,
    opt: torch.optim.Optimizer,
    params: list[torch.nn.Parameter],
    fractions: tuple[float, float],
    parallel: DataParallel,
) -> dict[str, torch.Tensor]:
    """One optimiser step on ``batch``: the objective's losses, turned into gradients by
    ``weighting``, averaged over a process group (a no-op without one), clipped to a total
    norm of 1 (all tensors at once), applied. Returns the losses."""
    losses = objective.losses(model, batch, fractions)
    opt.zero_grad(set_to_none=True)
    weighting.backward(losses, shared)
    parallel.average_gradients(params)
    parallel.average(weighting.parameters())
    torch.nn.utils.clip_grad_norm_(params, 1.0, foreach=True)
    opt.step()
    return losses


def warmup_cosine(opt: torch.optim.Optimizer, warmup: int, total: int) -> torch.optim.lr_scheduler.LambdaLR:
    """Linear warm-up, then cosine decay to 0 at ``total`` steps: late epochs take small,
    low-noise steps, so the validation loss settles instead of jittering around its best."""

    def factor(step: int) -> float:
        if step < warmup:
            return (step + 1) / warmup
        progress = min(1.0, (step - warmup) / max(1, total - warmup))
        return 0.5 * (1.0 + math.cos(math.pi * progress))

    return torch.optim.lr_scheduler.LambdaLR(opt, factor)


@torch.no_grad()
def mean_gates(model: PolyRecModel, data: ProtocolData, max_users: int = 256) -> dict[str, list[float]]:
    """Per task, the expert layer's gate weights averaged over the real positions of (up to
    ``max_users``) validation users' histories; {} for an ungated (shared-bottom) model."""
    if not model.experts.gated:
        return {}
    model.eval()
    history = data.valid.history
    users = np.flatnonzero(history.lengths() > 0)[:max_users]
    enc = model.encode(collate(history, users, model.spec.config.max_history))
    m = enc.mask.unsqueeze(-1).float()  # (B, L, 1)
    return {t: ((g * m).sum((0, 1)) / m.sum()).tolist() for t, g in enc.gates.items()}


# How the progress bar names each validation figure.
SHOWN_AS = {"rating": "rating MSE", "ctr": "ctr logloss", "profile": "profile CE", "next_item": "next_item CE",
            NEXT_ITEM_SELECTION: "NDCG@10"}


def epoch_summary(valid: dict[str, float], watched: list[str], best_epoch: int) -> dict[str, str]:
    """What the progress bar shows after an epoch: the validation figures that select the
    model (next item's NDCG@10 rather than its loss) and the best epoch so far (from 1)."""
    shown = {}
    for task in watched:
        key = NEXT_ITEM_SELECTION if task == "next_item" and NEXT_ITEM_SELECTION in valid else task
        if key in valid:
            shown[f"valid {SHOWN_AS.get(key, key)}"] = f"{valid[key]:.4f}"
    return {**shown, "best epoch": str(best_epoch + 1)}


# An autoencoder fit as DataParallel.split deals it out: the modules it changes, and the fit,
# which returns its metrics.
FitJob = tuple[tuple[torch.nn.Module, ...], Callable[[], dict[str, float]]]


def autoencoder_fits(model: PolyRecModel, data: ProtocolData, progress: bool, cache: str | None) -> list[FitJob]:
    """The model's autoencoder fits, in fitting order: (the modules each fits, the fit, which
    returns its metrics). Each reads only its own modules (and the data), so processes of a
    data-parallel training can fit them apart (``DataParallel.split``)."""
    fits: list[FitJob] = []
    epochs = model.spec.config.autoencoder_epochs
    if model.item_autoencoder is not None:
        item_ae, user_ae, l2 = model.item_autoencoder, model.user_autoencoder, model.spec.config.item_autoencoder_l2

        def rating_views() -> dict[str, float]:  # the user autoencoder's mix reads the item one's fit
            metrics = {"valid_rmse": fit_item_autoencoder(item_ae, data, l2, progress, cache=cache, max_epochs=epochs)}
            if user_ae is not None:
                metrics.update(fit_user_autoencoder(model, data, l2, progress, cache=cache, max_epochs=epochs))
            return metrics

        fits.append(((item_ae,) if user_ae is None else (item_ae, user_ae), rating_views))
    for name, view in model.engagement_views().items():

        def engagement(name: str = name, view: torch.nn.Module = view) -> dict[str, float]:
            l2 = getattr(model.spec.config, f"{name}_autoencoder_l2")
            logloss = fit_engagement_autoencoder(
                view, data, l2, progress, cache=cache, name=name.replace("_", " "), max_epochs=epochs
            )
            return {} if logloss is None else {f"{name}_valid_logloss": logloss}

        fits.append(((view,), engagement))
    return fits


def finetune(
    model: PolyRecModel,
    data: ProtocolData,
    cfg: TrainConfig,
    progress: bool = True,
    weighting: LossWeighting | None = None,
    objective: Objective | None = None,
) -> FitResult:
    """Train ``model`` on ``data.train``; stop when the protocol's validation loss stops falling.

    ``objective`` gives each step's losses (default: the tasks' own, :class:`TaskObjective`);
    ``weighting`` turns them into gradients (default: ``cfg.weighting``'s strategy). Model
    selection always reads the tasks' true validation losses, whatever the objective.
    """
    torch.manual_seed(data.seed)
    start = time.perf_counter()  # the item autoencoder's fit counts as training time
    parallel = DataParallel()
    parallel.broadcast_state(model)  # one starting point, whatever each process built or loaded
    autoencoder: dict[str, float] = {}
    for metrics in parallel.split(autoencoder_fits(model, data, progress, cfg.fit_cache)):
        autoencoder.update(metrics)
    # Fitted: from here on only joined. Before this freeze they got zero gradients, which
    # AdamW's weight decay alone turned into steps (about 5 % smaller weights over a run),
    # wherever an objective read the joined outputs while the joins were still off
    # (distillation's unseen items) or a weighting set a gradient on every shared
    # parameter (PCGrad).
    for fitted in model.autoencoders():
        fitted.requires_grad_(False)
    objective = objective or TaskObjective(data.profile_labels, cfg.sampled_negatives)
    if weighting is None:
        names = list(model.heads) + list(objective.extra_losses)
        lambdas = {**cfg.loss_weights, **objective.extra_losses}
        weighting = make_weighting(cfg.weighting, names, lambdas, data.protocol, data.seed)
    shared = SharedParameters(model.shared_parameters(), model.last_shared_layer())
    rng = np.random.default_rng(data.seed)  # the batch order: the same in every process
    # What each process draws while making its batches (crops, shuffles): its own stream in a
    # process group, so that the shared batch order never depends on which batches it took.
    batch_rng = np.random.default_rng([data.seed, parallel.rank]) if parallel.active else rng
    if parallel.active:
        torch.manual_seed(data.seed + parallel.rank)  # dropout masks differ between processes
    params = [p for p in model.parameters() if p.requires_grad] + objective.parameters()
    opt = joint_optimizer(params, cfg)
    lengths = data.train.lengths()
    users = np.flatnonzero(lengths > 1)  # a one-item history has no target to learn from
    steps_per_epoch = parallel.steps(-(-len(users) // cfg.batch_size))
    sched = warmup_cosine(opt, warmup=steps_per_epoch, total=cfg.epochs * steps_per_epoch)
    shuffle = cfg.shuffle_history_in_a and data.protocol == "A"
    fractions = auxiliary_fractions(cfg, data.protocol)
    watched = [t for t in PROTOCOL_TASKS[data.protocol] if t in model.heads]
    refit_profile = "profile" in watched and len(watched) > 1
    if refit_profile:
        watched.remove("profile")  # selected afterwards on its own (see refit_head.py)
    curves: dict[str, dict[str, list[float]]] = {}
    best, best_epoch, bad_epochs = float("inf"), -1, 0
    seconds_to_best = 0.0
    best_state = copy.deepcopy(model.state_dict())
    averaged = WeightAverage(model, ema_decay(cfg.ema_epochs, steps_per_epoch, cfg.epochs))
    bar = progress_bar(range(cfg.epochs), f"protocol {data.protocol} seed {data.seed}", progress)
    for epoch in bar:
        model.train()
        sums: dict[str, float] = {}
        batches = length_bucketed_batches(users, lengths, cfg.batch_size, rng)
        if parallel.active:  # a batch's cost: its users times their padded history length
            window = model.spec.config.max_history
            batches = parallel.shard(batches, [len(b) * min(window, int(lengths[b].max())) for b in batches])
        for batch_users in batches:
            batch = collate(data.train, batch_users, model.spec.config.max_history, batch_rng, shuffle)
            losses = training_step(model, batch, objective, weighting, shared, opt, params, fractions, parallel)
            sched.step()
            averaged.update()
            for k, v in losses.items():  # in a process group: this process's share of the batches
                sums[k] = sums.get(k, 0.0) + float(v.detach()) / len(batches)
        with averaged.applied():  # judged, and kept, with the averaged weights
            valid = validation_losses(model, data, parallel)
            gates = mean_gates(model, data)
            score = selection_score(valid, watched, cfg.loss_weights)
            improved = parallel.agree(score < best - 1e-4)
            if improved:
                best_state = copy.deepcopy(model.state_dict())
        for k, v in sums.items():
            curves.setdefault(k, {"train": [], "valid": []})["train"].append(v)
        for k, v in valid.items():
            if k == NEXT_ITEM_SELECTION:
                curves.setdefault("next_item", {"train": [], "valid": []}).setdefault("valid_ndcg@10", []).append(v)
            else:
                curves.setdefault(k, {"train": [], "valid": []})["valid"].append(v)
        for k, w in weighting.weights().items():
            curves.setdefault(k, {"train": [], "valid": []}).setdefault("weight", []).append(w)
        for k, g in gates.items():
            curves[k].setdefault("gate", []).append(g)
            curves[k]["gate_experts"] = model.experts.expert_names(k)
        if improved:
            best, best_epoch, bad_epochs = score, epoch, 0
            seconds_to_best = time.perf_counter() - start
        else:
            bad_epochs += 1
        bar.set_postfix(epoch_summary(valid, watched, best_epoch))
        if parallel.agree(bad_epochs >= cfg.patience):
            break
    model.load_state_dict(best_state)
    if refit_profile:
        refit_profile_head(model, data, cfg, soft=objective.profile_refit_targets(data))
    autoencoder.update(fit_join(model, data))
    if model.user_row_profile is not None:
        kept = fit_profile_join(model, data)
        autoencoder.update({f"profile_{name}": float(name in kept) for name in model.user_row_profile.names})
    if model.history_profile is not None:
        kept = fit_history_profile(model, data)
        autoencoder.update({f"profile_history_{name}": float(name in kept) for name in model.history_profile.names})
    prior = fit_item_prior(model, data, model.spec.config, progress)
    model.eval()
    return FitResult(model, best_epoch, time.perf_counter() - start, curves, seconds_to_best, autoencoder, prior)
