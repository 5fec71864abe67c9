"""A polyrec student trained against a teacher run: same model, same pipeline, the
distillation objective in place of the tasks' own losses."""

from __future__ import annotations

import time

from ..train.learner import PolyRecLearner
from ..train.protocol_data import ProtocolData
from .clusters import choose_clusters, user_representations
from .objective import DistillObjective
from .teacher import check_compatible, load_teacher


class DistilledLearner(PolyRecLearner):
    """Fits, saves, predicts and costs like :class:`PolyRecLearner`: a distilled student is an
    ordinary polyrec model (the teacher and the cluster head are not part of it); only what
    fine-tuning minimises differs."""

    def objective(self, data: ProtocolData) -> tuple[DistillObjective, dict[str, float]]:
        c, dcfg, p = self.ctx, self.ctx.cfg.distill, data.protocol
        teacher = load_teacher(dcfg.teacher, p, data.seed)
        check_compatible(teacher, self.model, f"{dcfg.teacher} (protocol {p}, seed {data.seed})")
        start = time.perf_counter()
        clusters = None
        metrics: dict[str, float] = {}
        if dcfg.weights_for(p).get("cluster", 0.0) > 0:
            reps = user_representations(teacher, data.train)
            clusters = choose_clusters(reps, data.train.lengths() > 0, dcfg.clusters, data.seed)
            metrics[f"distill.{p}.clusters"] = float(clusters.k)
            metrics[f"distill.{p}.silhouette"] = clusters.silhouette[clusters.k]
        metrics[f"distill.{p}.cluster_seconds"] = time.perf_counter() - start
        objective = DistillObjective(teacher, data.profile_labels, dcfg, p, c.cfg.model.dim, clusters, c.cfg.train.sampled_negatives)
        return objective, metrics
