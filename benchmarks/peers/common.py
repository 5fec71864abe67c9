"""What every peer runner shares (PEERS venv): polyrec's ranking and prediction-store code,
the per-epoch clock, and the result file.

polyrec itself is not installed in the peers' environment (its dependencies clash with
RecBole's caps); its two modules that the runners need depend on numpy and scipy only, so
they are loaded from the source tree by path: the peers rank and store predictions with
the very code that scores polyrec.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import platform
import resource
import sys
import time
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd

ROOT = Path(__file__).resolve().parents[2]
VALID_METRIC = {"A": "auc", "B": "ndcg@10"}  # what each protocol's peers are selected on


def polyrec_module(relative: str) -> ModuleType:
    """``src/polyrec/<relative>`` loaded as a standalone module (it must import no polyrec code)."""
    path = ROOT / "src" / "polyrec" / relative
    name = "polyrec_" + relative.replace("/", "_").removesuffix(".py")
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    return module


ranking = polyrec_module("eval/ranking.py")
prediction_store = polyrec_module("eval/prediction_store.py")


def read_meta(splits: Path) -> dict:
    return json.loads((Path(splits) / "meta.json").read_text())


def protocol_b_sides(folder: Path) -> dict[str, tuple[np.ndarray, np.ndarray, list[np.ndarray]]]:
    """Protocol B's valid and test sides from ``export_splits.py``'s files of one seed: next-item
    users, their target items and their input histories in chronological order (test: train +
    the valid item, as polyrec's test input), in polyrec's indices."""
    train = pd.read_csv(folder / "recbole" / "pr" / "pr.train.inter", sep="\t")
    per_user = train.groupby("user_id:token", sort=False)["item_id:token"].agg(list).to_dict()
    with np.load(folder / "targets.npz") as z:
        t = {k: z[k] for k in z.files}
    valid_item = dict(zip(t["valid_users"].tolist(), t["valid_items"].tolist()))
    sides = {}
    for side in ("valid", "test"):
        users, items = t[f"{side}_users"], t[f"{side}_items"]
        history = [np.asarray(per_user.get(int(u), []), dtype=np.int64) for u in users]
        if side == "test":
            history = [np.r_[h, [valid_item[int(u)]]].astype(np.int64) if int(u) in valid_item else h for h, u in zip(history, users)]
        sides[side] = (users, items, history)
    return sides


def ndcg_at_10(scores: np.ndarray, targets: np.ndarray, history: list[np.ndarray]) -> float:
    """Validation NDCG@10 under protocol B: full ranking, history excluded, ties against the target."""
    return ranking.ranking_metrics(ranking.target_ranks(scores, targets, history))["ndcg@10"]


def machine_name() -> str:
    """CPU model and core count, e.g. "AMD EPYC 7B13, 2 cores"."""
    cpu = platform.processor() or platform.machine()
    info = Path("/proc/cpuinfo")
    if info.is_file():
        names = [line.split(":", 1)[1].strip() for line in info.read_text().splitlines() if line.startswith("model name")]
        cpu = names[0] if names else cpu
    return f"{cpu}, {os.cpu_count()} cores"


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


@dataclass
class EpochClock:
    """Validation score and elapsed training time after each epoch; the best epoch is the
    first one with the highest score (what early stopping keeps)."""

    start: float = field(default_factory=time.perf_counter)
    epochs: list[int] = field(default_factory=list)
    seconds: list[float] = field(default_factory=list)
    scores: list[float] = field(default_factory=list)
    # The machine's 1-minute load average after each epoch: what else ran beside the training
    # (a time measured on a busy machine is not comparable with one measured on a quiet one).
    loads: list[float] = field(default_factory=list)

    def record(self, epoch: int, score: float) -> None:
        self.epochs.append(int(epoch))
        self.seconds.append(time.perf_counter() - self.start)
        self.scores.append(float(score))
        self.loads.append(os.getloadavg()[0])

    @property
    def best(self) -> int:
        return int(np.argmax(self.scores)) if self.scores else -1


@dataclass
class PeerResult:
    """``<out>/seed<k>.json``: what score.py reports beside the metrics."""

    system: str
    protocol: str
    seed: int
    valid_metric: str
    epoch_cap: int
    seconds_to_best: float  # training start → end of the best epoch's validation
    train_seconds: float  # the whole fit, early-stopping patience included
    total_seconds: float  # the whole process: data loading, training, predictions
    peak_rss_mb: float
    best_epoch: int  # 1-based
    epochs_run: int
    best_valid: float
    valid_curve: list[float]
    max_batches: int | None = None  # set in smoke runs: epochs cut to this many batches
    threads: int | None = None
    load_avg: float | None = None  # mean 1-minute load average over the epochs (None: not recorded)
    cores: int | None = field(default_factory=os.cpu_count)
    machine: str = field(default_factory=lambda: machine_name())
    date: str = field(default_factory=lambda: f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC")
    command: str = field(default_factory=lambda: " ".join(sys.argv))


def peer_arguments(doc: str, epochs: int, patience: int) -> argparse.ArgumentParser:
    """The options every runner takes; the caller adds its own and parses."""
    ap = argparse.ArgumentParser(description=doc, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seed", type=int, required=True)
    ap.add_argument("--splits", default="runs/peers/splits", help="what export_splits.py wrote")
    ap.add_argument("--out", default=None, help="the peer's folder (default runs/peers/<peer>)")
    ap.add_argument("--epochs", type=int, default=epochs, help=f"epoch cap (default {epochs}: the library's own)")
    ap.add_argument("--patience", type=int, default=patience, help=f"early-stopping patience in epochs (default {patience})")
    ap.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    ap.add_argument("--max-batches", type=int, default=None, help="smoke test only: cut every epoch to N batches")
    return ap


def clock_result(system: str, protocol: str, args: argparse.Namespace, clock: EpochClock, train_seconds: float,
                 start: float, command: str) -> PeerResult:  # fmt: skip
    """The result of a fit whose validations ``clock`` recorded; ``start``: the process's start."""
    best = clock.best
    return PeerResult(
        system=system, protocol=protocol, seed=args.seed, valid_metric=VALID_METRIC[protocol], epoch_cap=args.epochs,
        seconds_to_best=clock.seconds[best], train_seconds=train_seconds, total_seconds=time.perf_counter() - start,
        peak_rss_mb=peak_rss_mb(), best_epoch=clock.epochs[best] + 1, epochs_run=len(clock.epochs),
        best_valid=clock.scores[best], valid_curve=clock.scores, max_batches=args.max_batches, threads=args.threads,
        load_avg=float(np.mean(clock.loads)) if clock.loads else None, command=command,
    )  # fmt: skip


def finish(out: Path, protocol: str, seed: int, preds: dict[str, dict[str, np.ndarray]], result: PeerResult) -> None:
    """Store the valid and test predictions in polyrec's layout, then the result file."""
    for side, pred in preds.items():
        prediction_store.save_predictions(out, protocol, seed, side, pred)
    (Path(out) / f"seed{seed}.json").write_text(json.dumps(asdict(result), indent=1) + "\n")
    print(
        f"{result.system} seed {seed}: best epoch {result.best_epoch}/{result.epochs_run}, valid {result.valid_metric} "
        f"{result.best_valid:.4f}, {result.seconds_to_best:.0f} s to best, {result.train_seconds:.0f} s training, "
        f"{result.total_seconds:.0f} s total, peak {result.peak_rss_mb:.0f} MB"
    )
