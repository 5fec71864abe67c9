"""The run folder's human and machine outputs: metrics.json, report.md, loss-curve plots."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

from ..config import RunConfig
from ..data.tables import Dataset

BASELINES = ("global_mean", "bias", "popularity", "recent", "majority", "logreg")
HIGHER_IS_BETTER = ("auc", "accuracy", "macro_f1", "hr@", "ndcg@", "mrr@")


def _fmt(metrics: dict[str, float], key: str) -> str:
    if key not in metrics:
        return "—"
    value = f"{metrics[key]:.4f}"
    if f"{key}.std" in metrics:
        value += f" ± {metrics[key + '.std']:.4f}"
    return value


def results_table(
    metrics: dict[str, float], model: str = "polyrec", prefix: str = "baseline", others: tuple[str, ...] | list[str] = BASELINES
) -> str:
    """Markdown table: each task metric, the run's model beside every other model that has it
    (their metrics under ``<prefix>.<name>.<key>``)."""
    model_keys = [
        k for k in metrics
        if k[:2] in ("A.", "B.") and not k.endswith(".std") and ".pooled_" not in k
    ]
    present = [b for b in others if any(k.startswith(f"{prefix}.{b}.") for k in metrics)]
    other_keys = {k.split(".", 2)[2] for k in metrics if k.startswith(f"{prefix}.") and not k.endswith(".std")}
    keys = sorted(set(model_keys) | {k for k in other_keys if ".pooled_" not in k})
    lines = ["| " + " | ".join(["metric", model, *present]) + " |", "|---" * (2 + len(present)) + "|"]
    for k in keys:
        row = [k, _fmt(metrics, k)] + [_fmt(metrics, f"{prefix}.{b}.{k}") for b in present]
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def plot_curves(out: Path, curves: dict[str, dict[str, dict[str, list[float]]]]) -> list[Path]:
    """One PNG per task: train and validation loss per epoch (first seed), per protocol."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    (out / "plots").mkdir(exist_ok=True)
    tasks = sorted({t for per_protocol in curves.values() for t in per_protocol})
    paths = []
    for task in tasks:
        fig, ax = plt.subplots(figsize=(5, 3.2))
        for protocol, per_task in curves.items():
            for side, values in per_task.get(task, {}).items():
                if side not in ("train", "valid"):
                    continue  # e.g. valid_ndcg@10: a metric, not a loss
                if values:
                    ax.plot(range(1, len(values) + 1), values, label=f"{protocol} {side}", linestyle="-" if side == "train" else "--")
        ax.set_xlabel("epoch")
        ax.set_ylabel("loss")
        ax.set_title(f"{task} loss")
        ax.legend()
        fig.tight_layout()
        path = out / "plots" / f"loss_{task}.png"
        fig.savefig(path, dpi=100)
        plt.close(fig)
        paths.append(path)
    return paths


def write_report(
    out: Path,
    cfg: RunConfig,
    ds: Dataset,
    tasks: list[str],
    protocols: list[str],
    metrics: dict[str, float],
    curves: dict,
    notes: list[str],
) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    # Per-epoch train/valid losses of the first seed: what model selection saw.
    (out / "curves.json").write_text(json.dumps(curves, indent=1))
    plots = plot_curves(out, curves)
    seeds = ", ".join(map(str, cfg.seeds))
    lines = [
        f"# polyrec run — {cfg.model.name} on {ds.name}",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.machine()} · {software_versions()} · seeds {seeds}",
        "",
        f"Libraries: {library_versions()}.",
        "",
        f"Data: {ds.n_users} users, {ds.n_items} items, {len(ds.interactions)} interactions. "
        f"Tasks: {', '.join(tasks)}. Protocols: {', '.join(protocols)} ({_protocols_line(cfg)}).",
        "",
        *_metrics_section(metrics, cfg),
    ]
    pooled = {k: v for k, v in metrics.items() if ".pooled_" in k}
    if pooled:
        lines += ["Profile metrics pooled over all tested users of all seeds:", ""]
        lines += [f"- `{k}`: {v:.4f}" for k, v in sorted(pooled.items())] + [""]
    lines += [
        "## Model cost",
        "",
        f"- trainable parameters: {metrics.get('model.trainable_params', float('nan')):,.0f}{_per_protocol_params(metrics)}",
        f"- training seconds per seed (all protocols): {_fmt(metrics, 'model.train_seconds')}",
        f"- users scored per second over the whole catalogue: {metrics.get('model.users_per_s', float('nan')):,.0f}",
        "",
    ]
    if notes:
        lines += ["## Notes", ""] + [f"- {n}" for n in notes] + [""]
    if plots:
        lines += ["## Loss curves (first seed)", ""] + [f"![{p.stem}](plots/{p.name})" for p in plots] + [""]
    lines += ["The resolved configuration is in `config.yaml`; the model in `model/<protocol>/`."]
    (out / "report.md").write_text("\n".join(lines) + "\n")


def software_versions() -> str:
    """"Python 3.11.7 · torch 2.13.0+cpu · polyrec 0.1.0": what a figure was measured with."""
    from importlib.metadata import PackageNotFoundError, version

    from .. import __version__

    try:
        torch = f"torch {version('torch')}"
    except PackageNotFoundError:  # an export read without torch
        torch = "no torch"
    return f"Python {platform.python_version()} · {torch} · polyrec {__version__}"


# Their float rounding reaches the last digits of a run's figures (the profile regressions,
# the priors' choice from flat grids): a figure repeats to the digit on the same versions only.
NUMERIC_LIBRARIES = ("numpy", "scipy", "scikit-learn", "pandas", "sentence-transformers")


def library_versions() -> str:
    """"numpy 2.4.6 · scipy 1.17.1 · …": the numeric libraries a run's figures depend on."""
    from importlib.metadata import PackageNotFoundError, version

    found = []
    for name in NUMERIC_LIBRARIES:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            found.append(f"no {name}")
    return " · ".join(found)


def _protocols_line(cfg: RunConfig) -> str:
    """What the protocols split, as the run used them."""
    if cfg.data.deploy:
        return ("for deployment, no test side: A = random 90/10 interactions and nine of 10 user folds' attributes "
                "training; B = each user's latest item validates, the rest trains")  # fmt: skip
    return "see PROTOCOLS.md: A = random 80/10/10 interactions and 10 user folds for profiles; B = leave-last-out, full ranking"


def run_table(metrics: dict[str, float], cfg: RunConfig) -> str:
    """:func:`results_table` of a run: its test figures, or in a run for deployment
    (``data.deploy``), which has no test side, its validation figures (``valid.<key>``)."""
    if not cfg.data.deploy:
        return results_table(metrics, cfg.model.name)
    return results_table({k.removeprefix("valid."): v for k, v in metrics.items() if k.startswith("valid.")}, cfg.model.name)


def _metrics_section(metrics: dict[str, float], cfg: RunConfig) -> list[str]:
    """The report's table of figures (:func:`run_table`) under a heading that says whose."""
    if not cfg.data.deploy:
        return ["## Test metrics (mean ± std over seeds)", "", run_table(metrics, cfg), ""]
    return [
        "## Validation metrics (mean ± std over seeds)",
        "",
        "A run for deployment (`data.deploy`): each protocol's test side trained, so there are no test figures. "
        "These are the validation side's, which also chose the epoch, the joins and the priors: optimistic.",
        "",
        run_table(metrics, cfg),
        "",
    ]


def protocol_params(metrics: dict[str, float]) -> dict[str, float]:
    """Trainable parameters per protocol ("A", "B"), or {"": n} for a run that records one
    count: the models differ where one carries the item autoencoder (protocol A only)."""
    per = {k.split(".")[1]: v for k, v in metrics.items()
           if k.startswith("model.") and k.endswith(".trainable_params") and k.count(".") == 2}
    if per:
        return dict(sorted(per.items()))
    n = metrics.get("model.trainable_params")
    return {"": n} if n else {}


def _per_protocol_params(metrics: dict[str, float]) -> str:
    """" (protocol A: n, protocol B: m)" where the protocols' models differ in size, else ""."""
    sizes = protocol_params(metrics)
    if len(set(sizes.values())) < 2:
        return ""
    return " (" + ", ".join(f"protocol {p}: {v:,.0f}" for p, v in sizes.items()) + ")"
