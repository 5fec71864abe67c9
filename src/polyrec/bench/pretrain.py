"""`polyrec bench pretrain`: no pretraining vs each objective alone vs all together.

Each configuration is one ordinary `polyrec run` (pretraining inside it, per protocol and
seed, on that split's training side) into ``<out>/<name>/``, reused when that folder already
holds a finished run of the same configuration (the study runs in pieces, like `bench mtl`).
Then ``doc`` gets each task's main metric (mean ± std over seeds) against no pretraining,
the pretraining time, and HR@10 on cold test items (≤ ``COLD_MAX`` training interactions
under protocol B), with and without text features. The configurations share their
autoencoder fits through ``<out>/fit-cache/`` (study_runs.py): pretraining trains no
autoencoder, so a seed's fits serve every configuration.
"""

from __future__ import annotations

import copy
import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..config import PRETRAIN_OBJECTIVES, RunConfig
from ..eval.cold_items import COLD_MAX, cold_target_ranks
from ..pipeline import load_configured_dataset, trainable
from .mtl import MAIN_METRICS, MainMetric, _cell, main_metrics, provenance
from .mtl_choice import versus_single
from .study_runs import load_result, numbered, run_configurations

COLD_KEY = "B.next_item.cold_hr@10"


@dataclass(frozen=True)
class Variant:
    name: str  # the run folder under the bench's --out
    objectives: tuple[str, ...]  # () = no pretraining
    text: bool = True
    protocols: tuple[str, ...] = ("A", "B")


def variants(text: bool) -> list[Variant]:
    """No pretraining, each objective alone, all together; with text on, the same without
    text (protocol B only: the cold-item comparison). text_id needs text."""
    objectives = [o for o in PRETRAIN_OBJECTIVES if text or o != "text_id"]
    plan = [Variant("none", ()), *(Variant(o, (o,)) for o in objectives), Variant("all", tuple(objectives))]
    if text:
        no_text = tuple(o for o in objectives if o != "text_id")
        plan += [Variant("none-notext", (), False, ("B",)), Variant("all-notext", no_text, False, ("B",))]
    return plan


def variant_config(base: RunConfig, v: Variant) -> RunConfig:
    cfg = copy.deepcopy(base)
    cfg.protocols, cfg.text.enabled = list(v.protocols), v.text
    cfg.pretrain.enabled, cfg.pretrain.init = bool(v.objectives), None
    cfg.pretrain.objectives = {o: (base.pretrain.objectives.get(o, 1.0) or 1.0) if o in v.objectives else 0.0 for o in PRETRAIN_OBJECTIVES}
    return cfg


def cold_hr(folder: Path, cfg: RunConfig, ds, k: int = 10) -> dict[str, float]:
    """HR@k over protocol-B test targets whose item has ≤ COLD_MAX training interactions,
    per seed from the run's saved test predictions; mean (± std) and the mean target count."""
    per_seed, counts = [], []
    for seed in cfg.seeds:
        ranks = cold_target_ranks(folder, cfg, ds, seed)
        counts.append(len(ranks))
        if len(ranks):
            per_seed.append(float(np.mean(ranks <= k)))
    out = {f"{COLD_KEY}.n": float(np.mean(counts))}
    if per_seed:
        out[COLD_KEY] = float(np.mean(per_seed))
        if len(cfg.seeds) > 1:
            out[f"{COLD_KEY}.std"] = float(np.std(per_seed, ddof=1)) if len(per_seed) > 1 else 0.0
    return out


def bench_pretrain(
    base: RunConfig,
    out: str | Path,
    doc: str | Path,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or reuse) every configuration under ``out``; write ``doc``."""
    out = Path(out)
    ds = load_configured_dataset(base)
    _, protocols = trainable(ds, base.tasks)  # e.g. no protocol B where no user has three interactions
    plan = [dataclasses.replace(v, protocols=tuple(p for p in v.protocols if p in protocols)) for v in variants(base.text.enabled)]
    plan = [v for v in plan if v.protocols]
    what = {v.name: f"objectives {','.join(v.objectives) or 'none'}, text {'on' if v.text else 'off'}" for v in plan}
    runs = numbered(out, [(v.name, variant_config(base, v), what[v.name]) for v in plan])
    run_configurations(runs, progress, log)
    results = {}
    for v, r in zip(plan, runs):
        results[v.name] = load_result(r.folder)
        if "B" in v.protocols:
            results[v.name]["metrics"].update(cold_hr(r.folder, r.cfg, ds))
    return write_doc(Path(doc), plan, results, base, command, main_metrics(ds))


def write_doc(
    doc: Path, plan: list[Variant], results: dict[str, dict], base: RunConfig, command: str,
    metrics: tuple[MainMetric, ...] = MAIN_METRICS,
) -> Path:
    columns = [(key, title, higher) for _, key, title, higher in metrics]
    columns += [("B.next_item.hr@10", "HR@10 ↑", True), (COLD_KEY, f"cold-item HR@10 ↑ (≤ {COLD_MAX} train)", True)]
    ref = results["none"]["metrics"]
    total = sum(r["wall"] for r in results.values())
    data = base.data.path or base.data.dataset
    smoke = " (smoke run — not a result)" if base.data.path else ""
    lines = [f"# Self-supervised pretraining on {data}{smoke}", ""] + provenance(base, command, total) + [
        (
            "Test metrics, mean ± std over seeds. Each row pretrains the item tower and user encoder "
            "per protocol and seed on that split's training interactions only (no rating, label or "
            "attribute), then fine-tunes as `polyrec run`. Against *none* (no pretraining, text on): "
            "▲ better by more than one std, ▼ worse by more than one std, = within. *-notext*: items "
            "as ID embeddings only (protocol B only). Cold items: protocol-B test targets whose item has "
            f"≤ {COLD_MAX} training interactions (mean count per seed in the last column)."
        ),
        "",
        "| configuration | " + " | ".join(c[1] for c in columns) + " | cold targets | pretrain s (A / B) | wall min |",
        "|---" * (len(columns) + 4) + "|",
    ]
    for v in plan:
        m = results[v.name]["metrics"]
        marks = ["" if v.name == "none" else versus_single(m, ref, key, higher) for key, _, higher in columns]
        cells = [_cell(m, key) + mark for (key, _, _), mark in zip(columns, marks)]
        pre = " / ".join(f"{m[f'model.{p}.pretrain_seconds']:.0f}" if f"model.{p}.pretrain_seconds" in m else "—" for p in "AB")
        cold_n = f"{m[f'{COLD_KEY}.n']:.0f}" if f"{COLD_KEY}.n" in m else "—"
        lines.append(f"| {v.name} | {' | '.join(cells)} | {cold_n} | {pre} | {results[v.name]['wall'] / 60:.1f} |")
    lines += ["", "Each configuration's run folder (report, metrics.json, config.yaml) is under the bench's `--out`."]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n")
    return doc
