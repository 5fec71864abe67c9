"""`make bench-peers`: export the splits, train what is missing, score everything (MAIN venv).

    python benchmarks/peers/bench.py [--seeds 0,1,2] [--peers sasrec,bert4rec,bpr,deepfm]
        [--epochs sasrec=50,bert4rec=20,bpr=300,deepfm=100] [--polyrec polyrec,student,svd,svdpp,logreg,bpr]
        [--bench runs/bench] [--out runs/peers] [--threads N] [--max-batches N] [--force]
        [--doc docs/results/peers.md] [--remark TEXT ...]

1. ``export_splits.py``'s files for every seed, under ``<out>/splits``;
2. polyrec's own runs under ``--bench`` (``polyrec run --dataset ml-100k --model NAME``; ``student``:
   ``polyrec distill --teacher <bench>/polyrec --config configs/student.yaml``), each only if its
   folder has no ``metrics.json`` yet: the same folders ``benchmarks/ensemble.py`` writes, so
   ensembles fitted there are scored here too;
3. each peer and seed in the peers' venv (``benchmarks/peers/.venv``), unless
   ``<out>/<peer>/seed<k>.json`` holds a result made with the same epoch cap and
   ``--max-batches`` (``--force``: everything is retrained);
4. ``score.py`` → ``--doc``, over every seed that has predictions (earlier calls' too).

Every training command runs as a child process whose wall time and peak memory are measured
(``<folder>/bench.json``) and whose output goes to ``<folder>/train.log`` (polyrec) or
``<out>/<peer>/seed<k>.log``. ``--max-batches`` cuts the peers' epochs short: a smoke test.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from datetime import UTC, datetime
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import export_splits
import score

from polyrec.data.loader import load_dataset

PEERS_PYTHON = HERE / ".venv" / "bin" / "python"
# peer → (runner, its arguments, output folder under --out)
PEERS = {
    "sasrec": ("run_recbole.py", ["--model", "SASRec"], "recbole-sasrec"),
    "bert4rec": ("run_recbole.py", ["--model", "BERT4Rec"], "recbole-bert4rec"),
    "bpr": ("run_recbole.py", ["--model", "BPR"], "recbole-bpr"),
    "deepfm": ("run_deepfm.py", [], "rechub-deepfm"),
}
DEFAULT_EPOCHS = "sasrec=50,bert4rec=20,bpr=300,deepfm=100"
STUDENT = "student"  # the --polyrec name of polyrec's distilled student
STUDENT_CONFIG = HERE.parents[1] / "configs" / "student.yaml"


def measured(cmd: list[str], log: Path) -> dict:
    """Run ``cmd`` with its output in ``log``; its wall time and peak resident memory."""
    log.parent.mkdir(parents=True, exist_ok=True)
    print("$", " ".join(cmd), f"> {log}", flush=True)
    start = time.perf_counter()
    with log.open("w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT)
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    if proc.returncode != 0:
        raise SystemExit(f"failed (exit {proc.returncode}): {' '.join(cmd)}; see {log}")
    return {
        "command": " ".join(cmd), "wall_seconds": time.perf_counter() - start,
        "peak_rss_mb": usage.ru_maxrss / 1024, "date": f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC",
    }  # fmt: skip


def polyrec_runs(names: list[str], seeds: str, bench: Path, force: bool) -> None:
    for name in names:
        out = bench / name
        if (out / "metrics.json").is_file() and not force:
            print(f"{out}: kept (has metrics.json)")
            continue
        if name == STUDENT:  # polyrec's default distilled into the student preset
            teacher = bench / "polyrec"
            if not (teacher / "metrics.json").is_file():
                raise SystemExit(f"{out}: its teacher {teacher} is not trained; list 'polyrec' before '{STUDENT}' in --polyrec")
            cmd = [sys.executable, "-m", "polyrec.cli", "distill", "--teacher", str(teacher), "--config", str(STUDENT_CONFIG)]
        else:
            cmd = [sys.executable, "-m", "polyrec.cli", "run", "--dataset", "ml-100k", "--model", name]
        cmd += ["--seeds", seeds, "--quiet", "--out", str(out)]
        info = measured(cmd, out / "train.log")
        (out / "bench.json").write_text(json.dumps(info, indent=1) + "\n")


def kept(result: Path, cap: int, args: argparse.Namespace) -> bool:
    """Whether a peer's result stands: not --force, and made with this epoch cap and --max-batches."""
    if args.force or not result.is_file():
        return False
    r = json.loads(result.read_text())
    if (r["epoch_cap"], r.get("max_batches")) != (cap, args.max_batches):
        print(f"{result}: made with epoch cap {r['epoch_cap']}, max batches {r.get('max_batches')}: retrained")
        return False
    print(f"{result}: kept")
    return True


def peer_runs(peers: list[str], seeds: list[int], epochs: dict[str, int], args: argparse.Namespace) -> None:
    if not PEERS_PYTHON.is_file():
        raise SystemExit(f"{PEERS_PYTHON}: missing; create the peers' environment with `make peers-env`")
    for peer in peers:
        runner, extra, folder = PEERS[peer]
        out = Path(args.out) / folder
        for seed in seeds:
            if kept(out / f"seed{seed}.json", epochs[peer], args):
                continue
            cmd = [str(PEERS_PYTHON), str(HERE / runner), *extra, "--seed", str(seed), "--splits", str(Path(args.out) / "splits"),
                   "--out", str(out), "--epochs", str(epochs[peer])]  # fmt: skip
            for flag in ("threads", "max_batches"):
                if getattr(args, flag):
                    cmd += [f"--{flag.replace('_', '-')}", str(getattr(args, flag))]
            measured(cmd, out / f"seed{seed}.log")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--peers", default=",".join(PEERS), help=f"any of {', '.join(PEERS)}")
    ap.add_argument("--epochs", default=DEFAULT_EPOCHS, help="epoch cap per peer, e.g. sasrec=50,bert4rec=20")
    ap.add_argument("--polyrec", default="polyrec,student,svd,svdpp,logreg,bpr",
                    help="polyrec run folders to make under --bench ('' for none; 'student': the default distilled into configs/student.yaml)")
    ap.add_argument("--bench", default="runs/bench")
    ap.add_argument("--out", default="runs/peers")
    ap.add_argument("--threads", type=int, default=None, help="torch threads of the peers (default: torch's)")
    ap.add_argument("--max-batches", type=int, default=None, help="smoke test: cut the peers' epochs to N batches")
    ap.add_argument("--force", action="store_true", help="retrain what already has results")
    ap.add_argument("--doc", default="docs/results/peers.md")
    ap.add_argument("--command", default="make bench-peers", help="the command to name in the document")
    ap.add_argument("--remark", action="append", default=[], help="a paragraph for the end of the page (repeatable)")
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    epochs = {**dict(kv.split("=") for kv in DEFAULT_EPOCHS.split(",")), **dict(kv.split("=") for kv in args.epochs.split(",") if kv)}
    peers = [p for p in args.peers.split(",") if p]
    unknown = [p for p in peers if p not in PEERS]
    if unknown:
        raise SystemExit(f"unknown peer(s) {', '.join(unknown)}; peers: {', '.join(PEERS)}")

    export_splits.export(load_dataset("ml-100k"), Path(args.out) / "splits", seeds)
    polyrec_runs([n for n in args.polyrec.split(",") if n], args.seeds, Path(args.bench), args.force)
    peer_runs(peers, seeds, {k: int(v) for k, v in epochs.items()}, args)
    smoke = args.max_batches is not None
    print(score.write_doc(Path(args.out), Path(args.bench), None, Path(args.doc), args.command, smoke, args.remark))


if __name__ == "__main__":
    main()
