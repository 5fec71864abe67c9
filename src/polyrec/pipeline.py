"""Recipe for `polyrec run`: data → text features → per protocol and seed: fine-tune,
evaluate, baselines → aggregate over seeds → report and saved model."""

from __future__ import annotations

import shutil
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np
import torch

from .config import PROTOCOL_TASKS, RunConfig
from .data.loader import load_dataset
from .data.splits import LEAVE_ONE_OUT_MIN, N_PROFILE_FOLDS, protocol_b, repeated_held_out
from .data.tables import Dataset
from .eval.evaluate import ProfilePool
from .eval.prediction_store import load_predictions
from .eval.report import write_report
from .process_group import from_rank_zero, process_group
from .recommender import save_tables
from .run_loader import MODEL_DIR, seed_model_folder
from .run_jobs import JobOutcome, RunInputs, run_jobs
from .run_progress import SeedRecords
from .text import encode_texts
from .text.fields import mean_of_fields


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
        "profile": _why_profile_is_off(ds),
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


def run_plan(ds: Dataset, cfg: RunConfig) -> tuple[list[str], list[str], list[str]]:
    """What a run of ``cfg`` trains on ``ds`` — its tasks and protocols — and the notes that
    say what the data lacks and what was left out because of it (the report's notes)."""
    tasks, task_notes = active_tasks(ds, cfg.tasks)
    notes = list(ds.notes)
    # The loader may already have said why a task is off; say it once.
    notes += [n for n in task_notes if not any(n.split(":")[0] in m for m in notes)]
    if "ctr" in tasks and not ds.has_label:
        notes.append(ctr_label_note(ds, ds.ctr_threshold(cfg.data.ctr_threshold)))
    if hint := large_catalogue_note(ds.n_items, cfg):
        notes.append(hint)
    protocols, skipped = runnable_protocols(ds, cfg.protocols, tasks)
    if "B" in protocols:
        notes += repeats_notes(ds, cfg.data.repeat_items)
    return tasks, protocols, notes + skipped


def repeats_notes(ds: Dataset, repeat_items: bool) -> list[str]:
    """What protocol B's ranking does with the user's history, where it matters: how many
    held-out items the user took before, and whether they can be found."""
    split = protocol_b(ds)
    test, valid = repeated_held_out(ds, split)
    counts = (
        f"{test} of {len(split.test)} test items and {valid} of {len(split.valid)} validation items "
        "repeat an item of the user's history"
    )
    if repeat_items:
        return [f"protocol B ranks the whole catalogue, the user's history included (data.repeat_items), "
                f"not PROTOCOLS.md's ranking without it; {counts}"]  # fmt: skip
    if not (test or valid):
        return []
    return [f"protocol B: {counts}; history is excluded from the ranking, so they are misses for every model "
            "(data.repeat_items: true ranks it)"]  # fmt: skip


def trainable(ds: Dataset, wanted: list[str]) -> tuple[list[str], list[str]]:
    """The tasks of ``wanted`` that the data has labels for and whose protocol it can split,
    and those protocols (a study plans its configurations from these)."""
    tasks, _ = active_tasks(ds, wanted)
    protocols, _ = runnable_protocols(ds, list(PROTOCOL_TASKS), tasks)
    return [t for t in tasks if any(t in PROTOCOL_TASKS[p] for p in protocols)], protocols


def _why_profile_is_off(ds: Dataset) -> str | None:
    if not ds.attributes:
        return "no user attributes"
    known = int(ds.users[ds.attributes].notna().any(axis=1).sum())
    if known < N_PROFILE_FOLDS:
        return f"{known} users with attributes, fewer than the {N_PROFILE_FOLDS} user folds it is tested on"
    return None


def runnable_protocols(ds: Dataset, wanted: list[str], tasks: list[str]) -> tuple[list[str], list[str]]:
    """The requested protocols that have a task on and data to split, and a note for each
    one skipped."""
    why_off = {
        p: f"none of its tasks ({', '.join(PROTOCOL_TASKS[p])}) is on"
        for p in wanted
        if not any(t in tasks for t in PROTOCOL_TASKS[p])
    }
    if "B" in wanted and "B" not in why_off and np.bincount(ds.interactions["user"]).max(initial=0) < LEAVE_ONE_OUT_MIN:
        why_off["B"] = f"no user has the {LEAVE_ONE_OUT_MIN} interactions it needs (training, validation, test)"
    return [p for p in wanted if p not in why_off], [f"protocol {p} skipped: {why}" for p, why in why_off.items()]


def ctr_label_note(ds: Dataset, threshold: float) -> str:
    """What the ctr task learns where the data has ratings but no label column: say the
    threshold and how many interactions it makes positive, on whatever scale the ratings are."""
    ratings = ds.interactions["rating"].to_numpy(dtype=np.float64)
    rated = ratings[~np.isnan(ratings)]
    share = float(np.mean(rated >= threshold))
    which = "interactions" if len(rated) == len(ratings) else "rated interactions"
    return (
        f"ctr label: rating >= {threshold:g} (data.ctr_threshold; ratings {rated.min():g} to "
        f"{rated.max():g}), {share:.0%} of the {which} positive"
    )


LARGE_CATALOGUE = 50_000  # items from which a full next-item softmax dominates a step


def large_catalogue_note(n_items: int, cfg: RunConfig) -> str | None:
    """A hint where next item's training softmax spans a catalogue large enough to dominate
    each step (at 100,000 items about 7 × a sampled softmax's time; docs/results/scale.md)."""
    full = not cfg.train.sampled_negatives and "next_item" in cfg.tasks and cfg.model.name == "polyrec"
    if n_items < LARGE_CATALOGUE or not full:
        return None
    return (
        f"next item trains with a softmax over all {n_items:,} items: 'train: {{sampled_negatives: 1000}}' "
        "makes its steps several times cheaper (README, 'Bring your own data')"
    )


def load_configured_dataset(cfg: RunConfig) -> Dataset:
    return load_dataset(None, cfg.data.path) if cfg.data.path else load_dataset(cfg.data.dataset)


def item_texts(ds: Dataset) -> list[str]:
    """Each item's text, in item-index order (what the sentence encoder reads)."""
    return ds.items["text"].astype(str).tolist()


def _encoder(cfg: RunConfig, progress: bool) -> Callable[[list[str]], np.ndarray]:
    """texts → (N, D) unit vectors with the run's text settings."""
    t = cfg.text

    def encode(texts: list[str]) -> np.ndarray:
        return encode_texts(texts, t.encoder, t.cache_dir, t.batch_size, progress, max_tokens=t.max_tokens)

    return encode


def item_text_vectors(ds: Dataset, cfg: RunConfig, progress: bool) -> np.ndarray | None:
    if not cfg.text.enabled:
        return None
    encode = _encoder(cfg, progress)
    if cfg.text.per_field and ds.text_fields:  # the loader names fields only where there are several
        return mean_of_fields([ds.items[c].tolist() for c in ds.text_fields], item_texts(ds), encode)
    return encode(item_texts(ds))


def user_text_vectors(ds: Dataset, cfg: RunConfig, progress: bool) -> np.ndarray | None:
    """(U, D) the users' text vectors, zero rows for users without text; None where the data
    has no user text, or the run reads none (``text.enabled`` or ``text.users`` off)."""
    user_texts = ds.user_texts()
    if user_texts is None or not (cfg.text.enabled and cfg.text.users):
        return None
    described = [u for u, t in enumerate(user_texts) if t.strip()]
    if not described:
        return None
    vectors = _encoder(cfg, progress)([user_texts[u] for u in described])
    out = np.zeros((ds.n_users, vectors.shape[1]), dtype=np.float32)
    out[described] = vectors
    return out


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


@dataclass
class RunData:
    """What every configuration of a study on one data set reads: loaded and encoded once."""

    ds: Dataset
    text_vectors: np.ndarray | None
    texts: list[str] | None


def load_run_data(cfg: RunConfig, progress: bool, log: Callable[[str], None] = print) -> RunData:
    """The data and its text vectors; from here on, this process uses ``train.threads`` if set."""
    if cfg.train.threads:
        torch.set_num_threads(cfg.train.threads)
    ds = load_configured_dataset(cfg)
    log(f"data: {ds.name}: {ds.n_users} users, {ds.n_items} items, {len(ds.interactions)} interactions")
    if hint := large_catalogue_note(ds.n_items, cfg):
        log(f"note: {hint}")  # before the epochs it is about, as well as in the report
    text_vectors = None
    if cfg.model.name == "polyrec":
        text_vectors = item_text_vectors(ds, cfg, progress)
        ds.user_vectors = user_text_vectors(ds, cfg, progress)  # read by every model built on ds
    return RunData(ds, text_vectors, item_texts(ds) if text_vectors is not None else None)


@dataclass
class PreparedRun:
    """A run folder ready to train: what its jobs read, and which seeds it still has to train."""

    inputs: RunInputs
    protocols: list[str]
    notes: list[str]
    records: SeedRecords
    todo: list[int]


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
    with process_group() as rank:
        if rank > 0:
            return follow_run(cfg, Path(out), baselines)
        prepared = prepare_run(cfg, out, load_run_data(cfg, progress, log), progress, baselines, resume)
        train_runs({"": prepared}, log)
        return finish_run(prepared, log)


def follow_run(cfg: RunConfig, out: Path, baselines: bool) -> RunResult:
    """A process of rank > 0 under ``torchrun`` (process_group.py): the seeds rank 0 trains,
    trained together with it, written to a scratch folder that is then deleted."""
    quiet: Callable[[str], None] = lambda _: None  # noqa: E731
    with tempfile.TemporaryDirectory(prefix="polyrec-follower-") as scratch:
        prepared = prepare_run(cfg, scratch, load_run_data(cfg, False, quiet), False, baselines, resume=False)
        train_runs({"": prepared}, quiet, time_costs=False)
    return RunResult({}, [], out)


def prepare_run(
    cfg: RunConfig, out: str | Path, data: RunData, progress: bool = True, baselines: bool = True, resume: bool = True
) -> PreparedRun:
    """``out`` made ready for :func:`train_runs` (see :func:`run` for the arguments)."""
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    ds = data.ds
    tasks, protocols, notes = run_plan(ds, cfg)
    if not protocols:
        raise ValueError(f"{ds.name}: nothing to train: " + "; ".join(n for n in notes if n.startswith("protocol ")))
    inputs = RunInputs(cfg, ds, tasks, data.text_vectors, data.texts, out, baselines, progress)
    records = SeedRecords(out, cfg, ds, baselines)
    # Under torchrun every process trains the seeds rank 0 found unfinished in its folder.
    todo = from_rank_zero([s for s in cfg.seeds if not (resume and records.load(s) is not None)])
    return PreparedRun(inputs, protocols, notes, records, todo)


def finish_run(prepared: PreparedRun, log: Callable[[str], None] = print) -> RunResult:
    """Aggregate a trained run's seeds; write its report, config, tables and served model."""
    inputs, protocols, notes, records = prepared.inputs, prepared.protocols, list(prepared.notes), prepared.records
    cfg, ds, out = inputs.cfg, inputs.ds, inputs.out
    per_seed: list[dict[str, float]] = []
    # Test folds of several seeds are disjoint: pooling their users gives a steadier metric.
    pool = ProfilePool()
    curves: dict[str, dict] = {}
    cost: dict[str, float] = {}
    for i, seed in enumerate(cfg.seeds):
        done = records.load(seed)
        assert done is not None, f"seed {seed} has no record in {out}"
        if seed not in prepared.todo:
            log(f"seed {seed}: finished before, read back from {out}")
        per_seed.append(done["metrics"])
        notes.extend(n for n in done["notes"] if n not in notes)
        for p in done["curves"]:  # the protocols it trained; pooled profile metrics read their test predictions
            pool.add(inputs.prepare(p, seed), load_predictions(out, p, seed, "test"))
        if i == 0:
            curves = done["curves"]
        if not cost and done["cost"] is not None:
            # The first seed's, unless a stopped run saved that seed before timing it: then
            # the next seed's (the same model, timed on its own split's test users).
            cost = done["cost"]

    for p in protocols:  # the served model: the first seed's (whichever process trained it)
        first = seed_model_folder(out, p, cfg.seeds[0])
        if first.is_dir():
            shutil.copytree(first, out / MODEL_DIR / p, dirs_exist_ok=True)
    result = aggregate(per_seed)
    result.update(cost)
    result.update(pool.metrics())
    cfg.save(out / "config.yaml")
    save_tables(ds, out)
    write_report(out, cfg, ds, inputs.tasks, protocols, result, curves, notes)
    return RunResult(result, notes, out)


def train_runs(runs: Mapping[str, PreparedRun], log: Callable[[str], None], time_costs: bool = True) -> dict[str, float]:
    """Train every protocol of the seeds each run still has to train, all in one pool (side by
    side where there are cores: run_jobs.py), the runs in the order given; return each run's
    time on one worker (its jobs' own seconds and its cost timing; a share of the wall time).

    A seed's record is written as soon as its protocols are trained, so that a stopped run
    resumes from its finished seeds. A seed's serving cost is timed afterwards, on its last
    protocol's model, after all the training, so that no other job runs beside the timing; a
    record saved before that has ``"cost": None`` (as every record has with ``time_costs=False``)."""
    jobs = [(key, p, s) for key, r in runs.items() for s in r.todo for p in r.protocols]
    outcomes: dict[str, dict[tuple[str, int], JobOutcome]] = {key: {} for key in runs}
    to_time: dict[tuple[str, int], tuple[dict[str, Any], JobOutcome | None]] = {}
    seconds = dict.fromkeys(runs, 0.0)

    def finished(o: JobOutcome) -> None:  # run_jobs calls it one outcome at a time
        r, done = runs[o.run], outcomes[o.run]
        done[o.protocol, o.seed] = o
        seconds[o.run] += o.seconds
        if all((p, o.seed) in done for p in r.protocols):
            record, timed = seed_record(done, r.protocols, o.seed)
            r.records.save(o.seed, record)
            to_time[o.run, o.seed] = record, timed
            for p in r.protocols:  # only the timed model is still needed: let the others go
                del done[p, o.seed]

    if jobs:
        run_jobs({key: r.inputs for key, r in runs.items()}, jobs, log, on_finished=finished)
    if not time_costs:
        return seconds
    for (key, seed), (record, timed) in to_time.items():
        start, r = time.perf_counter(), runs[key]
        record["cost"] = timed.learner.cost(r.inputs.prepare(timed.protocol, seed)) if timed is not None else {}
        r.records.save(seed, record)
        seconds[key] += time.perf_counter() - start
    return seconds


def seed_record(
    outcomes: dict[tuple[str, int], JobOutcome], protocols: list[str], seed: int
) -> tuple[dict[str, Any], JobOutcome | None]:
    """A seed's record from its protocols' outcomes (cost not yet timed: None), and the outcome
    whose model the cost is timed on (its last protocol with a model; None if none has one)."""
    metrics: dict[str, float] = {}
    curves: dict[str, dict] = {}
    notes: list[str] = []
    timed: JobOutcome | None = None
    for p in protocols:
        o = outcomes[p, seed]
        notes.extend(n for n in o.notes if n not in notes)
        if o.learner is None:
            continue
        metrics.update(o.metrics)
        metrics["model.train_seconds"] = metrics.get("model.train_seconds", 0.0) + o.metrics[f"model.{p}.train_seconds"]
        curves[p], timed = o.curves, o
    return {"metrics": metrics, "curves": curves, "cost": None, "notes": notes}, timed
