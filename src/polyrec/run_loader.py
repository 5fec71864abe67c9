"""``polyrec.load``: any run folder — polyrec's model, a baseline, an ensemble — as one
object that recommends, predicts and profiles by original ids."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from .recommender_base import RecommenderBase

ITEMS, USERS, INTERACTIONS = "items.parquet", "users.parquet", "interactions.parquet"
TEXT_FIELDS = "text_fields"  # key in the items file's attrs: the catalogue's text fields, in order
# seeds/<P>/seed<k>/: each seed's model (a later stage, distillation, needs the model of each
# seed's own split); model/<P>/: a copy of the first seed's, the one a run serves.
MODEL_DIR, SEED_MODELS_DIR = "model", "seeds"
LEARNER_FILE = "learner.yaml"  # in a model folder: a baseline's (baselines/learners.py), not polyrec's model


def seed_model_folder(run: Path, protocol: str, seed: int) -> Path:
    """Where a run keeps its model for ``protocol`` and ``seed``."""
    return run / SEED_MODELS_DIR / protocol / f"seed{seed}"


def load_tables(path: Path) -> list[pd.DataFrame]:
    """The run's items, users and interactions (see ``recommender.save_tables``)."""
    for name in (ITEMS, USERS, INTERACTIONS):
        if not (path / name).is_file():
            raise FileNotFoundError(f"{path / name}: missing; is {path} a run folder written by polyrec?")
    return [pd.read_parquet(path / f) for f in (ITEMS, USERS, INTERACTIONS)]


def load_run(path: str | Path) -> RecommenderBase:
    rec = _load_run(Path(path))
    config = Path(path) / "config.yaml"
    if config.is_file():  # an export has none: its manifest carries the setting
        from .config import RunConfig

        rec.repeat_items = RunConfig.load(config).data.repeat_items
    return rec


def _load_run(path: Path) -> RecommenderBase:
    if not path.is_dir():
        raise FileNotFoundError(f"{path}: no such run folder")
    from .export.format import MANIFEST

    if (path / MANIFEST).is_file():  # `polyrec export`: read without torch
        from .export.reader import ExportedRecommender

        return ExportedRecommender.load(path)
    from .ensemble.recommender import ENSEMBLE_FILE, EnsembleRecommender

    if (path / ENSEMBLE_FILE).is_file():
        return EnsembleRecommender.load(path)
    folders = {p.name: p for p in sorted((path / MODEL_DIR).glob("*")) if p.is_dir()}
    if folders and all((f / LEARNER_FILE).is_file() for f in folders.values()):
        from .baselines.recommender import BaselineRecommender

        return BaselineRecommender(folders, *load_tables(path))
    from .recommender import Recommender

    return Recommender.load(path)
