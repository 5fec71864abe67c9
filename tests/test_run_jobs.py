"""`polyrec run` trains its (protocol, seed) jobs in worker processes where there are cores:
the results must be those of training them one after the other."""

from __future__ import annotations

import sys
import types

import pytest
from synthetic import tiny_config, write_dataset

from polyrec import run_jobs
from polyrec.pipeline import run
from polyrec.run_jobs import plan_workers

TIMINGS = ("train_seconds", "seconds_to_best", "users_per_s")


@pytest.mark.parametrize(
    "workers, threads, n_jobs, expected",
    [
        (None, None, 2, (2, 2)),  # one worker per job, the 4 cores shared
        (None, None, 6, (4, 1)),  # one worker per core
        (None, None, 1, (1, None)),  # one job: in this process, torch's own threads
        (None, 1, 6, (1, 1)),  # threads chosen: the caller manages the cores
        (3, 1, 6, (3, 1)),
        (8, None, 2, (2, 2)),  # never more workers than jobs
    ],
)
def test_plan_workers(monkeypatch, workers, threads, n_jobs, expected) -> None:
    monkeypatch.setattr(run_jobs, "available_cores", lambda: 4)
    cfg = tiny_config(workers=workers, threads=threads)
    assert plan_workers(cfg, n_jobs) == expected


def test_jobs_in_worker_processes_give_the_results_of_one_process(tmp_path) -> None:
    folder = write_dataset(tmp_path / "data")
    results = {}
    for workers in (1, 2):
        cfg = tiny_config(folder, epochs=3, workers=workers)
        cfg.seeds = [0, 1]
        lines: list[str] = []
        out = tmp_path / f"run{workers}"
        result = run(cfg, out, progress=False, log=lines.append)
        results[workers] = {k: v for k, v in result.metrics.items() if not k.removesuffix(".std").endswith(TIMINGS)}
        assert sum("protocol A seed 1" in line for line in lines) == 1, lines
        for p in ("A", "B"):
            assert (out / "seeds" / p / "seed1" / "model.safetensors").is_file()
        assert sorted(f.name for f in (out / "progress").iterdir()) == ["seed0.json", "seed1.json"]
    assert any("in 2 processes" in line for line in lines)
    assert results[2] == pytest.approx(results[1], rel=1e-5, abs=1e-6)
    assert {k for k in results[1]} == {k for k in results[2]}


def test_a_job_that_fails_in_a_worker_process_stops_the_run(tmp_path) -> None:
    folder = write_dataset(tmp_path / "data")
    cfg = tiny_config(folder, epochs=1, workers=2)
    cfg.model.name = "no-such-model"  # fails in whichever process takes the job
    with pytest.raises(ValueError, match="unknown model 'no-such-model'"):
        run(cfg, tmp_path / "run", progress=False, log=lambda _: None)


def test_no_worker_processes_when_the_main_module_cannot_be_reimported(monkeypatch, tmp_path) -> None:
    """A script read from stdin has no file that a spawned worker could import: train in
    this process instead of failing in the workers."""
    main = types.ModuleType("__main__")
    main.__file__ = str(tmp_path / "<stdin>")
    monkeypatch.setitem(sys.modules, "__main__", main)
    monkeypatch.setattr(run_jobs, "available_cores", lambda: 4)
    assert plan_workers(tiny_config(workers=None, threads=None), 2) == (1, None)
