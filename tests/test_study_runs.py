"""A study's configurations train in one pool of workers: each run folder must hold what
`polyrec run` alone would write, and the folders' wall times must add up to the time taken."""

from __future__ import annotations

import json
import time

import pytest
from synthetic import tiny_config, write_dataset

from polyrec.bench.study_runs import BENCH_FILE, StudyRun, load_result, run_configurations
from polyrec.pipeline import run

TIMINGS = ("train_seconds", "seconds_to_best", "users_per_s")


def _untimed(metrics: dict[str, float]) -> dict[str, float]:
    return {k: v for k, v in metrics.items() if not k.removesuffix(".std").endswith(TIMINGS)}


def test_configurations_share_one_pool_and_each_gets_its_own_run(tmp_path) -> None:
    folder = write_dataset(tmp_path / "data")
    configs = {}
    for arch in ("shared_bottom", "mmoe"):
        cfg = tiny_config(folder, epochs=2, workers=2, threads=1)
        cfg.model.mtl.arch = arch
        configs[arch] = cfg
    runs = [StudyRun(tmp_path / "study" / a, cfg, f"[{k}/2] {a}", "all tasks") for k, (a, cfg) in enumerate(configs.items(), 1)]
    lines: list[str] = []
    start = time.perf_counter()
    run_configurations(runs, progress=False, log=lines.append)
    elapsed = time.perf_counter() - start
    # One pool for both configurations' four jobs, each job's summary naming its run.
    assert [line for line in lines if line.startswith("training ")] == ["training 4 jobs in 2 processes (1 thread(s) each)"]
    assert sum(line.startswith("mmoe: polyrec: protocol B seed 0") for line in lines) == 1, lines
    alone = run(configs["mmoe"], tmp_path / "alone", progress=False, log=lambda _: None, baselines=False)
    pooled = load_result(tmp_path / "study" / "mmoe")["metrics"]
    assert _untimed(pooled) == pytest.approx(_untimed(alone.metrics), rel=1e-5, abs=1e-6)
    # The elapsed time, split between the folders in proportion to their jobs' own time.
    walls = [load_result(r.folder)["wall"] for r in runs]
    assert all(w > 0 for w in walls)
    assert 0.9 * elapsed <= sum(walls) <= elapsed


def test_a_configuration_grown_by_seeds_keeps_its_earlier_time(tmp_path) -> None:
    cfg = tiny_config(write_dataset(tmp_path / "data"), epochs=1, workers=1)
    folder = tmp_path / "study" / "one"
    run_configurations([StudyRun(folder, cfg, "one", "all tasks")], progress=False, log=lambda _: None)
    (folder / BENCH_FILE).write_text(json.dumps({"wall_seconds": 1000.0}))  # as if the first seed took that long
    cfg.seeds = [0, 1]
    lines: list[str] = []
    run_configurations([StudyRun(folder, cfg, "one", "all tasks")], progress=False, log=lines.append)
    assert "seed 0: finished before, read back from " + str(folder) in lines
    assert 1000.0 < load_result(folder)["wall"] < 1000.0 + 600.0
    lines.clear()
    run_configurations([StudyRun(folder, cfg, "one", "all tasks")], progress=False, log=lines.append)
    assert lines == ["one: done before, reused"]
