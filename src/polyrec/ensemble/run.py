"""Recipe for `polyrec ensemble`: members' validation predictions → fitted weights per
task → the combined test predictions, scored by the same metric code as every run.

The members are run folders written by ``polyrec run`` (any ``--model``) on the same
data with the same seeds; each kept its validation and test predictions, so nothing is
retrained. Per protocol, seed and task, the weights are fitted on validation only (see
``combine.py``); a task only one member does passes through with weight 1.
"""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Callable

import numpy as np
import yaml

from ..config import PROTOCOL_TASKS, RunConfig
from ..data.tables import Dataset
from ..eval.evaluate import SidePredictions, ProfilePool, side_metrics
from ..eval.prediction_store import load_predictions, predictions_folder, save_predictions
from ..pipeline import RunResult, aggregate, load_configured_dataset
from ..recommender import save_tables
from ..train.protocol_data import EvalSide, ProtocolData, prepare_configured
from .combine import METHODS, Combiner
from .report import write_ensemble_report

from .recommender import ENSEMBLE_FILE


def member_names(runs: list[Path], cfgs: list[RunConfig]) -> list[str]:
    """Each member's model name, or its folder name where two members share a model."""
    models = [c.model.name for c in cfgs]
    return [m if models.count(m) == 1 else Path(r).name for m, r in zip(models, runs)]


def check_members(runs: list[Path]) -> list[RunConfig]:
    if len(runs) < 2:
        raise ValueError("an ensemble needs at least two member runs")
    cfgs = []
    for r in runs:
        if not (Path(r) / "config.yaml").is_file():
            raise FileNotFoundError(f"{r}/config.yaml: missing; members must be run folders written by `polyrec run`")
        cfgs.append(RunConfig.load(Path(r) / "config.yaml"))
        if cfgs[-1].data.deploy:
            raise ValueError(f"{r}: a run for deployment (data.deploy) has no test predictions to measure an ensemble on")
    first = cfgs[0]
    for r, c in zip(runs[1:], cfgs[1:]):
        if c.data != first.data:
            raise ValueError(f"{r}: trained on other data than {runs[0]} ({c.data} vs {first.data})")
        if c.seeds != first.seeds:
            raise ValueError(f"{r}: seeds {c.seeds} differ from {runs[0]}'s {first.seeds}")
    return cfgs


def seen_mask(side: EvalSide, n_items: int) -> np.ndarray:
    """(users, items) bool: what the side's ranking leaves out for each next-item user."""
    mask = np.zeros((len(side.next_users), n_items), dtype=bool)
    for row, items in enumerate(side.excluded(side.next_users) or []):
        mask[row, items] = True
    return mask


def truth(data: ProtocolData, side: EvalSide, key: str) -> np.ndarray:
    if key == "rating":
        return side.pairs.ratings
    if key == "ctr":
        return side.pairs.labels
    if key.startswith("profile."):
        return data.profile_true[key[len("profile.") :]][side.profile_users]
    return side.next_items


def combine_side(
    data: ProtocolData, n_items: int, valid: list[SidePredictions], test: list[SidePredictions], method: str
) -> tuple[SidePredictions, dict[str, Combiner | int]]:
    """The combined test predictions, and per task its fitted combiner (or the index of
    the only member that has the task)."""
    own = PROTOCOL_TASKS[data.protocol]
    keys = sorted({k for pred in valid for k in pred if k.split(".")[0] in own})  # e.g. "profile.gender" → profile
    combined: SidePredictions = {}
    fitted: dict[str, Combiner | int] = {}
    for key in keys:
        if key == "next_item.ranks":
            raise ValueError("a member kept next-item ranks only (catalogue too large to keep scores); it cannot join an ensemble")
        have = [m for m, pred in enumerate(valid) if key in pred]
        if len(have) == 1:
            combined[key], fitted[key] = test[have[0]][key], have[0]
            continue
        task = "profile" if key.startswith("profile.") else key
        seen = seen_mask(data.valid, n_items) if key == "next_item" else None
        comb = Combiner(task, method, members=have).fit([valid[m][key] for m in have], truth(data, data.valid, key), seen)
        combined[key] = comb.predict([test[m][key] for m in have])
        fitted[key] = comb
    return combined, fitted


def _member_protocols(run: Path, protocols: list[str], seed: int) -> list[str]:
    return [p for p in protocols if predictions_folder(run, p, seed).is_dir()]


def ensemble(
    runs: list[str | Path], out: str | Path, method: str = "softmax", log: Callable[[str], None] = print
) -> RunResult:
    """Fit the ensemble of ``runs`` and write the run folder ``out``."""
    if method not in METHODS:
        raise ValueError(f"unknown ensemble method '{method}'; methods: {', '.join(METHODS)}")
    runs = [Path(r) for r in runs]
    cfgs = check_members(runs)
    names = member_names(runs, cfgs)
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    cfg = cfgs[0]
    ds: Dataset = load_configured_dataset(cfg)
    protocols = sorted({p for r in runs for p in _member_protocols(r, cfg.protocols, cfg.seeds[0])})
    per_seed: list[dict[str, float]] = []
    weights: dict[str, dict[str, dict[str, dict]]] = {}
    pool = ProfilePool()
    fit_seconds = 0.0
    for seed in cfg.seeds:
        metrics: dict[str, float] = {}
        for p in protocols:
            members = [m for m, r in enumerate(runs) if p in _member_protocols(r, [p], seed)]
            data = prepare_configured(ds, p, seed, cfg, bool(ds.attributes))
            valid = [load_predictions(runs[m], p, seed, "valid") for m in members]
            test = [load_predictions(runs[m], p, seed, "test") for m in members]
            start = time.perf_counter()
            combined, fitted = combine_side(data, ds.n_items, valid, test, method)
            fit_seconds += time.perf_counter() - start
            save_predictions(out, p, seed, "test", combined)
            metrics.update(side_metrics(data, data.test, combined, ds.rating_range))
            weights.setdefault(f"seed{seed}", {})[p] = {
                key: {"members": [names[members[i]] for i in (c.members if isinstance(c, Combiner) else [c])],
                      **(c.to_dict() if isinstance(c, Combiner) else {"method": "only member", "weights": [1.0]})}
                for key, c in fitted.items()
            }
            pool.add(data, combined)
        per_seed.append(metrics)
        log(f"ensemble: seed {seed}: fitted {', '.join(protocols)}")
    result = aggregate(per_seed)
    result.update(pool.metrics())
    members_metrics = [json.loads((r / "metrics.json").read_text()) for r in runs]
    result.update(ensemble_cost(members_metrics))
    result["ensemble.fit_seconds"] = fit_seconds
    for name, mm in zip(names, members_metrics):
        result.update({f"member.{name}.{k}": v for k, v in mm.items() if k[:2] in ("A.", "B.")})
    spec = {"method": method, "members": [{"name": n, "run": str(r.resolve())} for n, r in zip(names, runs)], "weights": weights}
    (out / ENSEMBLE_FILE).write_text(yaml.safe_dump(spec, sort_keys=False))
    cfg.save(out / "config.yaml")
    save_tables(ds, out)
    write_ensemble_report(out, ds, names, method, result, weights)
    return RunResult(result, [], out)


def ensemble_cost(members: list[dict[str, float]]) -> dict[str, float]:
    """An ensemble holds every member's parameters and scores a user with each of them."""
    out: dict[str, float] = {}
    params = [m["model.trainable_params"] for m in members if "model.trainable_params" in m]
    if params:
        out["model.trainable_params"] = float(sum(params))
    speeds = [m["model.users_per_s"] for m in members if m.get("model.users_per_s")]
    if speeds:
        out["model.users_per_s"] = 1.0 / sum(1.0 / s for s in speeds)
    seconds = [m["model.train_seconds"] for m in members if "model.train_seconds" in m]
    if seconds:
        out["model.train_seconds"] = float(sum(seconds))
    return out
