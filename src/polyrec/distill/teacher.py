"""The teacher: a finished `polyrec run` folder with a model per protocol and seed."""

from __future__ import annotations

from pathlib import Path

from ..config import RunConfig
from ..models.io import load_model, trained_seeds
from ..models.polyrec import PolyRecModel
from ..run_loader import seed_model_folder


def teacher_config(run: str | Path) -> RunConfig:
    path = Path(run) / "config.yaml"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; is {run} a finished `polyrec run` folder?")
    cfg = RunConfig.load(path)
    if cfg.model.name != "polyrec":
        raise ValueError(f"{run}: a '{cfg.model.name}' run cannot teach; the teacher must be a polyrec model")
    return cfg


def load_teacher(run: str | Path, protocol: str, seed: int) -> PolyRecModel:
    """The teacher's model trained on ``protocol``'s split for ``seed`` (frozen, eval mode)."""
    teacher_config(run)  # a clear error if ``run`` is not a polyrec run
    if seed not in trained_seeds(run, protocol):
        raise ValueError(
            f"{run}: the teacher has no model for protocol {protocol}, seed {seed} "
            f"(it has seeds {trained_seeds(run, protocol)}); train it with that seed first"
        )
    model = load_model(seed_model_folder(Path(run), protocol, seed))
    for p in model.parameters():
        p.requires_grad_(False)
    return model.eval()


def check_compatible(teacher: PolyRecModel, student: PolyRecModel, where: str) -> None:
    """Teacher and student must read the same catalogue, rating tokens and attributes."""
    t, s = teacher.spec, student.spec
    for field in ("n_items", "n_rating_tokens", "attribute_classes", "rating_levels"):
        if getattr(t, field) != getattr(s, field):
            raise ValueError(f"{where}: the teacher's {field} differs from the student's; distil on the teacher's own data and config")
    if t.config.max_history < s.config.max_history:
        raise ValueError(f"{where}: the teacher reads at most {t.config.max_history} items, the student {s.config.max_history}")
