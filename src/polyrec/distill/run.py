"""Recipe for `polyrec distill`: the student's config on the teacher's data, tasks,
protocols and seeds → the ordinary `polyrec run` pipeline with the distillation objective
(the student of each protocol and seed learns from the teacher of that same split)."""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Callable

from ..config import RunConfig
from ..models.io import trained_seeds
from ..pipeline import RunResult, run
from .teacher import teacher_config


def student_config(
    teacher: str | Path,
    student: RunConfig | None = None,
    protocols: list[str] | None = None,
    seeds: list[int] | None = None,
) -> RunConfig:
    """``student`` (default: polyrec's defaults) with the teacher's data, tasks, protocols and
    seeds; ``protocols`` / ``seeds`` may narrow them to ones the teacher was trained on."""
    tcfg = teacher_config(teacher)
    cfg = copy.deepcopy(student) if student is not None else RunConfig()
    cfg.data, cfg.tasks = copy.deepcopy(tcfg.data), list(tcfg.tasks)
    cfg.model.rating_levels = tcfg.model.rating_levels  # the same rating tokens as the teacher's inputs
    # By default the protocols the teacher has models for: its run may have skipped one that
    # the data could not support (e.g. protocol B where no user has three interactions).
    with_models = [p for p in tcfg.protocols if trained_seeds(teacher, p)]
    cfg.protocols, cfg.seeds = list(protocols or with_models or tcfg.protocols), list(seeds or tcfg.seeds)
    for p in cfg.protocols:
        trained = trained_seeds(teacher, p) if p in tcfg.protocols else []
        missing = [s for s in cfg.seeds if s not in trained]
        if missing:
            raise ValueError(f"{teacher}: the teacher has no model for protocol {p} with seeds {missing} (it has {trained})")
    cfg.model.name = "polyrec"
    cfg.distill.teacher = str(teacher)
    return cfg


def distill(
    teacher: str | Path,
    out: str | Path,
    student: RunConfig | None = None,
    progress: bool = True,
    log: Callable[[str], None] = print,
    protocols: list[str] | None = None,
    seeds: list[int] | None = None,
    baselines: bool = True,
) -> RunResult:
    """Distil the run folder ``teacher`` into ``student``; write the run folder ``out``
    (the same files and ``metrics.json`` keys as `polyrec run`, plus ``distill.<P>.*``)."""
    cfg = student_config(teacher, student, protocols, seeds)
    log(f"distilling {teacher} into a student (dim {cfg.model.dim}, {cfg.model.layers} layer(s), text {cfg.text.encoder if cfg.text.enabled else 'off'})")
    return run(cfg, out, progress=progress, log=log, baselines=baselines)
