"""Runs compared on cold items: protocol-B test targets with few training interactions.

    python benchmarks/cold_items.py runs/ml100k runs/notext [runs/...] [--max 5,20]

For each run and each threshold (an item with at most that many interactions on the split's
training side is cold): cold targets per seed, HR@10 (mean ± std over the run's seeds, and
the hits over all seeds), HR@50, HR@100, MRR and the median rank, printed as a Markdown
table. Scored from each run's kept test predictions (`polyrec.eval.cold_items`); nothing
retrains. ≤ 5 is the cold-item definition of `polyrec bench pretrain`; on MovieLens-100K it
leaves about 16 targets a seed, so the wider metrics and threshold show what HR@10 alone
cannot.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from polyrec.config import RunConfig
from polyrec.eval.cold_items import COLD_MAX, ranks_and_train_counts
from polyrec.pipeline import load_configured_dataset

HEADER = (
    "| run | cold = ≤ N train | targets / seed | HR@10 | hits@10 / targets | HR@50 | HR@100 | MRR | median rank |\n"
    "|---|---|---|---|---|---|---|---|---|"
)


def row(run: Path, cold_max: int, per_seed: list[np.ndarray]) -> str:
    hr10 = [float(np.mean(r <= 10)) for r in per_seed if len(r)]
    every = np.concatenate(per_seed)
    spread = f" ± {np.std(hr10, ddof=1):.3f}" if len(hr10) > 1 else ""
    cells = [
        str(run), str(cold_max), f"{np.mean([len(r) for r in per_seed]):.0f}", f"{np.mean(hr10):.3f}{spread}",
        f"{int(np.sum(every <= 10))} / {len(every)}", f"{np.mean(every <= 50):.3f}", f"{np.mean(every <= 100):.3f}",
        f"{np.mean(1.0 / every):.4f}", f"{np.median(every):.0f}",
    ]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("runs", nargs="+", type=Path, help="run folders with protocol-B test predictions")
    ap.add_argument("--max", default=f"{COLD_MAX},20", help="cold thresholds: at most N training interactions")
    args = ap.parse_args()
    ds = load_configured_dataset(RunConfig.load(args.runs[0] / "config.yaml"))
    splits: dict = {}  # one split per seed, shared by the runs (same data)
    scored = {}  # run → per seed: (target ranks, their items' training counts), read once
    for run in args.runs:
        cfg = RunConfig.load(run / "config.yaml")
        scored[run] = [ranks_and_train_counts(run, cfg, ds, seed, splits) for seed in cfg.seeds]
    print(HEADER)
    for cold_max in (int(x) for x in args.max.split(",")):
        for run in args.runs:
            per_seed = [ranks[counts <= cold_max] for ranks, counts in scored[run]]
            if sum(len(r) for r in per_seed) == 0:
                print(f"| {run} | {cold_max} | 0 | — | — | — | — | — | — |")
                continue
            print(row(run, cold_max, per_seed))

if __name__ == "__main__":
    main()
