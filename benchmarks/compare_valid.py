"""Runs compared on their validation side: each task's main metric, mean ± std over seeds.

    python benchmarks/compare_valid.py runs/ml100k runs/other [runs/...]

Scored from the validation predictions each run kept (no model is loaded, nothing retrains),
with the code `polyrec bench mtl` chooses its default by. Every run after the first is marked
against the first: ▲ better by more than one std, ▼ worse by more than one, = within. This is
how the default's changes in docs/results/ml100k.md were judged.
"""

from __future__ import annotations

import sys
from pathlib import Path

from polyrec.bench.mtl import main_metrics
from polyrec.bench.mtl_choice import validation_metrics, verdict
from polyrec.config import RunConfig
from polyrec.pipeline import load_configured_dataset


def main(runs: list[Path]) -> None:
    ds = load_configured_dataset(RunConfig.load(runs[0] / "config.yaml"))
    splits: dict = {}
    metrics = {run: validation_metrics(run, ds, splits) for run in runs}
    main = main_metrics(ds)  # gender where the data has it, else its first attribute
    base = {task: metrics[runs[0]] for task, *_ in main}
    columns = [(task, key, higher) for task, key, _, higher in main]
    for run in runs:
        m = metrics[run]
        marks = verdict(m, base, columns).marks if run != runs[0] else ("",) * len(columns)
        cells = [
            f"{key.split('.', 1)[1]} {m[key]:.4f} ± {m.get(f'{key}.std', 0.0):.4f}{mark}"
            for (_, key, _), mark in zip(columns, marks)
            if key in m
        ]
        print(f"{run}: " + " · ".join(cells))


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(__doc__)
    main([Path(a) for a in sys.argv[1:]])
