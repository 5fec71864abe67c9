"""`polyrec <command>`: thin wrappers over the library (see README for the tour)."""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from . import __version__
from . import cli_answers as answers
from .process_group import DISTRIBUTED_COMMANDS, launched_rank, launched_world_size

if TYPE_CHECKING:
    from .config import RunConfig

# Language models load from installed packages or local folders; never reach for a hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


def _csv(text: str) -> list[str]:
    return [t.strip() for t in text.split(",") if t.strip()]


_DATA_HELP = "folder with dataset.yaml, or a MovieLens release as it unzips (.dat or .csv files)"


def _add_data_args(p: argparse.ArgumentParser) -> None:
    g = p.add_mutually_exclusive_group()
    g.add_argument("--dataset", help="built-in dataset name (default: ml-100k)")
    g.add_argument("--data", help=_DATA_HELP)


def _ints(text: str) -> list[int]:
    return [int(x) for x in _csv(text)]


def _add_common_args(p: argparse.ArgumentParser, out: str, epochs: str) -> None:
    """Data, config, protocols, seeds, epochs, text and output: shared by run, finetune, pretrain."""
    _add_data_args(p)
    p.add_argument("--config", help="YAML config (see configs/)")
    p.add_argument("--protocols", type=_csv, help="comma-separated, e.g. A,B")
    p.add_argument("--seeds", type=_ints, help="comma-separated seeds (default 0,1,2)")
    p.add_argument("--epochs", type=int, help=epochs)
    p.add_argument("--no-text", action="store_true", help="items as ID embeddings only")
    p.add_argument("--out", default=out, help=f"output folder (default {out})")
    p.add_argument("--quiet", action="store_true", help="no progress bars")


def _add_run_args(run: argparse.ArgumentParser) -> None:
    _add_common_args(run, "runs/latest", "maximum epochs (early stopping may end sooner)")
    run.add_argument("--model", help="polyrec (default) or a baseline: bias, svd, svdpp, bpr, popularity, logreg")
    run.add_argument("--tasks", type=_csv, help="comma-separated: profile,rating,ctr,next_item")
    run.add_argument("--workers", type=int,
                     help="processes that train the (protocol, seed) jobs side by side (default: one per core, at most one per job)")
    run.add_argument("--deploy", action="store_true", help=(
        "train for deployment: each protocol's test side trains too, validation still chooses; the report gives "
        "validation's figures (data.deploy; without --seeds, the first seed alone)"))  # fmt: skip
    run.add_argument("--no-resume", action="store_true",
                     help="train every seed again (default: seeds finished before in --out with this config and data are read back)")


HISTORIES_FILE = (
    "a .csv, .tsv or .parquet file of the histories of users the run has not seen (a user and an item column, "
    "an optional rating column; oldest first)"
)


def _add_known_users(group: argparse._MutuallyExclusiveGroup, printed: str = "printed") -> None:
    """--user (printed), --users and --all-users (written to --out): who a command answers for."""
    group.add_argument("--user", help=f"user id as in the data ({printed})")
    group.add_argument("--users", help="a text file of user ids, one a line (written to --out)")
    group.add_argument("--all-users", action="store_true", help="every known user (written to --out)")


def _add_events(p: argparse.ArgumentParser, what: str) -> None:
    """--events DB: answers read the users' events stored by `polyrec serve` (serve/live.py)."""
    p.add_argument("--events", metavar="DB", help=f"an event store of `polyrec serve`, read as `polyrec serve --live-events` reads it: {what}")


def _add_id_columns(p: argparse.ArgumentParser, of: str) -> None:
    """--user-column and --item-column of the file ``of`` names."""
    p.add_argument("--user-column", default="user_id", help=f"{of}: its user id column (default user_id)")
    p.add_argument("--item-column", default="item_id", help=f"{of}: its item id column (default item_id)")


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="polyrec", description="Multi-task recommendation on language-model features.")
    parser.add_argument("--version", action="version", version=f"polyrec {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="train and evaluate under protocols A and B; write runs/NAME")
    _add_run_args(run)
    pre = run.add_mutually_exclusive_group()
    pre.add_argument("--pretrain", dest="pretrain", action="store_true", default=None,
                     help="self-supervised pretraining per protocol and seed before fine-tuning")
    pre.add_argument("--no-pretrain", dest="pretrain", action="store_false", help="no pretraining (the default)")
    pre.add_argument("--init", help="start from a `polyrec pretrain` folder (its checkpoint per protocol and seed)")

    ft = sub.add_parser("finetune", help="`polyrec run` starting from a `polyrec pretrain` checkpoint")
    _add_run_args(ft)
    ft.add_argument("--init", required=True, help="folder written by `polyrec pretrain`")

    pt = sub.add_parser("pretrain", help="self-supervised pretraining on interactions only; one checkpoint per protocol and seed")
    _add_common_args(pt, "runs/pretrain", "pretraining epochs (default pretrain.epochs)")

    dist = sub.add_parser("distill", help="train a small student from a teacher run (soft labels + K-means clusters)")
    dist.add_argument("--teacher", required=True, help="run folder of the teacher (`polyrec run --config configs/teacher.yaml`)")
    dist.add_argument("--config", help="the student's YAML config (e.g. configs/student.yaml; default: polyrec's defaults)")
    dist.add_argument("--protocols", type=_csv, help="a subset of the teacher's protocols")
    dist.add_argument("--seeds", type=_ints, help="a subset of the teacher's seeds")
    dist.add_argument("--epochs", type=int, help="maximum epochs (early stopping may end sooner)")
    dist.add_argument("--out", default="runs/student", help="output folder (default runs/student)")
    dist.add_argument("--quiet", action="store_true", help="no progress bars")

    data = sub.add_parser("data", help="inspect a dataset")
    data_sub = data.add_subparsers(dest="data_command", required=True)
    describe = data_sub.add_parser("describe", help="counts, sparsity, rating histogram, attributes")
    describe.add_argument("name", nargs="?", help="built-in dataset name (default ml-100k)")
    describe.add_argument("--data", help=_DATA_HELP)

    ens = sub.add_parser("ensemble", help="combine the predictions of several runs; weights fitted on validation")
    ens.add_argument("--runs", nargs="+", required=True, help="member run folders (same data and seeds)")
    ens.add_argument("--method", default="softmax", choices=["softmax", "stacking"], help="softmax weights (default) or stacking")
    ens.add_argument("--out", default="runs/ensemble", help="run folder (default runs/ensemble)")

    rec = sub.add_parser("recommend", help="top-k items for a user, or for many into a file, from a saved run")
    rec.add_argument("--run", required=True, help="run folder written by `polyrec run`")
    who = rec.add_mutually_exclusive_group(required=True)
    _add_known_users(who)
    who.add_argument("--histories", help=f"{HISTORIES_FILE}: each user's top k from theirs alone (written to --out)")
    _add_id_columns(rec, "with --histories")
    rec.add_argument("--out", help="with --users, --all-users or --histories: a .csv or .parquet file of user_id, rank, item_id, score")
    rec.add_argument("-k", "--k", type=int, default=10, help="how many items (default 10)")
    seen = rec.add_mutually_exclusive_group()
    seen.add_argument("--include-seen", action="store_true", help="do not filter items the user already has")
    seen.add_argument(
        "--exclude-seen", action="store_true", help="filter them (the default, unless the run has data.repeat_items)"
    )
    rec.add_argument("--popularity-penalty", type=float, default=0.0, metavar="BETA",
                     help="re-rank towards less-taken items by BETA (in a user's score spreads; default 0: the model's ranking)")
    _add_events(rec, "each user's history grows by their events since the run's data; with --user, also a user the run does not know")
    rec.add_argument("--quiet", action="store_true", help="no progress bar")

    pred = sub.add_parser("predict", help="predicted rating and engagement for the (user, item) pairs of a file")
    pred.add_argument("--run", required=True, help="run folder written by `polyrec run` (any --model, or an ensemble)")
    pred.add_argument("--pairs", required=True, help=".csv, .tsv or .parquet file with a user and an item column")
    _add_id_columns(pred, "--pairs and --histories")
    pred.add_argument("--histories", help=(
        f"{HISTORIES_FILE}: their pairs are predicted from these, as a user listed there is even where the run knows them"
    ))  # fmt: skip
    pred.add_argument("--out", required=True, help=".csv or .parquet file: the pairs with rating and/or ctr columns")
    _add_events(pred, "a user with events since the run's data is predicted from their history grown by them, "
                      "also a user the run does not know")  # fmt: skip

    prof = sub.add_parser("profile", help="predicted attributes of users, known or given by a history; their interests with --user")
    prof.add_argument("--run", required=True, help="run folder written by `polyrec run` (any --model, or an ensemble)")
    who = prof.add_mutually_exclusive_group(required=True)
    _add_known_users(who, "printed, with the user's interests")
    who.add_argument("--histories", help=f"{HISTORIES_FILE}: each user profiled from theirs alone (written to --out)")
    _add_id_columns(prof, "with --histories")
    prof.add_argument("--out", help="a .csv or .parquet file of user_id, attribute, rank, value, probability (every class of every attribute)")
    prof.add_argument("--top", type=int, default=3, help="with --user: the most likely classes to print per attribute (default 3)")
    _add_events(prof, "a user with events since the run's data is profiled from their history grown by them; "
                      "with --user, also a user the run does not know")  # fmt: skip
    prof.add_argument("--quiet", action="store_true", help="no progress bar")

    why = sub.add_parser("explain", help="why an item scores as it does for a user: the score's parts and the history behind them")
    why.add_argument("--run", required=True, help="run folder written by `polyrec run` (polyrec's own model)")
    why.add_argument("--user", required=True, help="user id as in the data")
    why.add_argument("--item", required=True, help="item id as in the data")
    why.add_argument("--top", type=int, default=5, help="history items to name (default 5)")
    why.add_argument("--occlusion", action="store_true", help="also: how the score moves without each history item (one model pass per item)")
    why.add_argument("--histories", help=f"{HISTORIES_FILE}: --user is explained from theirs")
    _add_events(why, "--user is explained from their history grown by their events since the run's data, where there are any")
    _add_id_columns(why, "with --histories")

    fair = sub.add_parser("fairness", help="a run's test metrics by user attribute and by item popularity")
    fair.add_argument("--run", required=True, help="run folder written by `polyrec run` (any --model, or an ensemble)")
    fair.add_argument("--out", help="Markdown file (default <run>/fairness.md; the figures as JSON beside it)")

    rob = sub.add_parser("robustness", help="a run's next-item metrics with its test histories damaged: items dropped, cut, replaced, shuffled")
    rob.add_argument("--run", required=True, help="run folder written by `polyrec run` (polyrec's own model, protocol B)")
    rob.add_argument("--out", help="Markdown file (default <run>/robustness.md; the figures as JSON beside it)")
    rob.add_argument("--quiet", action="store_true", help="no progress bar")

    exp = sub.add_parser("export", help="the run's next-item recommender as ONNX and numpy files that answer without torch")
    exp.add_argument("--run", required=True, help="run folder written by `polyrec run` (polyrec's own model)")
    exp.add_argument("--out", required=True, help="folder to write the export to (new, empty or an earlier export)")
    exp.add_argument("--int8", action="store_true", help="store the user encoder's matrix weights in 8 bits (dynamic quantization)")
    exp.add_argument("--check-users", type=int, default=256, help="known users scored both ways to check the export (default 256)")

    srv = sub.add_parser("serve", help="HTTP service over a saved run (needs the extra: pip install 'polyrec[serve]')")
    srv.add_argument("--run", required=True, help="run folder written by `polyrec run`")
    srv.add_argument("--host", default="127.0.0.1")
    srv.add_argument("--port", type=int, default=8000)
    srv.add_argument("--events", default="events.sqlite", help="SQLite file for feedback events (default events.sqlite)")
    srv.add_argument("--exact-below", type=int, default=50_000, help="catalogues this large or larger get an IVF index")
    srv.add_argument("--nprobe", type=int, default=16, help="IVF groups scanned per query")
    srv.add_argument("--live-events", action="store_true",
                     help="a user's recommendations, predictions, profile and explanations read their events stored since the run's data (docs/serving.md)")  # fmt: skip

    events = sub.add_parser("events", help="the feedback event store of `polyrec serve`")
    events_sub = events.add_subparsers(dest="events_command", required=True)
    export = events_sub.add_parser("export", help="write the events as a dataset folder for `polyrec run --data`")
    export.add_argument("--db", required=True, help="the SQLite event store")
    export.add_argument("--out", required=True, help="folder to write dataset.yaml and the CSV files to")
    export.add_argument("--run", help="put this run's interactions, items and users in the dataset too")

    bench = sub.add_parser("bench", help="studies over many trainings, written to docs/results/")
    bench_sub = bench.add_subparsers(dest="bench_command", required=True)
    mtl = bench_sub.add_parser(
        "mtl", help="each task alone vs shared-bottom/MMoE/PLE x fixed/uncertainty/GradNorm/PCGrad, protocols A and B"
    )
    mtl.add_argument("--archs", type=_csv, help="subset of shared_bottom,mmoe,ple (default: all)")
    mtl.add_argument("--weightings", type=_csv, help="subset of fixed,uncertainty,gradnorm,pcgrad (default: all)")
    mtl.add_argument("--seeds", type=lambda s: [int(x) for x in _csv(s)], default=[0, 1, 2], help="default 0,1,2")
    mtl.add_argument("--epochs", type=int, default=12, help="maximum epochs per training (default 12; `run`: 80; 6: 48-64 minutes for the whole study on 2 cores, docs/multi-task.md)")
    mtl.add_argument("--config", help="YAML base config (default: polyrec run's defaults)")
    mtl.add_argument("--out", default="runs/mtl", help="one run folder per configuration; finished ones are reused")
    mtl.add_argument("--doc", default="docs/results/mtl.md", help="results document (plots beside it)")
    mtl.add_argument("--data", help=_DATA_HELP + " (default: MovieLens-100K)")
    mtl.add_argument("--quiet", action="store_true", help="no progress bars")
    bd = bench_sub.add_parser("distill", help="teacher, student alone, distilled student, each distillation part removed")
    bd.add_argument("--teacher-config", default="configs/teacher.yaml", help="the teacher's YAML config")
    bd.add_argument("--config", default="configs/student.yaml", help="the student's YAML config (its distill: section too)")
    bd.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="default 0,1,2")
    bd.add_argument("--ablation-seeds", type=_ints, help="seeds of the part-removed runs (default: --seeds)")
    bd.add_argument("--ablate", type=_csv, help="parts to remove one at a time (default: all of cluster,rating,ctr,profile,next_item that are on; '' for none)")
    bd.add_argument("--epochs", type=int, help="maximum epochs per training (default: the configs')")
    bd.add_argument("--threads", type=int, help="torch threads per training (results do not depend on it)")
    bd.add_argument("--out", default="runs/distill", help="one run folder per configuration; finished ones are reused")
    bd.add_argument("--doc", default="docs/results/distill.md", help="results document")
    bd.add_argument("--data", help=_DATA_HELP + " (default: MovieLens-100K)")
    bd.add_argument("--quiet", action="store_true", help="no progress bars")
    bp = bench_sub.add_parser("pretrain", help="no pretraining vs each objective alone vs all, protocols A and B; cold items")
    bp.add_argument("--seeds", type=_ints, default=[0, 1, 2], help="default 0,1,2")
    bp.add_argument("--epochs", type=int, default=12, help="maximum fine-tuning epochs per training (default 12)")
    bp.add_argument("--pretrain-epochs", type=int, help="pretraining epochs (default pretrain.epochs)")
    bp.add_argument("--config", help="YAML base config (default: polyrec run's defaults)")
    bp.add_argument("--out", default="runs/pretrain-bench", help="one run folder per configuration; finished ones are reused")
    bp.add_argument("--doc", default="docs/results/pretrain.md", help="results document")
    bp.add_argument("--data", help=_DATA_HELP + " (default: MovieLens-100K)")
    bp.add_argument("--quiet", action="store_true", help="no progress bars")
    return parser


def _run(args: argparse.Namespace) -> None:
    from .eval.report import run_table
    from .pipeline import run

    cfg = _config(args)
    if args.model:
        cfg.model.name = args.model
    if args.tasks:
        cfg.tasks = args.tasks
    if args.epochs:
        cfg.train.epochs = args.epochs
    if args.workers:
        cfg.train.workers = args.workers
    if getattr(args, "pretrain", None) is not None:
        cfg.pretrain.enabled = args.pretrain
    if getattr(args, "init", None):
        cfg.pretrain.init, cfg.pretrain.enabled = args.init, False
    result = run(cfg, args.out, progress=not args.quiet, resume=not args.no_resume)
    if launched_rank() > 0:
        return  # rank 0 reports (process_group.py)
    print()
    if cfg.data.deploy:
        print("validation figures (a run for deployment has no test side):")
    print(run_table(result.metrics, cfg))
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nwrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'}")


def _config(args: argparse.Namespace) -> RunConfig:
    """The config file (or the defaults) with the data, protocol, seed and text flags applied."""
    from .config import RunConfig

    cfg = RunConfig.load(args.config) if args.config else RunConfig()
    if args.data:
        cfg.data.path, cfg.data.dataset = args.data, None
    elif getattr(args, "dataset", None):
        cfg.data.dataset, cfg.data.path = args.dataset, None
    if getattr(args, "protocols", None):
        cfg.protocols = [p.upper() for p in args.protocols]
    if getattr(args, "deploy", False):
        cfg.data.deploy = True
        if not args.seeds:  # one model is served (the first seed's); more seeds only measure validation's spread
            cfg.seeds = cfg.seeds[:1]
    if args.seeds:
        cfg.seeds = args.seeds
    if getattr(args, "no_text", False):
        cfg.text.enabled = False
    return cfg


def _distill(args: argparse.Namespace) -> None:
    from .config import RunConfig
    from .distill import distill
    from .eval.report import run_table

    student = RunConfig.load(args.config) if args.config else RunConfig()
    if args.epochs:
        student.train.epochs = args.epochs
    protocols = [p.upper() for p in args.protocols] if args.protocols else None
    result = distill(args.teacher, args.out, student, not args.quiet, protocols=protocols, seeds=args.seeds)
    print()
    used = RunConfig.load(Path(args.out) / "config.yaml")  # the teacher's data section: a deployment's too
    used.model.name = "student"
    print(run_table(result.metrics, used))
    for note in result.notes:
        print(f"note: {note}")
    print(f"\nwrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'}")


def _pretrain(args: argparse.Namespace) -> None:
    from .train.pretrain import pretrain_run

    cfg = _config(args)
    if args.epochs is not None:
        cfg.pretrain.epochs = args.epochs
    out = pretrain_run(cfg, args.out, progress=not args.quiet)
    print(f"\nwrote {out}/<protocol>/seed<k>/; fine-tune with: polyrec finetune --init {out}")


def _ensemble(args: argparse.Namespace) -> None:
    import yaml

    from .ensemble.recommender import ENSEMBLE_FILE
    from .ensemble.run import ensemble
    from .eval.report import results_table

    result = ensemble(args.runs, args.out, args.method)
    names = [m["name"] for m in yaml.safe_load((Path(args.out) / ENSEMBLE_FILE).read_text())["members"]]
    print()
    print(results_table(result.metrics, "ensemble", prefix="member", others=names))
    print(f"\nwrote {Path(args.out) / 'report.md'} and {Path(args.out) / 'metrics.json'}")


def _describe(args: argparse.Namespace) -> None:
    from .config import RunConfig
    from .data.describe import describe
    from .data.loader import load_dataset
    from .pipeline import run_plan

    ds = load_dataset(None, args.data) if args.data else load_dataset(args.name)
    _, _, notes = run_plan(ds, RunConfig())  # what `polyrec run` with the defaults would leave out
    print(describe(ds, notes))


def _serve(args: argparse.Namespace) -> None:
    try:
        from .serve.app import ServeSettings, serve
        from .serve.retrieval import IndexSettings
    except ModuleNotFoundError as exc:
        raise ValueError(f"`polyrec serve` needs {exc.name}: pip install 'polyrec[serve]'") from None

    settings = ServeSettings(index=IndexSettings(exact_below=args.exact_below, nprobe=args.nprobe), live_events=args.live_events)
    serve(args.run, args.host, args.port, args.events, settings)


def _events(args: argparse.Namespace) -> None:
    from .serve.events import export_events

    out, notes = export_events(args.db, args.out, args.run)
    for note in notes:
        print(f"note: {note}")
    print(f"wrote {out / 'dataset.yaml'}; train with: polyrec run --data {out}")


def _bench_distill(args: argparse.Namespace) -> None:
    from .bench.distill import bench_distill
    from .config import RunConfig

    configs = []
    for path in (args.teacher_config, args.config):
        cfg = RunConfig.load(path)
        _measuring(cfg, "polyrec bench distill")
        if args.data:
            cfg.data.path, cfg.data.dataset = args.data, None
        cfg.seeds = args.seeds
        if args.epochs:
            cfg.train.epochs = args.epochs
        if args.threads:
            cfg.train.threads = args.threads
        configs.append(cfg)
    command = " ".join(
        ["polyrec bench distill", f"--teacher-config {args.teacher_config} --config {args.config}"]
        + ([f"--data {args.data}"] if args.data else [])
        + [f"--seeds {','.join(map(str, args.seeds))}"]
        + ([f"--ablation-seeds {','.join(map(str, args.ablation_seeds))}"] if args.ablation_seeds else [])
        + ([f"--ablate '{','.join(args.ablate)}'"] if args.ablate is not None else [])  # '': no ablations
        + ([f"--epochs {args.epochs}"] if args.epochs else [])
        + [f"--out {args.out} --doc {args.doc}"]
    )
    doc = bench_distill(*configs, args.out, args.doc, args.ablation_seeds, args.ablate, command, progress=not args.quiet)
    print(f"\nwrote {doc}")


def _measuring(cfg: RunConfig, command: str) -> None:
    """A study compares test figures: a config for deployment (no test side) cannot run one."""
    if cfg.data.deploy:
        raise ValueError(f"{command} measures on the test side: its config must not set data.deploy")


def _bench(args: argparse.Namespace) -> None:
    from .bench.mtl import bench_mtl
    from .bench.pretrain import bench_pretrain

    if args.bench_command == "distill":
        _bench_distill(args)
        return
    cfg = _config(args)
    _measuring(cfg, f"polyrec bench {args.bench_command}")
    cfg.train.epochs = args.epochs
    if args.bench_command == "pretrain":
        if args.pretrain_epochs is not None:
            cfg.pretrain.epochs = args.pretrain_epochs
        given = {"data": args.data, "config": args.config, "pretrain-epochs": args.pretrain_epochs}
        command = " ".join(
            ["polyrec bench pretrain"]
            + [f"--{k} {v}" for k, v in given.items() if v is not None]
            + [f"--seeds {','.join(map(str, args.seeds))} --epochs {args.epochs} --out {args.out} --doc {args.doc}"]
        )
        doc = bench_pretrain(cfg, args.out, args.doc, command, progress=not args.quiet)
        print(f"\nwrote {doc}")
        return
    # The command behind the document, written out with every value it used.
    given = {"data": args.data, "config": args.config, "archs": args.archs, "weightings": args.weightings}
    command = " ".join(
        ["polyrec bench mtl"]
        + [f"--{k} {','.join(v) if isinstance(v, list) else v}" for k, v in given.items() if v]
        + [f"--seeds {','.join(map(str, args.seeds))} --epochs {args.epochs} --out {args.out} --doc {args.doc}"]
    )
    doc = bench_mtl(cfg, args.out, args.doc, args.archs, args.weightings, command, progress=not args.quiet)
    print(f"\nwrote {doc}")


def main(argv: list[str] | None = None) -> int:
    from .data.errors import DataError
    from .export.format import MissingExtra

    args = _parser().parse_args(argv)
    if launched_world_size() > 1 and args.command not in DISTRIBUTED_COMMANDS:
        print(
            f"polyrec: error: `polyrec {args.command}` runs in one process; under torchrun only "
            f"{' and '.join(f'`polyrec {c}`' for c in DISTRIBUTED_COMMANDS)} train across processes",
            file=sys.stderr,
        )
        return 2
    handlers = {
        "run": _run, "finetune": _run, "pretrain": _pretrain, "ensemble": _ensemble, "data": _describe, "recommend": answers.recommend, "fairness": answers.fairness, "robustness": answers.robustness, "explain": answers.explain, "predict": answers.predict, "profile": answers.profile, "export": answers.export, "serve": _serve, "events": _events,
        "bench": _bench,
        "distill": _distill,
    }
    try:
        handlers[args.command](args)
    except BrokenPipeError:
        # The reader went away (`polyrec recommend … | head`): stop quietly, as a program
        # killed by SIGPIPE would, and keep Python from failing again flushing stdout at exit.
        try:
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        except OSError:  # stdout is no file (captured in-process): nothing is left to flush
            pass
        return 128 + signal.SIGPIPE
    except (DataError, FileNotFoundError, KeyError, ValueError, MissingExtra) as exc:
        # One clear line, no traceback: the message names the file, row or field at fault.
        message = exc.args[0] if isinstance(exc, KeyError) and exc.args else str(exc)
        print(f"polyrec: error: {message}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
