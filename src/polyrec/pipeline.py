"""Recipe for `polyrec run`: data → text features → per protocol and seed: fine-tune,
evaluate, baselines → aggregate over seeds → report and saved model."""

from __future__ import annotations

import shutil
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .config import PROTOCOL_TASKS, RunConfig
from .data.loader import load_dataset
from .data.tables import Dataset
from .eval.baseline_runs import baseline_metrics
from .eval.evaluate import ProfilePool, side_metrics
from .eval.prediction_store import SIDES, load_predictions, save_predictions
from .eval.report import write_report
from .learners import LearnerContext, make_learner
from .recommender import save_tables
from .run_loader import MODEL_DIR, seed_model_folder
from .run_progress import SeedRecords
from .text import encode_texts
from .train.protocol_data import prepare


@dataclass
class RunResult:
    metrics: dict[str, float]
    notes: list[str] = field(default_factory=list)
    out: Path | None = None


def active_tasks(ds: Dataset, wanted: list[str]) -> tuple[list[str], list[str]]:
    """The requested tasks that the data has labels for, and a note for each one switched off."""
    why_off = {
        "rating": None if ds.has_rating else "no ratings in the data",
        "ctr": None if (ds.has_rating or ds.has_label) else "no ratings and no label column",
        "profile": None if ds.attributes else "no user attributes",
        "next_item": None,
    }
    tasks, notes = [], []
    for t in wanted:
        if t not in why_off:
            raise ValueError(f"unknown task '{t}'; tasks: {', '.join(why_off)}")
        if why_off[t] is None:
            tasks.append(t)
        else:
            notes.append(f"task '{t}' is off: {why_off[t]}")
    return tasks, notes


def load_configured_dataset(cfg: RunConfig) -> Dataset:
    return load_dataset(None, cfg.data.path) if cfg.data.path else load_dataset(cfg.data.dataset)


def item_texts(ds: Dataset) -> list[str]:
    """Each item's text, in item-index order (what the sentence encoder reads)."""
    return ds.items["text"].astype(str).tolist()


def item_text_vectors(ds: Dataset, cfg: RunConfig, progress: bool) -> np.ndarray | None:
    if not cfg.text.enabled:
        return None
    return encode_texts(item_texts(ds), cfg.text.encoder, cfg.text.cache_dir, cfg.text.batch_size, progress)


def aggregate(per_seed: list[dict[str, float]]) -> dict[str, float]:
    """Mean under each key and, with several seeds, the sample std under ``<key>.std``."""
    keys = sorted({k for m in per_seed for k in m})
    out: dict[str, float] = {}
    for k in keys:
        vals = np.array([m[k] for m in per_seed if k in m and np.isfinite(m[k])], dtype=float)
        if len(vals) == 0:
            continue
        out[k] = float(vals.mean())
        if len(per_seed) > 1:
            out[f"{k}.std"] = float(vals.std(ddof=1)) if len(vals) > 1 else 0.0
    return out


def run(
    cfg: RunConfig,
    out: str | Path,
    progress: bool = True,
    log: Callable[[str], None] = print,
    baselines: bool = True,
    resume: bool = True,
) -> RunResult:
    """Train and evaluate under each protocol and seed; write the run folder ``out``.

    ``baselines=False`` skips the simple baselines printed beside polyrec (studies that
    train many configurations on the same splits need them once, not per configuration).
    Seeds finished before in ``out`` with the same configuration and data are read back, not
    retrained (``run_progress.py``): a stopped run resumes, and a run can grow by seeds;
    ``resume=False`` (`polyrec run --no-resume`) trains every seed again."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    ds = load_configured_dataset(cfg)
    log(f"data: {ds.name}: {ds.n_users} users, {ds.n_items} items, {len(ds.interactions)} interactions")
    tasks, task_notes = active_tasks(ds, cfg.tasks)
    notes = list(ds.notes)
    # The loader may already have said why a task is off; say it once.
    notes += [n for n in task_notes if not any(n.split(":")[0] in m for m in notes)]
    protocols = [p for p in cfg.protocols if any(t in tasks for t in PROTOCOL_TASKS[p])]
    for p in cfg.protocols:
        if p not in protocols:
            notes.append(f"protocol {p} skipped: none of its tasks ({', '.join(PROTOCOL_TASKS[p])}) is on")
    text_vectors = item_text_vectors(ds, cfg, progress) if cfg.model.name == "polyrec" else None
    texts = item_texts(ds) if text_vectors is not None else None
    rating_range = ds.rating_range

    per_seed: list[dict[str, float]] = []
    # Test folds of several seeds are disjoint: pooling their users gives a steadier metric.
    pool = ProfilePool()
    curves: dict[str, dict] = {}
    cost: dict[str, float] = {}
    records = SeedRecords(out, cfg, ds, baselines)
    for i, seed in enumerate(cfg.seeds):
        done = records.load(seed) if resume else None
        if done is not None:
            log(f"seed {seed}: finished before, read back from {out}")
            per_seed.append(done["metrics"])
            notes.extend(n for n in done["notes"] if n not in notes)
            for p in protocols:  # the pooled profile metrics read every seed's test predictions
                data = prepare(ds, p, seed, cfg.data.ctr_threshold, cfg.model.rating_levels, "profile" in tasks)
                pool.add(data, load_predictions(out, p, seed, "test"))
            if i == 0:
                curves, cost = done["curves"], done["cost"]
            continue
        metrics: dict[str, float] = {}
        seed_curves: dict[str, dict] = {}
        last_fit = None
        for p in protocols:
            data = prepare(ds, p, seed, cfg.data.ctr_threshold, cfg.model.rating_levels, "profile" in tasks)
            notes.extend(n for n in data.notes if n not in notes)
            torch.manual_seed(seed)  # the seed decides the initial weights too, not the process's history
            learner = make_learner(cfg.model.name, LearnerContext(
                cfg, tasks, ds.n_items, text_vectors, rating_range, seed, progress, texts
            ))
            if not set(learner.tasks) & set(PROTOCOL_TASKS[p]):
                continue  # e.g. a rating baseline under the next-item protocol
            fit = learner.fit(data)
            epoch = f"best epoch {fit.best_epoch + 1}, " if fit.best_epoch is not None else ""
            log(f"{learner.name}: protocol {p} seed {seed}: {epoch}{fit.train_seconds:.0f} s")
            preds = {side: learner.predict(data, getattr(data, side)) for side in SIDES}
            for side, pred in preds.items():
                save_predictions(out, p, seed, side, pred)
            metrics.update(side_metrics(data, data.test, preds["test"], rating_range))
            if learner.name == "polyrec" and baselines:
                metrics.update(baseline_metrics(data, ds.n_items, tasks, rating_range))
            metrics["model.train_seconds"] = metrics.get("model.train_seconds", 0.0) + fit.train_seconds
            metrics[f"model.{p}.train_seconds"] = fit.train_seconds
            if fit.pretrain_seconds is not None:
                metrics[f"model.{p}.pretrain_seconds"] = fit.pretrain_seconds
            if fit.seconds_to_best is not None:
                metrics[f"model.{p}.seconds_to_best"] = fit.seconds_to_best
            metrics.update(fit.metrics)
            pool.add(data, preds["test"])
            learner.save(seed_model_folder(out, p, seed))
            seed_curves[p] = fit.curves
            last_fit = (learner, data)  # the model whose cost is reported: the last protocol's
        per_seed.append(metrics)
        # Timed once per seed, not per protocol; the run reports its first seed's.
        seed_cost = last_fit[0].cost(last_fit[1]) if last_fit is not None else {}
        records.save(seed, {"metrics": metrics, "curves": seed_curves, "cost": seed_cost, "notes": notes})
        if i == 0:
            curves, cost = seed_curves, seed_cost

    for p in protocols:  # the served model: the first seed's (whichever process trained it)
        first = seed_model_folder(out, p, cfg.seeds[0])
        if first.is_dir():
            shutil.copytree(first, out / MODEL_DIR / p, dirs_exist_ok=True)
    result = aggregate(per_seed)
    result.update(cost)
    result.update(pool.metrics())
    cfg.save(out / "config.yaml")
    save_tables(ds, out)
    write_report(out, cfg, ds, tasks, protocols, result, curves, notes)
    return RunResult(result, notes, out)
