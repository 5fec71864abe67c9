"""Members and ensembles on MovieLens-100K, protocols A and B, seeds 0,1,2 → docs/results/ensemble.md.

    python benchmarks/ensemble.py [--runs runs/bench] [--seeds 0,1,2] [--force]

Trains each member with `polyrec run --model NAME` (skipped where its run folder already
holds metrics.json, unless --force), fits the softmax-weighted and the stacked ensemble of
all members on validation predictions, and writes the table of every member and both
ensembles, the fitted weights and the time the weights took to fit.
"""

from __future__ import annotations

import argparse
import json
import platform
import subprocess
import sys
import time
from datetime import datetime, timezone
from pathlib import Path

import yaml

from polyrec.ensemble.report import weights_table

MEMBERS = ("polyrec", "svdpp", "svd", "bias", "bpr", "popularity", "logreg")
MAIN_METRICS = ("A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "A.profile.age.accuracy",
                "A.profile.occupation.accuracy", "B.next_item.ndcg@10", "B.next_item.hr@10")  # fmt: skip


def polyrec(*args: str) -> None:
    subprocess.run([sys.executable, "-m", "polyrec.cli", *args], check=True)


def cell(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "—"
    std = m.get(f"{key}.std")
    return f"{m[key]:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--runs", default="runs/bench", help="folder for the member and ensemble runs")
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--members", default=",".join(MEMBERS))
    ap.add_argument("--force", action="store_true", help="retrain members that already have a run")
    ap.add_argument("--doc", default="docs/results/ensemble.md")
    args = ap.parse_args()
    root = Path(args.runs)
    members = args.members.split(",")
    seconds: dict[str, float] = {}
    for name in members:
        out = root / name
        if args.force or not (out / "metrics.json").is_file():
            start = time.perf_counter()
            polyrec("run", "--dataset", "ml-100k", "--model", name, "--seeds", args.seeds, "--quiet", "--out", str(out))
            seconds[name] = time.perf_counter() - start
    for method in ("softmax", "stacking"):
        polyrec("ensemble", "--runs", *[str(root / n) for n in members], "--method", method, "--out", str(root / f"ensemble-{method}"))

    metrics = {n: json.loads((root / n / "metrics.json").read_text()) for n in members}
    ens = {m: json.loads((root / f"ensemble-{m}" / "metrics.json").read_text()) for m in ("softmax", "stacking")}
    cols = [*members, "ensemble (softmax)", "ensemble (stacking)"]
    table = ["| metric | " + " | ".join(cols) + " |", "|---" * (1 + len(cols)) + "|"]
    for key in MAIN_METRICS:
        row = [cell(metrics[n], key) for n in members] + [cell(ens[m], key) for m in ("softmax", "stacking")]
        table.append(f"| {key} | " + " | ".join(row) + " |")
    spec = yaml.safe_load((root / "ensemble-softmax" / "ensemble.yaml").read_text())
    weights = weights_table([m["name"] for m in spec["members"]], spec["weights"])
    fit = {m: ens[m]["ensemble.fit_seconds"] for m in ens}
    doc = [
        "# Ensembles on MovieLens-100K, protocols A and B, seeds 0,1,2",
        "",
        f"Command: `python benchmarks/ensemble.py` ({datetime.now(timezone.utc):%Y-%m-%d}, {platform.machine()}, "
        "2 CPU cores). Members: `polyrec run --dataset ml-100k --model NAME --seeds 0,1,2` for "
        f"{', '.join(members)}; ensembles: `polyrec ensemble --runs <members> --method softmax|stacking`. "
        "Weights are fitted per protocol, seed and task on the members' validation predictions; "
        "the table is test metrics, mean ± std over the seeds. Full per-metric tables: each run's `report.md`.",
        "",
        "## Test metrics",
        "",
        *table,
        "",
        "## Softmax weights α per task (mean ± std over seeds)",
        "",
        weights,
        "",
        f"Fitting the weights of all {len(members)} members for 3 seeds × 2 protocols took "
        f"{fit['softmax']:.1f} s (softmax) and {fit['stacking']:.1f} s (stacking) in total, data loading excluded.",
        "",
    ]
    Path(args.doc).write_text("\n".join(doc))
    print("\n".join(doc))


if __name__ == "__main__":
    main()
