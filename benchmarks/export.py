"""What `polyrec export` gives: the run's scores without torch, how fast, how small, how close.

    python benchmarks/export.py RUN [--threads 1,2] [--repeats 3]

Exports RUN's next-item recommender twice (float32 and ``--int8``) into a temporary folder,
then, for the run's first seed (the model the run serves), scores protocol B's test users
over the whole catalogue three ways — the run itself (PyTorch), the float32 export and the
int8 export (onnxruntime) — and prints per way: users scored per second (best of
``--repeats``, at each thread count), test NDCG@10 and HR@10 of those scores, the graph's
size, and the peak memory of a fresh process that loads the folder and recommends for one
user. Nothing else should run beside it while it times.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

import polyrec
from polyrec.config import RunConfig
from polyrec.eval.predict import score_users
from polyrec.eval.ranking import ranking_metrics, target_ranks
from polyrec.export.format import GRAPH
from polyrec.export.reader import ExportedModel
from polyrec.export.writer import export_run
from polyrec.pipeline import load_configured_dataset
from polyrec.train.protocol_data import prepare

# VmHWM, not ru_maxrss: a child started by fork and exec reports its parent's high-water mark there.
PEAK_MEMORY = """\
import sys, polyrec
rec = polyrec.load(sys.argv[1])
rec.recommend(str(rec.users_["user_id"].iloc[0]), k=10)
print(next(line.split()[1] for line in open("/proc/self/status") if line.startswith("VmHWM:")))
"""


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder of polyrec's own model with a protocol-B model")
    ap.add_argument("--threads", default="1,2", help="thread counts to time at (torch and onnxruntime alike)")
    ap.add_argument("--repeats", type=int, default=3, help="timings per way and thread count; the best is kept")
    args = ap.parse_args()
    cfg = RunConfig.load(args.run / "config.yaml")
    data = prepare(load_configured_dataset(cfg), "B", cfg.seeds[0], cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False)
    side = data.test
    users, targets = side.next_users, side.next_items
    seen = [side.history.items[u] for u in users]
    model, _ = polyrec.load(args.run).next_item_model()
    with tempfile.TemporaryDirectory() as tmp:
        folders = {"float32": Path(tmp) / "fp32", "int8": Path(tmp) / "int8"}
        for name, folder in folders.items():
            start = time.perf_counter()
            manifest = export_run(args.run, folder, int8=name == "int8")
            check = manifest["check"]
            print(
                f"export {name}: {time.perf_counter() - start:.1f} s; check on {check['users']} users: largest difference "
                f"{check['max_abs_difference']:.2g}, top-10 agreement {check['top10_agreement']:.1%}"
            )
        histories = [side.history.items[u] for u in users], [side.history.tokens[u] for u in users]
        rows = []
        for threads in [int(t) for t in args.threads.split(",")]:
            torch.set_num_threads(threads)
            ways = {"torch (the run)": lambda: score_users(model, side.history, users)}
            for name, folder in folders.items():
                exported = ExportedModel(folder, threads=threads)
                ways[f"onnxruntime {name}"] = lambda exported=exported: exported.scores(*histories, users)
            for way, score in ways.items():
                best, scores = np.inf, None
                for _ in range(args.repeats):
                    start = time.perf_counter()
                    scores = score()
                    best = min(best, time.perf_counter() - start)
                metrics = ranking_metrics(target_ranks(scores, targets, seen))
                rows.append((way, threads, len(users) / best, metrics["ndcg@10"], metrics["hr@10"]))
        print(f"\n{len(users)} test users of seed {cfg.seeds[0]}, {model.spec.n_items} items, whole-catalogue scores\n")
        print("| way | threads | users/s | test NDCG@10 | test HR@10 |")
        print("|---|---|---|---|---|")
        for way, threads, speed, ndcg, hr in rows:
            print(f"| {way} | {threads} | {speed:,.0f} | {ndcg:.4f} | {hr:.4f} |")
        print("\n| what is loaded | its model files, MB | peak memory of a process that loads it and recommends once, MB |")
        print("|---|---|---|")
        for way, files, folder in [
            ("the run (torch)", (args.run / "model" / "B").rglob("*"), args.run),
            *[(f"export {n}: user encoder / whole folder", [f / GRAPH], f) for n, f in folders.items()],
        ]:
            megabytes = f"{sum(f.stat().st_size for f in files if f.is_file()) / 2**20:.2f}"
            if folder != args.run:
                megabytes += f" / {sum(f.stat().st_size for f in folder.iterdir()) / 2**20:.2f}"
            print(f"| {way} | {megabytes} | {peak_megabytes(folder):.0f} |")


def peak_megabytes(folder: Path) -> float:
    """Peak resident memory of a fresh process that loads ``folder`` and recommends once."""
    done = subprocess.run([sys.executable, "-c", PEAK_MEMORY, str(folder)], capture_output=True, text=True, check=True)
    return int(done.stdout.split()[-1]) / 1024  # in KiB


if __name__ == "__main__":
    main()
