"""`polyrec <command>`: thin wrappers over the library (see README for the tour)."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

# Language models load from installed packages or local folders; never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dataset", help="built-in dataset name (default: ml-100k)")
    g.add_argument("--data", help="folder with dataset.yaml, or MovieLens .dat files")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyrec", description="Multi-task recommendation on language-model features.")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate under protocols A and B; write runs/NAME")
    _add_data_args(run)
    run.add_argument("--config", help="YAML config (see configs/)")
    run.add_argument("--protocols", type=_csv, help="comma-separated, e.g. A,B")
    run.add_argument("--tasks", type=_csv, help="comma-separated: profile,rating,ctr,next_item")
    run.add_argument("--seeds", type=lambda s: [int(x) for x in _csv(s)], help="comma-separated seeds (default 0,1,2)")
    run.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    run.add_argument("--no-text", action="store_true", help="items as ID embeddings only")
    run.add_argument("--out", default="runs/latest", help="run folder (default runs/latest)")
    run.add_argument("--quiet", action="store_true", help="no progress bars")

    data = sub.add_parser("data", help="inspect a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    describe = data_sub.add_parser("describe", help="counts, sparsity, rating histogram, attributes")
    describe.add_argument("name", nargs="?", help="built-in dataset name (default ml-100k)")
    describe.add_argument("--data", help="folder with dataset.yaml, or MovieLens .dat files")

    rec = sub.add_parser("recommend", help="top-k items for a user from a saved run")
    rec.add_argument("--run", required=True, help="run folder written by `polyrec run`")
    rec.add_argument("--user", required=True, help="user id as in the data")
    rec.add_argument("-k", type=int, default=10)
    rec.add_argument("--include-seen", action="store_true", help="do not filter items the user already has")
    return parser


def _run(args: argparse.Namespace) -> None:
    from .config import RunConfig
    from .eval.report import results_table
    from .pipeline import run

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if args.data:
        cfg.data.path, cfg.data.dataset = args.data, None
    elif args.dataset:
        cfg.data.dataset, cfg.data.path = args.dataset, None
    if args.protocols:
        cfg.protocols = [p.upper() for p in args.protocols]
    if args.tasks:
        cfg.tasks = args.tasks
    if args.seeds:
        cfg.seeds = args.seeds
    if args.epochs:
        cfg.train.epochs = args.epochs
    if args.no_text:
        cfg.text.enabled = False
    result = run(cfg, args.out, progress=not args.quiet)
    print()
    print(results_table(result.metrics))
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nwrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'}")


def _describe(args: argparse.Namespace) -> None:
    from .data.describe import describe
    from .data.loader import load_dataset

    ds = load_dataset(None, args.data) if args.data else load_dataset(args.name)
    print(describe(ds))


def _recommend(args: argparse.Namespace) -> None:
    from .recommender import load

    recs = load(args.run).recommend(args.user, k=args.k, exclude_seen=not args.include_seen)
    for rank, row in enumerate(recs.itertuples(index=False), 1):
        print(f"{rank:>3}. {row.text}  (item {row.item_id}, score {row.score:.3f})")


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DataError

    args = _parser().parse_args(argv)
    handlers = {"run": _run, "data": _describe, "recommend": _recommend}
    try:
        handlers[args.command](args)
    except (DataError, FileNotFoundError, KeyError, ValueError) as exc:
        # One clear line, no traceback: the message names the file, row or field at fault.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"polyrec: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
