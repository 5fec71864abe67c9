"""The run folders of a study (`polyrec bench ...`): reused, grown or trained, in one job pool.

Each configuration of a study is one ordinary `polyrec run` into its own folder. One that
is finished with the same seeds is reused; one asked for more seeds grows (the finished
seeds are read back); the others train — all of their jobs in one pool (run_jobs.py), so
that the cores stay busy from the first configuration's first job to the last one's last
job, instead of one core waiting each time a configuration's last job trains alone. Each
folder's wall time — its share of the elapsed time, in proportion to its own jobs' time —
goes to ``BENCH_FILE``, so a study run in pieces still adds up. The configurations of a
seed fit the same autoencoders wherever the layers they differ in come after them, so every
study's runs share those fits through ``fit-cache/`` beside their folders
(:func:`sharing_fits`), unless a config names a cache of its own.
"""

from __future__ import annotations

import copy
import json
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

from ..config import RunConfig
from ..pipeline import PreparedRun, RunData, finish_run, load_run_data, prepare_run, train_runs

BENCH_FILE = "bench.json"
FIT_CACHE = "fit-cache"  # under a study's --out: see train/fit_cache.py


@dataclass(frozen=True)
class StudyRun:
    folder: Path
    cfg: RunConfig
    label: str  # how the log names it, e.g. "[3/16] mmoe-fixed"
    what: str  # what it trains, for the log


def numbered(out: Path, planned: list[tuple[str, RunConfig, str]]) -> list[StudyRun]:
    """A study run per (folder name under ``out``, config, what it trains), labelled "[k/n] name"."""
    return [StudyRun(out / name, cfg, f"[{k}/{len(planned)}] {name}", what) for k, (name, cfg, what) in enumerate(planned, 1)]


def sharing_fits(base: RunConfig, out: Path) -> RunConfig:
    """``base`` with its autoencoder fits kept under ``out`` (``train.fit_cache``), unless it
    names a cache of its own. Speed only: a fit is read back only where everything it reads,
    its initial weights and its code are the same (train/fit_cache.py)."""
    if base.train.fit_cache is not None:
        return base
    shared = copy.deepcopy(base)
    shared.train.fit_cache = str(out / FIT_CACHE)
    return shared


def same_question(done: RunConfig, cfg: RunConfig, seeds: bool = True) -> bool:
    """Whether a finished run's config asks what ``cfg`` asks: equal results settings
    (:func:`config.results_settings`), and seeds aside too with ``seeds=False``."""
    a, b = done.what_results_depend_on(), cfg.what_results_depend_on()
    if not seeds:
        a["seeds"] = b["seeds"] = None
    return a == b


def check_resumable(folder: Path, cfg: RunConfig) -> None:
    """A study's finished folder is reused (or grown by seeds) only if it answers the same
    question; otherwise the study stops rather than mix two configurations in one table."""
    if not same_question(RunConfig.load(folder / "config.yaml", saved=True), cfg, seeds=False):
        raise ValueError(f"{folder} holds a run of another configuration than this bench asks for: use another --out")


def run_configurations(runs: list[StudyRun], progress: bool, log: Callable[[str], None]) -> None:
    """Reuse, grow or train each of ``runs``; the ones to train share one pool, their jobs
    taken in the order of ``runs``. A fit or solve that several configurations share
    (train.fit_cache, train/solve_memo.py) is paid, and timed, by the first to need it."""
    runs = [replace(r, cfg=sharing_fits(r.cfg, r.folder.parent)) for r in runs]
    start = time.perf_counter()
    earlier: dict[str, float] = {}
    pending: dict[str, PreparedRun] = {}
    data: dict[tuple[str, ...], RunData] = {}  # the configurations on one data set and text encoder share it
    assert len({r.folder.name for r in runs}) == len(runs), "a study's run folders need distinct names"
    for r in runs:
        if (r.folder / "metrics.json").is_file():
            check_resumable(r.folder, r.cfg)
            if RunConfig.load(r.folder / "config.yaml").seeds == r.cfg.seeds:
                log(f"{r.label}: done before, reused")
                continue
            earlier[r.folder.name] = load_result(r.folder)["wall"]
        log(f"{r.label}: {r.what}")
        source = (repr(r.cfg.data), repr(r.cfg.text), r.cfg.model.name)
        if source not in data:
            data[source] = load_run_data(r.cfg, progress, log)
        # baselines=False: the splits' baselines are `polyrec run`'s, not each configuration's.
        pending[r.folder.name] = prepare_run(r.cfg, r.folder, data[source], progress, baselines=False)
    if not pending:
        return
    own = train_runs(pending, log)
    for name, prepared in pending.items():
        finishing = time.perf_counter()
        finish_run(prepared, log)
        own[name] += time.perf_counter() - finishing
    elapsed, total = time.perf_counter() - start, sum(own.values())
    for name, prepared in pending.items():
        share = elapsed * own[name] / total if total > 0 else elapsed / len(pending)
        before = earlier.get(name, 0.0)
        wall = share + (0.0 if math.isnan(before) else before)
        (prepared.inputs.out / BENCH_FILE).write_text(json.dumps({"wall_seconds": wall}))


def load_result(folder: Path) -> dict:
    """A finished run folder's test ``metrics``, ``curves`` and ``wall`` seconds (NaN: none kept)."""
    bench = folder / BENCH_FILE
    return {
        "metrics": json.loads((folder / "metrics.json").read_text()),
        "curves": json.loads((folder / "curves.json").read_text()),
        "wall": json.loads(bench.read_text())["wall_seconds"] if bench.is_file() else float("nan"),
    }
