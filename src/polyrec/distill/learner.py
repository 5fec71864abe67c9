"""A polyrec student trained against a teacher run: same model, same pipeline, the
distillation objective in place of the tasks' own losses."""

from __future__ import annotations

import time

from ..learners import FitInfo
from ..train.finetune import build_model, finetune
from ..train.learner import PolyRecLearner
from ..train.pretrain import init_from_pretraining
from ..train.protocol_data import ProtocolData
from .clusters import choose_clusters, user_representations
from .objective import DistillObjective
from .teacher import check_compatible, load_teacher


class DistilledLearner(PolyRecLearner):
    """Saves, predicts and costs like :class:`PolyRecLearner`: a distilled student is an
    ordinary polyrec model (the teacher and the cluster head are not part of it)."""

    def fit(self, data: ProtocolData) -> FitInfo:
        c, dcfg = self.ctx, self.ctx.cfg.distill
        self.model = build_model(data, self.tasks, c.n_items, c.text_vectors, c.cfg.model, c.rating_range, c.cfg.data.ctr_threshold)
        teacher = load_teacher(dcfg.teacher, data.protocol, data.seed)
        check_compatible(teacher, self.model, f"{dcfg.teacher} (protocol {data.protocol}, seed {data.seed})")
        pretrain_seconds = init_from_pretraining(self.model, data, c.cfg, c.text_vectors, c.progress)
        start = time.perf_counter()
        clusters = None
        metrics: dict[str, float] = {}
        if dcfg.weights.get("cluster", 0.0) > 0:
            reps = user_representations(teacher, data.train)
            clusters = choose_clusters(reps, data.train.lengths() > 0, dcfg.clusters, data.seed)
            metrics[f"distill.{data.protocol}.clusters"] = float(clusters.k)
            metrics[f"distill.{data.protocol}.silhouette"] = clusters.silhouette[clusters.k]
        cluster_seconds = time.perf_counter() - start
        objective = DistillObjective(
            teacher, data.profile_labels, dcfg, c.cfg.model.dim, clusters, c.cfg.train.sampled_negatives
        )
        fit = finetune(self.model, data, c.cfg.train, c.progress, objective=objective)
        metrics[f"distill.{data.protocol}.cluster_seconds"] = cluster_seconds
        return FitInfo(
            fit.train_seconds + cluster_seconds, fit.best_epoch, fit.seconds_to_best + cluster_seconds,
            fit.curves, pretrain_seconds, metrics,
        )
