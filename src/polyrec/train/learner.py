"""polyrec's own model as a learner: build → fine-tune → predict → save."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np

from ..eval.predict import predict_side, score_users
from ..learners import FitInfo, LearnerContext, users_per_second
from ..models.io import save_model
from ..models.polyrec import PolyRecModel
from .finetune import Objective, build_model, finetune
from .item_prior_fit import refit_item_prior
from .pretrain import init_from_pretraining
from .protocol_data import EvalSide, ProtocolData
from .sequences import Histories


def count_parameters(model: PolyRecModel) -> int:
    """Learned parameters: the autoencoders count (fitted before fine-tuning, then frozen);
    the language model's vectors are a buffer, not counted."""
    return sum(x.numel() for x in model.parameters())


class PolyRecLearner:
    name = "polyrec"

    def __init__(self, ctx: LearnerContext):
        self.ctx = ctx
        self.tasks = list(ctx.tasks)
        self.model: PolyRecModel | None = None
        self.item_prior_l2 = 0.0  # the λ validation chose for the item prior (0: none kept)
        self.transition_prior_l2 = 0.0  # and for the transition prior beside it

    def fit(self, data: ProtocolData) -> FitInfo:
        c = self.ctx
        tasks = c.cfg.train.tasks_for(self.tasks, data.protocol)
        self.model = build_model(data, tasks, c.n_items, c.text_vectors, c.cfg.model, c.rating_range, c.cfg.data.ctr_threshold,
                                 c.cfg.data.repeat_items)  # fmt: skip
        # Off by default: `--pretrain` pretrains on this split's training side, `--init` loads.
        pretrain_seconds = init_from_pretraining(self.model, data, c.cfg, c.text_vectors, c.progress, c.item_texts)
        start = time.perf_counter()
        objective, metrics = self.objective(data)
        prepare_seconds = time.perf_counter() - start  # counted as training time
        fit = finetune(self.model, data, c.cfg.train, c.progress, objective=objective)
        metrics.update({f"autoencoder.{data.protocol}.{k}": v for k, v in fit.autoencoder.items()})
        metrics.update({f"item_prior.{data.protocol}.{k}": v for k, v in fit.item_prior.items()})
        self.item_prior_l2 = float(fit.item_prior.get("l2", 0.0))
        self.transition_prior_l2 = float(fit.item_prior.get("transition_l2", 0.0))
        # Per protocol: the models differ where one has the item autoencoder (protocol A only).
        metrics[f"model.{data.protocol}.trainable_params"] = float(count_parameters(self.model))
        return FitInfo(
            fit.train_seconds + prepare_seconds, fit.best_epoch, fit.seconds_to_best + prepare_seconds,
            fit.curves, pretrain_seconds, metrics,
        )

    def objective(self, data: ProtocolData) -> tuple[Objective | None, dict[str, float]]:
        """What fine-tuning minimises (None: the tasks' own losses) and figures for
        metrics.json; subclasses (distillation) put their objective here."""
        return None, {}

    def predict(self, data: ProtocolData, side: EvalSide) -> dict:
        return predict_side(self.model, data, side)

    def before_test(self, data: ProtocolData) -> dict[str, float]:
        """The next-item priors refitted, with the λ validation chose, on the histories the test
        side reads (training plus each user's validation item); the saved model keeps them."""
        config = self.model.spec.config
        if not refit_item_prior(self.model, data.test.history, self.item_prior_l2, config, self.transition_prior_l2):
            return {}
        return {f"item_prior.{data.protocol}.refit": 1.0}

    def save(self, folder: Path) -> None:
        save_model(self.model, folder)

    def cost(self, data: ProtocolData) -> dict[str, float]:
        model, history = self.model, data.test.history
        cost = {"model.trainable_params": float(count_parameters(model))}
        if "next_item" in model.heads:  # a model without it (e.g. `--tasks rating`) scores no catalogue
            cost["model.users_per_s"] = catalogue_speed(model, history)
        return cost


def catalogue_speed(model: PolyRecModel, history: Histories) -> float:
    """Users with a history scored per second against the whole catalogue (batch inference)."""
    users = np.flatnonzero(history.lengths() > 0)
    return users_per_second(lambda u: score_users(model, history, u), users)
