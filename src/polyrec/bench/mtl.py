"""`polyrec bench mtl`: every task alone versus each expert architecture × loss weighting.

Each configuration is one ordinary `polyrec run` into ``<out>/<name>/`` (so its report,
metrics.json and curves.json are there to inspect), skipped when that folder already has a
metrics.json made with the same seeds and epochs: the study can run in pieces. The
trainings of all configurations share one pool of workers (study_runs.py). Then
``doc`` gets the table of each task's main metric (mean ± std over seeds), the comparison
with the single-task models, and plots of the effective λ and the gate weights per epoch
(first seed, from curves.json) in the folder beside it named like it (``mtl.md`` → ``mtl/``).
The configurations share their autoencoder fits through ``<out>/fit-cache/``
(study_runs.py) unless the config names another ``train.fit_cache``.
"""

from __future__ import annotations

import copy
import os
import platform
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import torch

from ..config import MTL_ARCHS, PROTOCOL_TASKS, WEIGHTINGS, RunConfig, TrainConfig
from ..data.tables import Dataset
from ..pipeline import load_configured_dataset, trainable
from ..run_jobs import describe_workers
from .mtl_choice import Verdict, ranking, validation_metrics, verdict
from .study_runs import load_result, numbered, run_configurations

# Each task's main metric: (task, metrics.json key, column title, higher is better).
MainMetric = tuple[str, str, str, bool]
MAIN_METRICS: tuple[MainMetric, ...] = (
    ("rating", "A.rating.rmse", "rating RMSE ↓", False),
    ("ctr", "A.ctr.auc", "ctr AUC ↑", True),
    ("profile", "A.profile.gender.auc", "gender AUC ↑", True),
    ("next_item", "B.next_item.ndcg@10", "NDCG@10 ↑", True),
)

# The default's time budget: at most this × the study time of shared-bottom + fixed λ.
BASELINE, AFFORDABLE = "shared_bottom-fixed", 1.1


def main_metrics(ds: Dataset) -> tuple[MainMetric, ...]:
    """:data:`MAIN_METRICS` for ``ds``: the profile's column reads the data's main attribute
    (``Dataset.main_attribute``: gender where it has one, as MovieLens does, else its first),
    by AUC where that has two classes and by accuracy where it has more."""
    name = ds.main_attribute
    if name is None or name == "gender":
        return MAIN_METRICS
    metric, title = ("auc", "AUC") if len(ds.attribute_codes(name)[1]) == 2 else ("accuracy", "accuracy")
    profile = ("profile", f"A.profile.{name}.{metric}", f"{name} {title} ↑", True)
    return tuple(profile if m[0] == "profile" else m for m in MAIN_METRICS)


@dataclass(frozen=True)
class Variant:
    name: str  # the run folder under the bench's --out
    tasks: tuple[str, ...]
    protocols: tuple[str, ...]
    arch: str = "shared_bottom"
    weighting: str = "fixed"

    @property
    def single(self) -> bool:
        return len(self.tasks) == 1


def variants(tasks: list[str], archs: list[str], weightings: list[str]) -> list[Variant]:
    """Each task alone under its own protocol, then every arch × weighting on all tasks."""
    out = [
        Variant(f"single-{t}", (t,), tuple(p for p, ts in PROTOCOL_TASKS.items() if t in ts)) for t in tasks
    ]
    protocols = tuple(p for p, ts in PROTOCOL_TASKS.items() if set(ts) & set(tasks))
    out += [Variant(f"{a}-{w}", tuple(tasks), protocols, a, w) for a in archs for w in weightings]
    return out


def variant_config(base: RunConfig, v: Variant) -> RunConfig:
    cfg = copy.deepcopy(base)
    cfg.tasks, cfg.protocols = list(v.tasks), list(v.protocols)
    cfg.model.mtl.arch, cfg.train.weighting.method = v.arch, v.weighting
    return cfg


def bench_mtl(
    base: RunConfig,
    out: str | Path,
    doc: str | Path,
    archs: list[str] | None = None,
    weightings: list[str] | None = None,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or reuse) every configuration under ``out``; write ``doc`` and its plots."""
    archs, weightings = list(archs or MTL_ARCHS), list(weightings or WEIGHTINGS)
    for name, value, known in (("arch", archs, MTL_ARCHS), ("weighting", weightings, WEIGHTINGS)):
        wrong = [x for x in value if x not in known]
        if wrong:
            raise ValueError(f"unknown {name} '{wrong[0]}'; {name}s: {', '.join(known)}")
    out = Path(out)
    ds = load_configured_dataset(base)
    tasks, _ = trainable(ds, base.tasks)
    plan = variants(tasks, archs, weightings)
    what = {v.name: f"tasks {','.join(v.tasks)}, protocols {','.join(v.protocols)}" for v in plan}
    runs = numbered(out, [(v.name, variant_config(base, v), what[v.name]) for v in plan])
    # In the table's order: the single-task configurations first, so the autoencoder fits that
    # the configurations of a seed share fall to them (single-rating), and the multi-task
    # configurations' times, which the choice below compares, hold none.
    run_configurations(runs, progress, log)
    results = {v.name: load_result(out / v.name) for v in plan}
    splits: dict = {}
    for v in plan:
        results[v.name]["valid"] = validation_metrics(out / v.name, ds, splits)
    return write_doc(Path(doc), plan, results, base, command, main_metrics(ds))


def _cell(metrics: dict, key: str) -> str:
    if key not in metrics:
        return "—"
    std = metrics.get(f"{key}.std")
    return f"{metrics[key]:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def provenance(base: RunConfig, command: str, total_seconds: float) -> list[str]:
    """A bench document's opening lines: "not a result" on a data folder, the command, the machine."""
    data = base.data.path or base.data.dataset
    lines = []
    if base.data.path:
        lines += [
            (
                f"> **Not a result**: run on the data folder `{data}`, a pipeline check "
                "(the study itself runs on MovieLens-100K; see the command below without `--data`)."
            ),
            "",
        ]
    return lines + [
        f"Command: `{command}`",
        "",
        (
            f"{datetime.now(UTC):%Y-%m-%d %H:%M} UTC · {platform.machine()}, {os.cpu_count()} CPU cores, "
            f"torch {torch.__version__} ({describe_workers(base, 2 * len(base.seeds))}) · "
            f"seeds {', '.join(map(str, base.seeds))} · at most {base.train.epochs} epoch(s) per training (`polyrec run` trains up "
            f"to {TrainConfig().epochs}) · wall time of all configurations: {total_seconds / 60:.1f} min (their "
            "trainings share one pool of workers; a configuration's time is its share of the elapsed time, "
            "in proportion to its jobs' own time)"
        ),
        "",
    ]


def write_doc(
    doc: Path, plan: list[Variant], results: dict[str, dict], base: RunConfig, command: str,
    metrics: tuple[MainMetric, ...] = MAIN_METRICS,
) -> Path:
    """``results``: per configuration, its test ``metrics``, ``curves``, ``wall`` seconds and
    ``valid`` metrics (mtl_choice.validation_metrics); ``metrics``: each task's main metric
    (:func:`main_metrics` of the data)."""
    columns = [(t, key, title, higher) for t, key, title, higher in metrics if any(t in v.tasks for v in plan)]
    data = base.data.path or base.data.dataset
    total = sum(r["wall"] for r in results.values())
    shipped = RunConfig()  # polyrec's default
    default = default_result(plan, results, shipped)
    test_lines, _ = comparison_table(plan, results, columns, "metrics", True, default)
    valid_lines, verdicts = comparison_table(plan, results, columns, "valid", False, default)
    lines = [f"# Multi-task architectures × loss weighting on {data}", ""] + provenance(base, command, total) + [
        (
            "Test metrics, mean ± std over seeds. *single task*: each task trained alone under its own "
            "protocol (one run per task, shared-bottom). The other rows train all tasks together "
            "(protocol A: rating, ctr, profile; protocol B: next item). Against the single-task model: "
            "▲ better by more than one std, ▼ worse by more than one std (negative transfer), = within "
            "(std: the larger of the two)."
            + (
                " *polyrec's default* trains each protocol as one configuration of the study does "
                "(the protocols train apart), so its row is those configurations' rows, protocol by protocol."
                if default is not None
                else ""
            )
        ),
        "",
        *test_lines,
        "",
        "## The default, chosen on validation",
        "",
        (
            "The same runs scored on their validation side (the predictions each run kept; the "
            "validation fold of the profile users, the valid interactions of protocol A, the "
            "second-to-last item of protocol B), which is all the choice below reads."
        ),
        "",
        *valid_lines,
        "",
        *choice_lines(verdicts, {n: r["wall"] for n, r in results.items()}, shipped),
    ]
    plots = write_plots(doc.parent / doc.stem, plan, results)
    if plots:
        lines += ["", "## Effective λ and gate weights per epoch (first seed)", ""]
        lines += [f"![{p.stem}]({doc.stem}/{p.name})" for p in plots]
    lines += [
        "",
        (
            "Each configuration's run folder (report, metrics.json, curves.json with the per-epoch "
            "`weight` and `gate` of every task) is under the bench's `--out`."
        ),
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n")
    return doc


def default_result(plan: list[Variant], results: dict[str, dict], default: RunConfig) -> dict | None:
    """polyrec's default as a row of the study, when it is not one configuration but one per
    protocol (``train.weighting.method`` a mapping): each protocol trains on its own, so the
    default's protocol-p metrics are those of the configuration that trains p as it does."""
    method = default.train.weighting.method
    if isinstance(method, str):
        return None
    protocols = sorted({p for v in plan if not v.single for p in v.protocols})
    names = {p: f"{default.model.mtl.arch}-{default.train.weighting.method_for(p)}" for p in protocols}
    if not protocols or any(n not in results for n in names.values()):
        return None
    composed = {"label": default_label(default), "wall": float("nan")}
    for side in ("metrics", "valid"):
        composed[side] = {k: x for p, n in names.items() for k, x in results[n][side].items() if k.startswith(f"{p}.")}
    return composed


def default_label(cfg: RunConfig) -> str:
    """``cfg``'s architecture and weighting as the study names them: "shared_bottom + gradnorm",
    or with one weighting per protocol "shared_bottom + gradnorm (A), fixed (B)"."""
    method = cfg.train.weighting.method
    if not isinstance(method, str):
        method = ", ".join(f"{m} ({p})" for p, m in method.items())
    return f"{cfg.model.mtl.arch} + {method}"


def _pretty(name: str) -> str:
    """A configuration's folder name as the tables show it: "ple-gradnorm" → "ple + gradnorm"."""
    return name.replace("-", " + ", 1)


def comparison_table(
    plan: list[Variant],
    results: dict[str, dict],
    columns: list[tuple],
    side: str,
    with_wall: bool,
    default: dict | None = None,
) -> tuple[list[str], dict[str, Verdict]]:
    """Markdown rows of ``results[name][side]`` (single task first, then each configuration
    marked against it, then ``default`` if given) and each configuration's verdict (the
    default's row is shown, not ranked)."""
    single = {t: results[v.name][side] for v in plan if v.single for t in v.tasks}
    wall = " wall min |" if with_wall else ""
    lines = [
        "| configuration | " + " | ".join(c[2] for c in columns) + " | ▲ / ▼ |" + wall,
        "|---" * (len(columns) + 2 + with_wall) + "|",
    ]
    single_wall = f" {sum(results[v.name]['wall'] for v in plan if v.single) / 60:.1f} |" if with_wall else ""
    cells = [_cell(single.get(t, {}), key) for t, key, _, _ in columns]
    lines.append(f"| single task | {' | '.join(cells)} |  |{single_wall}")
    rows: list[tuple[str | None, str, dict]] = [(v.name, _pretty(v.name), results[v.name]) for v in plan if not v.single]
    if default is not None:
        rows.append((None, f"**polyrec's default**: {default['label']}", default))
    verdicts: dict[str, Verdict] = {}
    for name, label, result in rows:
        m = result[side]
        judged = verdict(m, single, [(t, key, higher) for t, key, _, higher in columns])
        if name is not None:
            verdicts[name] = judged
        cells = [_cell(m, key) + mark for (_, key, _, _), mark in zip(columns, judged.marks)]
        score = f"{judged.ups} / {judged.downs}" if any(judged.marks) else "—"  # one seed: no std
        minutes = result["wall"] / 60
        row_wall = (f" {minutes:.1f} |" if minutes == minutes else " — |") if with_wall else ""
        lines.append(f"| {label} | {' | '.join(cells)} | {score} |{row_wall}")
    return lines, verdicts


def choice_lines(verdicts: dict[str, Verdict], walls: dict[str, float], default: RunConfig) -> list[str]:
    """The configurations ranked on validation, what the rule picks, and the shipped default."""
    order = ranking(verdicts)
    if not order:
        return ["No multi-task configuration in this study: nothing to choose."]
    current = default_label(default)
    lines = [
        (
            "Ranked on validation: the fewest tasks worse than the single-task model by more than "
            "one std, then the most tasks better by more than one std, then the best *worst task* "
            "(the smallest gain over the single-task model, in stds: a multi-task model should lose "
            "on no task, and the metrics move on different scales). The study's wall time beside "
            "each, since the default also has to keep `make run` within its time."
        ),
        "",
        "| rank | configuration | ▲ / ▼ | worst task, stds | wall min |",
        "|---|---|---|---|---|",
    ]
    for k, name in enumerate(order, 1):
        v, mark = verdicts[name], " (default)" if _pretty(name) == current else ""
        lines.append(f"| {k} | {_pretty(name)}{mark} | {v.ups} / {v.downs} | {v.worst:+.2f} | {walls[name] / 60:.1f} |")
    lines += ["", f"**Best on validation: {_pretty(order[0])}.**"]
    if BASELINE in walls:
        # `make run` trains the default on two protocols within its ten minutes with little to
        # spare, so the default may cost at most a tenth more time than shared-bottom + fixed.
        budget = AFFORDABLE * walls[BASELINE]
        affordable = [n for n in order if walls[n] <= budget]
        if affordable:
            lines.append(
                f"**Best within {AFFORDABLE:.1f} × the time of {_pretty(BASELINE)} "
                f"(at most {budget / 60:.1f} min here): {_pretty(affordable[0])}.**"
            )
    lines += [
        "",
        (
            f"polyrec's default: {current} (how it was chosen from this "
            "ranking and full-length runs on validation: docs/multi-task.md)."
        ),
    ]
    return lines


def write_plots(folder: Path, plan: list[Variant], results: dict[str, dict]) -> list[Path]:
    """``weights_<protocol>.png`` (arch × weighting grid, a line per task) and, per gated
    arch, ``gates_<arch>.png`` (protocol × task grid, a line per expert)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    multi = [v for v in plan if not v.single]
    if not multi:
        return []
    folder.mkdir(parents=True, exist_ok=True)
    archs = list(dict.fromkeys(v.arch for v in multi))
    weightings = list(dict.fromkeys(v.weighting for v in multi))
    protocols = list(dict.fromkeys(p for v in multi for p in v.protocols))
    paths = []
    for p in protocols:
        fig, axes = plt.subplots(len(archs), len(weightings), figsize=(3.2 * len(weightings), 2.4 * len(archs)), squeeze=False)
        for v in multi:
            ax = axes[archs.index(v.arch)][weightings.index(v.weighting)]
            for task, c in results[v.name]["curves"].get(p, {}).items():
                if c.get("weight"):
                    ax.plot(range(1, len(c["weight"]) + 1), c["weight"], marker="o", markersize=3, label=task)
            ax.set_title(f"{v.arch} + {v.weighting}", fontsize=9)
            ax.set_xlabel("epoch", fontsize=8)
        axes[0][0].set_ylabel("effective λ")
        axes[0][0].legend(fontsize=7)
        fig.suptitle(f"protocol {p}: effective task weights")
        fig.tight_layout()
        paths.append(_save(fig, folder / f"weights_{p}.png"))
    for arch in archs:
        gated = [v for v in multi if v.arch == arch and any("gate" in c for cs in results[v.name]["curves"].values() for c in cs.values())]
        if not gated:
            continue
        v = next((g for g in gated if g.weighting == "fixed"), gated[0])
        curves = results[v.name]["curves"]
        tasks = [t for t in v.tasks if any("gate" in curves.get(p, {}).get(t, {}) for p in protocols)]
        fig, axes = plt.subplots(len(protocols), len(tasks), figsize=(3.2 * len(tasks), 2.4 * len(protocols)), squeeze=False)
        for i, p in enumerate(protocols):
            for j, t in enumerate(tasks):
                ax, c = axes[i][j], curves.get(p, {}).get(t, {})
                for k, name in enumerate(c.get("gate_experts", [])):
                    ax.plot(range(1, len(c["gate"]) + 1), [g[k] for g in c["gate"]], marker="o", markersize=3, label=name)
                ax.set_title(f"{p}: {t}", fontsize=9)
                ax.set_ylim(0, 1)
                ax.legend(fontsize=6)
        fig.suptitle(f"{arch} + {v.weighting}: mean gate weight per expert")
        fig.tight_layout()
        paths.append(_save(fig, folder / f"gates_{arch}.png"))
    return paths


def _save(fig, path: Path) -> Path:
    import matplotlib.pyplot as plt
    from matplotlib.ticker import MaxNLocator

    for ax in fig.axes:
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))  # epochs
    fig.savefig(path, dpi=90)
    plt.close(fig)
    return path
