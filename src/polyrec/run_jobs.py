"""The trainings of `polyrec run`: one job per protocol and seed, side by side on the cores.

One training does not use two cores well (its operations are small: two threads train an
epoch only ~1.3× faster than one), while the jobs of a run are independent. So on a
machine with several cores the jobs run side by side — in this process and in spawned
worker processes, each with its share of the threads (`train.workers`; by default as many
as the cores, at most one per job). Each job writes its predictions and model into the run
folder and sends back its metrics, curves and learner; the cost of serving (users per
second) is timed afterwards, when no training runs beside it. Studies that train many
configurations put all their runs' jobs in one pool (``run_jobs`` takes several runs), so
that no core waits while a configuration's last job trains alone.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Mapping
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

import torch

from .config import PROTOCOL_TASKS, RunConfig
from .data.tables import Dataset
from .eval.baseline_runs import baseline_metrics
from .eval.evaluate import side_metrics
from .eval.prediction_store import save_predictions
from .learners import Learner, LearnerContext, make_learner
from .progress import set_bar_line
from .run_loader import seed_model_folder
from .train.data_parallel import process_group_size
from .train.protocol_data import ProtocolData, prepare_configured


@dataclass
class RunInputs:
    """What every job of a run reads (sent once to each worker process)."""

    cfg: RunConfig
    ds: Dataset
    tasks: list[str]
    text_vectors: Any
    texts: list[str] | None
    out: Path
    baselines: bool
    progress: bool

    def prepare(self, protocol: str, seed: int) -> ProtocolData:
        c = self.cfg
        return prepare_configured(self.ds, protocol, seed, c, "profile" in self.tasks)


@dataclass
class JobOutcome:
    """One protocol of one seed, trained, evaluated and saved."""

    protocol: str
    seed: int
    metrics: dict[str, float] = field(default_factory=dict)
    curves: dict = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)
    summary: str = ""  # the line logged when the job ends
    learner: Learner | None = None  # None: the learner does none of this protocol's tasks
    run: str = ""  # the key of its run among those that share a pool (run_jobs)
    seconds: float = 0.0  # the job's own time in its process: data, training, predictions, saving


Job = tuple[str, str, int]  # (run key, protocol, seed)


def train_job(inputs: RunInputs, protocol: str, seed: int) -> JobOutcome:
    """Fit on ``protocol``'s split of ``seed``; save predictions of every side and the model."""
    start = time.perf_counter()
    data = inputs.prepare(protocol, seed)
    cfg, ds = inputs.cfg, inputs.ds
    outcome = JobOutcome(protocol, seed, notes=list(data.notes))
    torch.manual_seed(seed)  # the seed decides the initial weights too, not the process's history
    learner = make_learner(cfg.model.name, LearnerContext(
        cfg, inputs.tasks, ds.n_items, inputs.text_vectors, ds.rating_range, seed, inputs.progress, inputs.texts
    ))
    if not set(learner.tasks) & set(PROTOCOL_TASKS[protocol]):
        return outcome  # e.g. a rating baseline under the next-item protocol
    fit = learner.fit(data)
    epoch = f"best epoch {fit.best_epoch + 1}, " if fit.best_epoch is not None else ""
    outcome.summary = f"{learner.name}: protocol {protocol} seed {seed}: {epoch}{fit.train_seconds:.0f} s"
    # Validation first: before the test side, the learner may refit what validation tuned on
    # the validation data too, and nothing may score validation after that.
    preds = {"valid": learner.predict(data, data.valid)}
    refit = learner.before_test(data)
    preds["test"] = learner.predict(data, data.test)
    for side, pred in preds.items():
        save_predictions(inputs.out, protocol, seed, side, pred)
    m = outcome.metrics
    if data.deploy:  # no test side: the figures are validation's, named so (data.deploy)
        m.update({f"valid.{k}": v for k, v in side_metrics(data, data.valid, preds["valid"], ds.rating_range).items()})
    else:
        m.update(side_metrics(data, data.test, preds["test"], ds.rating_range))
    if learner.name == "polyrec" and inputs.baselines and not data.deploy:
        m.update(baseline_metrics(data, ds.n_items, inputs.tasks, ds.rating_range))
    m[f"model.{protocol}.train_seconds"] = fit.train_seconds
    if fit.pretrain_seconds is not None:
        m[f"model.{protocol}.pretrain_seconds"] = fit.pretrain_seconds
    if fit.seconds_to_best is not None:
        m[f"model.{protocol}.seconds_to_best"] = fit.seconds_to_best
    m.update(fit.metrics)
    m.update(refit)
    learner.save(seed_model_folder(inputs.out, protocol, seed))
    outcome.curves, outcome.learner = fit.curves, learner
    outcome.seconds = time.perf_counter() - start
    return outcome


def train_run_job(runs: Mapping[str, RunInputs], job: Job) -> JobOutcome:
    run, protocol, seed = job
    outcome = train_job(runs[run], protocol, seed)
    outcome.run = run
    return outcome


def available_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def can_spawn() -> bool:
    """Whether a spawned worker can import the caller's main module: not when it came from
    stdin (`python - < script.py`), whose path spawn would try, and fail, to read."""
    path = getattr(sys.modules.get("__main__"), "__file__", None)
    return path is None or os.path.exists(path)


def plan_workers(cfg: RunConfig, n_jobs: int) -> tuple[int, int | None]:
    """(worker processes, torch threads per worker) for ``n_jobs`` trainings.

    ``train.workers`` unset: one worker per core, at most one per job, the cores shared
    among them — unless ``train.threads`` is set, which keeps the jobs in this process one
    after the other (the caller chose how many cores one training takes; e.g. studies that
    start several single-threaded processes themselves)."""
    if process_group_size()[1] > 1:  # under torchrun every process is one training's share
        return 1, cfg.train.threads
    workers = cfg.train.workers
    if workers is None:
        workers = 1 if cfg.train.threads else available_cores()
    workers = max(1, min(workers, n_jobs)) if can_spawn() else 1
    if workers == 1:
        return 1, cfg.train.threads
    return workers, cfg.train.threads or max(1, available_cores() // workers)


def describe_workers(cfg: RunConfig, n_jobs: int) -> str:
    """How ``n_jobs`` trainings of ``cfg`` share the machine, for result documents."""
    workers, threads = plan_workers(cfg, n_jobs)
    if workers == 1:
        return f"{threads or torch.get_num_threads()} thread(s)"
    return f"trainings side by side in {workers} processes of {threads} thread(s)"


_RUNS: Mapping[str, RunInputs] | None = None  # a worker process's copy, set once by _start_worker


def _start_worker(runs: Mapping[str, RunInputs], threads: int, slots: Any, lock: Any) -> None:
    global _RUNS
    _RUNS = runs
    torch.set_num_threads(threads)
    with slots.get_lock():  # each worker's progress bar keeps its own terminal line
        slots.value += 1
        set_bar_line(slots.value, lock)


def _job_in_worker(job: Job) -> JobOutcome:
    assert _RUNS is not None
    return train_run_job(_RUNS, job)


def run_jobs(
    runs: Mapping[str, RunInputs],
    jobs: list[Job],
    log: Callable[[str], None],
    on_finished: Callable[[JobOutcome], None],
) -> None:
    """Train ``jobs`` ((run key, protocol, seed), taken in this order) of the ``runs``; log
    each one's summary as it ends and hand it to ``on_finished``, in this process, one
    outcome at a time (the calls never overlap, though they may come from the threads that
    feed the workers). The first run's ``train.workers`` and ``train.threads`` decide how
    the machine is shared; the runs' inputs go to each worker process once, in one message
    (what they share, such as the data set, is sent once).

    This process is one of the workers: with N workers it trains jobs itself while N − 1
    worker processes take the others from the same queue (no process sits idle holding
    memory, and on two cores only one extra process starts)."""
    workers, threads = plan_workers(next(iter(runs.values())).cfg, len(jobs))
    queue, errors = deque(jobs), []
    lock = threading.Lock()

    def next_job() -> Job | None:
        with lock:
            return queue.popleft() if queue and not errors else None

    def finished(outcome: JobOutcome) -> None:
        if outcome.summary:
            log(f"{outcome.run}: {outcome.summary}" if len(runs) > 1 else outcome.summary)
        with lock:
            on_finished(outcome)

    own_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        if workers == 1:
            while (job := next_job()) is not None:
                finished(train_run_job(runs, job))
            return
        log(f"training {len(jobs)} jobs in {workers} processes ({threads} thread(s) each)")
        # spawn, not fork: this process has started torch's thread pool (text encoding),
        # which a forked child cannot use safely.
        ctx = multiprocessing.get_context("spawn")
        slots, bar_lock = ctx.Value("i", 0), ctx.RLock()
        set_bar_line(0, bar_lock)
        with ProcessPoolExecutor(workers - 1, ctx, initializer=_start_worker, initargs=(runs, threads, slots, bar_lock)) as pool:

            def feed() -> None:  # hands jobs to one worker process, one at a time
                try:
                    while (job := next_job()) is not None:
                        finished(pool.submit(_job_in_worker, job).result())
                except BaseException as e:  # re-raised below, in this process's main thread
                    errors.append(e)

            feeders = [threading.Thread(target=feed, daemon=True) for _ in range(workers - 1)]
            for f in feeders:
                f.start()
            try:
                while (job := next_job()) is not None:
                    finished(train_run_job(runs, job))
            except BaseException as e:
                errors.append(e)  # the feeders start no new job
            for f in feeders:
                f.join()
        set_bar_line(None, None)
        if errors:
            raise errors[0]
    finally:
        torch.set_num_threads(own_threads)
