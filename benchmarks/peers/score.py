"""Score every system's stored predictions with polyrec's metric code → docs/results/peers.md (MAIN venv).

    python benchmarks/peers/score.py [--peers runs/peers] [--bench runs/bench] [--seeds S,...]
                                     [--doc docs/results/peers.md] [--command "make bench-peers"] [--smoke]
                                     [--remark TEXT ...]

Systems, each read from ``<folder>/predictions/<protocol>/seed<k>/test.npz`` (polyrec's layout):

- polyrec's own run folders under ``--bench``: ``polyrec`` (the default model), ``student``
  (a distilled student), ``ensemble-softmax`` and ``ensemble-stacking``, where they exist;
- the classical models polyrec trains through the same pipeline (``polyrec run --model svd |
  svdpp | logreg | bpr``, folders of those names under ``--bench``);
- the peers' folders under ``--peers`` (``recbole-sasrec``, ``recbole-bert4rec``,
  ``recbole-bpr``, ``rechub-deepfm``), written by the runners beside this script.

Every seed's test side is rebuilt with ``prepare`` and scored with ``side_metrics``: the
same split and the same code as ``polyrec run``'s own metrics. Training time and peak memory
come from the peers' ``seed<k>.json``, and for polyrec's folders from ``train.log`` and
``bench.json`` (written by ``bench.py``) or else from ``metrics.json``.
"""

from __future__ import annotations

import argparse
import json
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import yaml
from common import machine_name

from polyrec.config import RunConfig
from polyrec.data.loader import load_dataset
from polyrec.eval.evaluate import side_metrics
from polyrec.eval.prediction_store import load_predictions, predictions_folder
from polyrec.pipeline import aggregate
from polyrec.train.protocol_data import ProtocolData, prepare

# task → protocol and metrics (key after "<protocol>.", label, higher is better); the first is the main one
TASKS: dict[str, tuple[str, list[tuple[str, str, bool]]]] = {
    "rating": ("A", [("rating.rmse", "RMSE", False), ("rating.mae", "MAE", False)]),
    "ctr": ("A", [("ctr.auc", "AUC", True), ("ctr.logloss", "log loss", False)]),
    "profile": ("A", [("profile.gender.auc", "gender AUC", True), ("profile.age.accuracy", "age acc.", True),
                      ("profile.occupation.accuracy", "occupation acc.", True)]),
    "next_item": ("B", [("next_item.ndcg@10", "NDCG@10", True), ("next_item.hr@10", "HR@10", True),
                        ("next_item.mrr@10", "MRR@10", True), ("next_item.ndcg@20", "NDCG@20", True)]),
}  # fmt: skip
SMOKE_BANNER = (
    "> **SMOKE RUN — not a result.** Peers trained for a few batches or epochs only, to prove the pipeline end to "
    "end; regenerate with `make bench-peers`."
)
METHOD = (
    "Every system trains on the split files that `benchmarks/peers/export_splits.py` writes from polyrec's own "
    "`prepare` (protocol A: random 80/10/10 interactions per seed; protocol B: leave-last-out), selects its epoch "
    "on the validation side only (protocol B: NDCG@10 of a full ranking, history excluded, computed by polyrec's "
    "ranking code; DeepFM: validation AUC), and writes its test predictions in polyrec's format; this page scores "
    "them all with `polyrec.eval.evaluate.side_metrics`. Times are per seed on this machine: the peers' from the "
    "start of training to the end of the best epoch's validation, and the whole fit (early-stopping patience "
    "included); polyrec's fit of the protocol (`≤`: its whole fit, an upper bound of its time to best). Peak RSS: "
    "a peer's process for one seed; a polyrec run's whole `polyrec run` process (all seeds, both protocols, "
    "the text encoder included), where `bench.py` ran it. The peers' settings: `benchmarks/peers/README.md`."
)
POLYREC = "polyrec"
# (folder, label, family): family "polyrec" = polyrec's model, its student or its ensembles
BENCH_SYSTEMS = [
    ("polyrec", "polyrec (default)", POLYREC),
    ("student", "polyrec distilled student", POLYREC),
    ("ensemble-softmax", "polyrec ensemble (softmax weights)", POLYREC),
    ("ensemble-stacking", "polyrec ensemble (stacking)", POLYREC),
    ("svd", "SVD, scikit-surprise (`polyrec run --model svd`)", "baseline"),
    ("svdpp", "SVD++, scikit-surprise (`--model svdpp`)", "baseline"),
    ("logreg", "logistic regression on the rating matrix (`--model logreg`)", "baseline"),
    ("bpr", "BPR, implicit (`--model bpr`)", "baseline"),
]
PEER_SYSTEMS = ["recbole-sasrec", "recbole-bert4rec", "recbole-bpr", "rechub-deepfm"]
SASREC = "recbole-sasrec"
LOG_LINE = re.compile(r"protocol (?P<p>[AB]) seed (?P<seed>\d+): (?:best epoch \d+, )?(?P<s>[\d.]+) s")


@dataclass
class Cost:
    """Training cost per seed, as printed: time to the best validation, whole fit, peak memory."""

    to_best: float | None = None
    to_best_bound: bool = False  # the whole fit stands in for the time to best: an upper bound
    total: float | None = None
    peak_mb: float | None = None
    epochs: str = ""
    notes: list[str] = field(default_factory=list)

    def cells(self) -> list[str]:
        best = "—" if self.to_best is None else ("≤ " if self.to_best_bound else "") + seconds(self.to_best)
        total = "—" if self.total is None else seconds(self.total)
        peak = "—" if self.peak_mb is None else f"{self.peak_mb:.0f}"
        return [best, total, self.epochs or "—", peak]


def seconds(x: float) -> str:
    return f"{x:.1f}" if x < 10 else f"{x:.0f}"


@dataclass
class System:
    key: str
    label: str
    family: str  # "polyrec", "baseline" or "peer"
    folder: Path
    results: list[dict] = field(default_factory=list)  # peers: seed<k>.json contents

    def seeds(self, protocol: str, seeds: list[int]) -> list[int]:
        return [s for s in seeds if (predictions_folder(self.folder, protocol, s) / "test.npz").is_file()]

    def cost(self, protocol: str) -> Cost:
        return peer_cost(self.results) if self.family == "peer" else run_cost(self.folder, protocol)


def peer_cost(results: list[dict]) -> Cost:
    mean = lambda k: float(np.mean([r[k] for r in results]))
    epochs = ", ".join(f"{r['best_epoch']}/{r['epochs_run']}" for r in results) + f" (cap {results[0]['epoch_cap']})"
    return Cost(mean("seconds_to_best"), False, mean("train_seconds"), max(r["peak_rss_mb"] for r in results), epochs)


def run_cost(folder: Path, protocol: str) -> Cost:
    """A polyrec run folder's cost: ``model.<P>.seconds_to_best`` and ``model.<P>.train_seconds`` where
    metrics.json has them, else its log's per-protocol fit times if bench.py ran it, else metrics.json's total."""
    cost = Cost(to_best_bound=True)
    log = folder / "train.log"
    fits = [float(m["s"]) for m in LOG_LINE.finditer(log.read_text()) if m["p"] == protocol] if log.is_file() else []
    metrics = json.loads((folder / "metrics.json").read_text()) if (folder / "metrics.json").is_file() else {}
    per_protocol = f"model.{protocol}.seconds_to_best", f"model.{protocol}.train_seconds"
    if all(k in metrics for k in per_protocol):  # a run that records its time to best itself
        cost.to_best, cost.total = (metrics[k] for k in per_protocol)
        cost.to_best_bound = False
    elif fits:
        cost.to_best = cost.total = float(np.mean(fits))
    elif "model.train_seconds" in metrics:
        cost.to_best = cost.total = metrics["model.train_seconds"]
        cost.notes.append("time of both protocols together (the run has no train.log)")
    if "ensemble.fit_seconds" in metrics:
        cost.notes.append(f"time: the members' training; fitting the weights took {metrics['ensemble.fit_seconds']:.1f} s in all")
    teacher = distilled_from(folder)
    if teacher:
        cost.notes.append(f"time: the student's own training; its teacher (`{teacher}`) trained before it, not counted here")
    bench = folder / "bench.json"
    if bench.is_file():
        cost.peak_mb = json.loads(bench.read_text())["peak_rss_mb"]
    return cost


def saved_config(folder: Path) -> dict | None:
    """A run folder's config.yaml as written (None: the run has not finished)."""
    path = folder / "config.yaml"
    return (yaml.safe_load(path.read_text()) or {}) if path.is_file() else None


def distilled_from(folder: Path) -> str | None:
    """The teacher run a distilled student learned from (its config's ``distill.teacher``), else None."""
    return ((saved_config(folder) or {}).get("distill") or {}).get("teacher")


def unusable(folder: Path, cfg: RunConfig) -> str | None:
    """Why a run folder cannot be scored here: unfinished, or made on other data or another ctr threshold."""
    saved = saved_config(folder)
    if saved is None:
        return "no config.yaml (an unfinished run?)"
    data = saved.get("data", {})
    ours = (cfg.data.dataset, cfg.data.path, cfg.data.ctr_threshold)
    if (data.get("dataset"), data.get("path"), data.get("ctr_threshold")) != ours:
        return "made on other data or with another ctr threshold (its config.yaml)"
    return None


def find_systems(bench: Path, peers: Path, cfg: RunConfig) -> tuple[list[System], list[str]]:
    systems, notes = [], []
    for key, label, family in BENCH_SYSTEMS:
        folder = bench / key
        if not (folder / "predictions").is_dir():
            continue
        why = unusable(folder, cfg)
        if why:
            notes.append(f"`{folder}` skipped: {why}")
            continue
        systems.append(System(key, label, family, folder))
    for key in PEER_SYSTEMS:
        folder = peers / key
        results = [json.loads(p.read_text()) for p in sorted(folder.glob("seed*.json"))]
        if results:
            systems.append(System(key, results[0]["system"], "peer", folder, results))
    return systems, notes


def score_system(system: System, protocol: str, seeds: list[int], data: dict[tuple[str, int], ProtocolData], rating_range) -> dict:
    per_seed = []
    for seed in system.seeds(protocol, seeds):
        d = data[(protocol, seed)]
        per_seed.append(side_metrics(d, d.test, load_predictions(system.folder, protocol, seed, "test"), rating_range))
    return aggregate(per_seed)


def cell(m: dict[str, float], key: str) -> str:
    if key not in m:
        return "—"
    std = m.get(f"{key}.std")
    return f"{m[key]:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def grouped(pairs: list[tuple[str, str]]) -> list[str]:
    """One line per note, naming every system it applies to: ``(system, note)`` pairs in."""
    by_note: dict[str, list[str]] = {}
    for who, note in pairs:
        by_note.setdefault(note, []).append(who)
    return [f"- {note}: {', '.join(dict.fromkeys(who))}" for note, who in by_note.items()]


def task_section(task: str, rows: list[tuple[System, dict, list[int]]]) -> list[str]:
    protocol, metrics = TASKS[task]
    cost_head = ["train s/seed to best valid", "train s/seed, whole fit", "best epoch / run", "peak RSS MB"]
    head = ["system", "seeds", *[m[1] for m in metrics], *cost_head]
    lines = [f"## {task} (protocol {protocol})", "", "| " + " | ".join(head) + " |", "|---" * len(head) + "|"]
    notes = []
    for system, m, used in rows:
        cost = system.cost(protocol)
        values = [cell(m, f"{protocol}.{k}") for k, _, _ in metrics]
        lines.append("| " + " | ".join([system.label, ",".join(map(str, used)), *values, *cost.cells()]) + " |")
        notes += [(system.label, n) for n in cost.notes]
    notes = grouped(notes)
    return lines + [""] + notes + ([""] if notes else [])


def verdicts(table: dict[str, list[tuple[System, dict, list[int]]]]) -> list[str]:
    """polyrec's default against the best non-polyrec system on each task's main metric, and the SASRec race."""
    out = []
    if not any(s.key == POLYREC for rows in table.values() for s, _, _ in rows):
        out.append("- polyrec's default run (`<bench>/polyrec`) was not found: nothing to compare it with.")
    for task, rows in table.items():
        protocol, metrics = TASKS[task]
        key, label, higher = metrics[0]
        key = f"{protocol}.{key}"
        ours = [m[key] for s, m, _ in rows if s.key == POLYREC and key in m]
        others = [(m[key], s.label) for s, m, _ in rows if s.family != POLYREC and key in m]
        if not ours or not others:
            continue
        best, who = max(others) if higher else min(others)
        gain = (ours[0] - best) if higher else (best - ours[0])
        verb = "beats" if gain > 0 else "falls short of"
        out.append(f"- {task}: polyrec's {label} {ours[0]:.4f} {verb} the best other system, {who} ({best:.4f}), by {abs(gain):.4f}.")
    rows = {s.key: s for s, _, _ in table.get("next_item", [])}
    if POLYREC in rows and SASREC in rows:
        ours, theirs = rows[POLYREC].cost("B"), rows[SASREC].cost("B")
        if ours.to_best is not None:
            both = any("both protocols" in n for n in ours.notes)
            if not ours.to_best_bound:
                took = f"reaches its best validation NDCG@10 after {ours.to_best:.0f} s per seed"
            else:
                fit = "fit of both protocols together (no train.log)" if both else "protocol-B fit"
                took = f"takes {ours.to_best:.0f} s per seed for its whole {fit}, an upper bound of its time to best"
            faster = "faster" if ours.to_best < theirs.to_best else "slower"
            out.append(
                f"- Training time: polyrec {took}; RecBole SASRec reaches its best validation NDCG@10 after "
                f"{theirs.to_best:.0f} s per seed: polyrec is {faster}."
            )
    return out


def run_interval(result: dict) -> tuple[datetime, datetime]:
    """When a peer's process ran: its result's date is written at the end, to the minute."""
    end = datetime.strptime(result["date"], "%Y-%m-%d %H:%M UTC")
    return end - timedelta(seconds=result["total_seconds"]), end


def conditions_section(systems: list[System], remarks: list[str]) -> list[str]:
    """Per peer and seed: when it ran, with how many threads, how busy the machine was, and which
    other peer runs overlapped it, so that times from a busy machine are read as such."""
    runs = [(s.label, r) for s in systems for r in s.results]
    if not runs and not remarks:
        return []
    lines = ["## How each peer ran", ""]
    if runs:
        lines += [
            "Load average: the machine's 1-minute load after each epoch, averaged (— : not recorded by that run); "
            "above the number of threads the run used, other work shared its cores.",
            "",
            "| system | seed | ran (UTC) | threads | load average / cores | beside other peer runs |",
            "|---|---|---|---|---|---|",
        ]
        slack = timedelta(minutes=1)  # dates are to the minute
        spans = [run_interval(r) for _, r in runs]
        for n, (label, r) in enumerate(runs):
            start, end = spans[n]
            beside = [
                f"{other} seed {o['seed']}"
                for m, (other, o) in enumerate(runs)
                if m != n and spans[m][0] < end - slack and start < spans[m][1] - slack
            ]
            load = "—" if r.get("load_avg") is None else f"{r['load_avg']:.1f}"
            cores = r.get("cores") or "—"
            lines.append(
                f"| {label} | {r['seed']} | {start:%Y-%m-%d %H:%M}–{end:%H:%M} | {r.get('threads') or 'torch default'} "
                f"| {load} / {cores} | {', '.join(beside) or '—'} |"
            )
        lines.append("")
    lines += [*remarks, ""] if remarks else []
    return lines


def write_doc(peers: Path, bench: Path, seeds: list[int] | None, doc: Path, command: str, smoke: bool,
              remarks: list[str] | None = None) -> str:  # fmt: skip
    """Score every system found; ``seeds=None``: every seed that any system has predictions for."""
    cfg = RunConfig()
    ds = load_dataset(cfg.data.dataset)
    systems, notes = find_systems(bench, peers, cfg)
    if seeds is None:
        seeds = sorted({int(f.name[len("seed") :]) for s in systems for f in (s.folder / "predictions").glob("*/seed*")})
    smoke = smoke or any(r.get("max_batches") for s in systems for r in s.results)
    data = {
        (p, s): prepare(ds, p, s, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=p == "A")
        for p in ("A", "B") for s in seeds
    }  # fmt: skip
    table: dict[str, list[tuple[System, dict, list[int]]]] = {}
    for task, (protocol, metrics) in TASKS.items():
        for system in systems:
            used = system.seeds(protocol, seeds)
            m = score_system(system, protocol, seeds, data, ds.rating_range) if used else {}
            if any(f"{protocol}.{k}" in m for k, _, _ in metrics):
                table.setdefault(task, []).append((system, m, used))
    caps = []
    for s in systems:
        capped = [str(r["seed"]) for r in s.results if r["epochs_run"] >= r["epoch_cap"]]
        if capped:
            cap = s.results[0]["epoch_cap"]
            which = f"seed{'s' if len(capped) > 1 else ''} {','.join(capped)}"
            caps.append((s.label, f"{which} ended by the cap of {cap} epochs, not by early stopping"))
    lines = ["# polyrec beside peer systems on MovieLens-100K, the same splits and metric code", ""]
    if smoke:
        lines += [SMOKE_BANNER, ""]
    when = f"{datetime.now(UTC):%Y-%m-%d}, {machine_name()}"
    lines += [f"Command: `{command}` ({when}). Test metrics, mean ± std over the seeds listed in each row.", "", METHOD, ""]
    for task in TASKS:
        if task in table:
            lines += task_section(task, table[task])
    lines += ["## Summary", "", *verdicts(table), ""]
    extra = [f"- {who}: {note}" for who, note in caps] + [f"- {n}" for n in notes]
    if extra:
        lines += ["## Notes", "", *extra, ""]
    lines += conditions_section(systems, remarks or [])
    text = "\n".join(lines)
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text(text)
    return text


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--peers", default="runs/peers")
    ap.add_argument("--bench", default="runs/bench", help="polyrec's run folders (polyrec, svd, ..., ensemble-softmax)")
    ap.add_argument("--seeds", default=None, help="default: every seed some system has predictions for")
    ap.add_argument("--doc", default="docs/results/peers.md")
    ap.add_argument("--command", default="make bench-peers", help="the command to name in the document")
    ap.add_argument("--smoke", action="store_true", help="mark the document as a smoke run")
    ap.add_argument("--remark", action="append", default=[], help="a paragraph for the end of the page (repeatable): "
                    "what the result files cannot tell, e.g. what else ran on the machine")  # fmt: skip
    args = ap.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")] if args.seeds else None
    print(write_doc(Path(args.peers), Path(args.bench), seeds, Path(args.doc), args.command, args.smoke, args.remark))


if __name__ == "__main__":
    main()
