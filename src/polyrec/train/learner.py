"""polyrec's own model as a learner: build → fine-tune → predict → save."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from ..eval.predict import predict_side, score_users
from ..learners import FitInfo, LearnerContext, users_per_second
from ..models.io import save_model
from ..models.polyrec import PolyRecModel
from .finetune import build_model, finetune
from .pretrain import init_from_pretraining
from .protocol_data import EvalSide, ProtocolData


class PolyRecLearner:
    name = "polyrec"

    def __init__(self, ctx: LearnerContext):
        self.ctx = ctx
        self.tasks = list(ctx.tasks)
        self.model: PolyRecModel | None = None

    def fit(self, data: ProtocolData) -> FitInfo:
        c = self.ctx
        self.model = build_model(data, self.tasks, c.n_items, c.text_vectors, c.cfg.model, c.rating_range, c.cfg.data.ctr_threshold)
        # Off by default: `--pretrain` pretrains on this split's training side, `--init` loads.
        pretrain_seconds = init_from_pretraining(self.model, data, c.cfg, c.text_vectors, c.progress)
        fit = finetune(self.model, data, c.cfg.train, c.progress)
        return FitInfo(fit.train_seconds, fit.best_epoch, fit.seconds_to_best, fit.curves, pretrain_seconds)

    def predict(self, data: ProtocolData, side: EvalSide) -> dict:
        return predict_side(self.model, data, side)

    def save(self, folder: Path) -> None:
        save_model(self.model, folder)

    def cost(self, data: ProtocolData) -> dict[str, float]:
        model, history = self.model, data.test.history
        users = np.flatnonzero(history.lengths() > 0)
        cost = {"model.trainable_params": float(sum(x.numel() for x in model.parameters() if x.requires_grad))}
        if "next_item" in model.heads:  # a model without it (e.g. `--tasks rating`) scores no catalogue
            cost["model.users_per_s"] = users_per_second(lambda u: score_users(model, history, u), users)
        return cost
