"""``polyrec robustness``: a run's next-item metrics under damaged histories, as Markdown and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..config import RunConfig
from ..models.io import load_model, trained_seeds
from ..pipeline import load_configured_dataset
from ..progress import bar
from ..run_loader import seed_model_folder
from ..train.protocol_data import prepare_configured
from .robustness import PERTURBATIONS, Perturbation, perturbed_metrics

TARGETS = "test_targets"  # per seed: how many test users' targets were ranked
METRICS = {"ndcg@10": "NDCG@10", "hr@10": "HR@10", "mrr@10": "MRR@10"}


def json_key(how: Perturbation, metric: str) -> str:
    """``"drop=0.25.next_item.ndcg@10"``, ``"shuffle.next_item.hr@10"``: flat, like fairness's."""
    where = how.kind if how.kind in ("none", "shuffle") else f"{how.kind}={how.amount:g}"
    return f"{where}.next_item.{metric}"


def score_robustness(
    run: Path, perturbations: tuple[Perturbation, ...] = PERTURBATIONS, progress: bool = True
) -> tuple[dict[str, list[float]], list[int]]:
    """Each (perturbation, metric)'s value for every seed with a protocol-B model (flat keys,
    :func:`json_key`), and those seeds."""
    cfg = RunConfig.load(run / "config.yaml")
    if cfg.model.name != "polyrec":
        raise ValueError(f"{run}: robustness re-ranks with polyrec's own model; this run holds a '{cfg.model.name}' model")
    seeds = trained_seeds(run, "B")
    if not seeds:
        raise ValueError(f"{run}: no protocol-B model (seeds/B/seed<k>/) to rank with; robustness reads next-item rankings")
    ds = load_configured_dataset(cfg)
    values: dict[str, list[float]] = {}
    for seed in seeds:
        side = prepare_configured(ds, "B", seed, cfg, profile=False).test
        values.setdefault(TARGETS, []).append(float(len(side.next_users)))
        model = load_model(seed_model_folder(run, "B", seed))
        for how in bar(perturbations, f"robustness, seed {seed}", progress):
            metrics = perturbed_metrics(model, side, how, seed)
            for name in METRICS:
                values.setdefault(json_key(how, name), []).append(float(metrics[name]))
    return values, seeds


def robustness_markdown(run: Path, values: dict[str, list[float]], seeds: list[int], perturbations: tuple[Perturbation, ...]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    intact = values.get(json_key(Perturbation("none"), "ndcg@10"))
    none = np.mean(intact) if intact else None
    lines = [
        f"# Next-item ranking under damaged histories: {run}",
        "",
        f"`polyrec robustness --run {run}` · {stamp} · seeds {', '.join(map(str, seeds))} · "
        f"{np.mean(values[TARGETS]):.0f} test targets a seed · mean ± std over seeds. "
        "Each seed's protocol-B model ranks the whole catalogue for its test users again, their histories perturbed "
        "as named (drop p: each item lost with probability p; latest k: only the k latest items; noise p: that share "
        "of the items replaced by random catalogue items; shuffle: the order permuted). The target and the items "
        "left out of the ranking stay as they were: only what the model reads changes. Seeded: a rerun gives the same figures. "
        "With few targets, or hits, a change of a few percent is within the noise of one draw.",
        "",
        "| history | " + " | ".join(METRICS.values()) + " | NDCG@10 against the intact history |",
        "|---" * (len(METRICS) + 2) + "|",
    ]
    for how in perturbations:
        cells = []
        for name in METRICS:
            v = values[json_key(how, name)]
            cells.append(f"{np.mean(v):.4f} ± {np.std(v):.4f}" if len(v) > 1 else f"{v[0]:.4f}")
        ndcg = np.mean(values[json_key(how, "ndcg@10")])
        change = "—" if none is None or how.kind == "none" or none == 0 else f"{ndcg / none - 1:+.1%}"
        lines.append(f"| {how.name} | " + " | ".join(cells) + f" | {change} |")
    return "\n".join(lines) + "\n"


def write_robustness_report(run: str | Path, out: str | Path | None = None, progress: bool = True) -> Path:
    """Score run ``run``'s next-item ranking under :data:`PERTURBATIONS`; write ``out``
    (default ``<run>/robustness.md``) and the figures as flat JSON beside it. Returns the
    Markdown path."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run}: no config.yaml (expected a run folder written by `polyrec run`)")
    if RunConfig.load(run / "config.yaml", saved=True).data.deploy:
        raise ValueError(f"{run}: a run for deployment (data.deploy) has no test side to report on")
    values, seeds = score_robustness(run, PERTURBATIONS, progress)
    path = Path(out) if out is not None else run / "robustness.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(robustness_markdown(run, values, seeds, PERTURBATIONS))
    flat = {key: float(np.mean(v)) for key, v in values.items()}
    path.with_suffix(".json").write_text(json.dumps(flat, indent=1, sort_keys=True))
    return path
