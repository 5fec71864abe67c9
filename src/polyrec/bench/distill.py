"""`polyrec bench distill`: teacher, student trained alone, distilled student, and the
distilled student with each part of the objective removed.

Each configuration is one run folder under ``<out>/`` (``teacher``, ``student``,
``distilled``, ``no-<part>``), reused when it already holds a finished run of the same
configuration, so the study runs in pieces. ``doc`` gets, per configuration, trainable
parameters (the frozen language model's vectors excluded), model file size, users scored
per second, each task's main metric (mean ± std over seeds), and the issue's checks:
student / teacher quality, size and speed ratios, and distilled vs alone. Configurations
that draw the same autoencoders (the students of a seed, where they differ only in the
distillation objective) share their fits through ``<out>/fit-cache/``
(study_runs.py).
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ..config import RunConfig
from ..data.tables import Dataset
from ..distill.run import student_config
from ..eval.report import protocol_params
from ..eval.stored import stored_metrics
from ..models.io import WEIGHTS, load_model
from ..pipeline import aggregate, load_configured_dataset, trainable
from ..run_loader import MODEL_DIR
from ..run_progress import PROGRESS_DIR
from ..train.learner import catalogue_speed
from ..train.protocol_data import prepare_configured
from .mtl import MAIN_METRICS, MainMetric, _cell, main_metrics, provenance
from .mtl_choice import versus_single
from .study_runs import StudyRun, load_result, run_configurations

KEEP = 0.95  # the student keeps ≥ 95 % of the teacher's quality (RMSE: ≤ 1 / 0.95 ≈ 1.03 ×, as the issue states)
RMSE_LIMIT = 1.03


@dataclass(frozen=True)
class Variant:
    name: str  # run folder under the bench's --out
    role: str  # teacher | alone | distilled
    removed: str | None = None  # the distillation part switched off (ablations)
    seeds: tuple[int, ...] | None = None  # None: the bench's seeds


def variants(student: RunConfig, ablation_seeds: list[int] | None, ablate: list[str] | None = None) -> list[Variant]:
    """``ablate``: the parts to remove one at a time (default: every part that is on)."""
    parts = [p for p in student.distill.parts_on() if ablate is None or p in ablate]
    seeds = tuple(ablation_seeds) if ablation_seeds else None
    return [
        Variant("teacher", "teacher"),
        Variant("student", "alone"),
        Variant("distilled", "distilled"),
        *(Variant(f"no-{p}", "distilled", p, seeds) for p in parts),
    ]


def variant_config(v: Variant, teacher: RunConfig, student: RunConfig, out: Path) -> RunConfig:
    if v.role == "teacher":
        return copy.deepcopy(teacher)
    if v.role == "alone":
        cfg = copy.deepcopy(student)
        cfg.data, cfg.tasks, cfg.protocols, cfg.seeds = copy.deepcopy(teacher.data), list(teacher.tasks), list(teacher.protocols), list(teacher.seeds)
        return cfg
    s = copy.deepcopy(student)
    if v.removed:
        s.distill.remove(v.removed)
    return student_config(out / "teacher", s, seeds=list(v.seeds) if v.seeds else None)


def bench_distill(
    teacher: RunConfig,
    student: RunConfig,
    out: str | Path,
    doc: str | Path,
    ablation_seeds: list[int] | None = None,
    ablate: list[str] | None = None,
    command: str = "",
    progress: bool = True,
    log: Callable[[str], None] = print,
) -> Path:
    """Run (or reuse) every configuration under ``out``; write ``doc``."""
    out = Path(out)
    ds = load_configured_dataset(teacher)
    _, protocols = trainable(ds, teacher.tasks)
    teacher = copy.deepcopy(teacher)  # the protocols the data can split (thin data: A alone)
    teacher.protocols = [p for p in teacher.protocols if p in protocols] or teacher.protocols
    plan = variants(student, ablation_seeds, ablate)
    results = {}
    for i, v in enumerate(plan, 1):
        folder = out / v.name
        # One at a time: a student reads its teacher's finished run (cfg carries
        # distill.teacher). Seeds finished before (a stopped run) are read back.
        what = f"{v.role}" + (f", without {v.removed}" if v.removed else "")
        cfg = variant_config(v, teacher, student, out)
        run_configurations([StudyRun(folder, cfg, f"[{i}/{len(plan)}] {v.name}", what)], progress, log)
        results[v.name] = load_result(folder)
        results[v.name]["file_mb"] = _file_mb(folder)
    speeds = side_by_side_speed(teacher, ds, {v.name: out / v.name for v in plan if v.name in ("teacher", "student", "distilled")})
    for name, speed in speeds.items():
        results[name]["metrics"]["bench.users_per_s"] = speed
    return write_doc(Path(doc), plan, results, teacher, student, command, out, main_metrics(ds))


def side_by_side_speed(base: RunConfig, ds: Dataset, folders: dict[str, Path], repeats: int = 3) -> dict[str, float]:
    """Users scored per second against the whole catalogue, every model timed in this one
    process on the same test users, best of ``repeats`` (the runs' own figures were timed
    in different processes, perhaps beside other work)."""
    protocol = "B" if "B" in base.protocols else base.protocols[0]
    data = prepare_configured(ds, protocol, base.seeds[0], base, profile=False)
    speeds = {}
    for name, folder in folders.items():
        model = load_model(folder / MODEL_DIR / protocol)
        if "next_item" in model.heads:
            speeds[name] = max(catalogue_speed(model, data.test.history) for _ in range(repeats))
    return speeds


def _file_mb(folder: Path) -> float:
    files = sorted((folder / MODEL_DIR).glob(f"*/{WEIGHTS}"))
    return files[0].stat().st_size / 2**20 if files else float("nan")


def _params_cell(metrics: dict) -> str:
    per = protocol_params(metrics)
    if len(set(per.values())) <= 1:
        return f"{next(iter(per.values()), float('nan')):,.0f}"
    return " / ".join(f"{p}: {n:,.0f}" for p, n in per.items())


def ratio_checks(student: dict, teacher: dict, metrics: tuple[MainMetric, ...] = MAIN_METRICS) -> list[str]:
    """The issue's bars, each measured: quality kept per task (``metrics``: each task's main
    metric), size and speed."""
    lines = []
    for _, key, title, higher in metrics:
        if key in student and key in teacher:
            ratio = student[key] / teacher[key]
            ok = ratio >= KEEP if higher else ratio <= RMSE_LIMIT
            bar = f"≥ {KEEP:.2f}" if higher else f"≤ {RMSE_LIMIT:.2f}"
            lines.append(f"- {title.split(' ')[0]} {title.split(' ')[1]}: student / teacher = {ratio:.3f} (bar {bar}) — {'met' if ok else 'NOT met'}")
    p_s, p_t = protocol_params(student), protocol_params(teacher)
    for protocol in [p for p in p_s if p in p_t]:
        ratio = p_s[protocol] / p_t[protocol]
        lines.append(
            f"- trainable parameters{f', protocol {protocol}' if protocol else ''}: student / teacher = "
            f"{ratio:.3f} (bar ≤ 0.10) — {'met' if ratio <= 0.1 else 'NOT met'}"
        )
    u_s, u_t = student.get("bench.users_per_s"), teacher.get("bench.users_per_s")
    if u_s and u_t:
        lines.append(f"- users scored per second: student / teacher = {u_s / u_t:.1f}× (bar ≥ 5×) — {'met' if u_s / u_t >= 5 else 'NOT met'}")
    return lines


def all_metrics_table(plan: list[Variant], results: dict[str, dict]) -> list[str]:
    """Every task metric (rows) of every configuration (columns), mean ± std over seeds."""
    keys = sorted({k for r in results.values() for k in r["metrics"] if k[:2] in ("A.", "B.") and not k.endswith(".std")})
    lines = ["| metric | " + " | ".join(v.name for v in plan) + " |", "|---" * (len(plan) + 1) + "|"]
    lines += [f"| {k} | " + " | ".join(_cell(results[v.name]["metrics"], k) for v in plan) + " |" for k in keys]
    return lines


def load_seed_metrics(out: Path, name: str, seed: int) -> dict[str, float]:
    """One seed's test metrics of configuration ``name``: its seed record, else (a run made
    before records existed) its stored test predictions scored again."""
    record = out / name / PROGRESS_DIR / f"seed{seed}.json"
    if record.is_file():
        return json.loads(record.read_text())["metrics"]
    cfg = RunConfig.load(out / name / "config.yaml")
    return stored_metrics(out / name, cfg, load_configured_dataset(cfg), seed, "test")


def write_doc(
    doc: Path, plan: list[Variant], results: dict[str, dict], teacher: RunConfig, student: RunConfig, command: str, out: Path,
    metrics: tuple[MainMetric, ...] = MAIN_METRICS,
) -> Path:
    on = {p: {part: w for part, w in weights.items() if w > 0} for p, weights in student.distill.weights.items()}
    # Training time from the runs themselves (seeds may have run as separate processes).
    # Per seed, both protocols (distillation: the K-means included), times the seeds.
    fit_minutes = {v.name: results[v.name]["metrics"].get("model.train_seconds", float("nan")) * len(v.seeds or teacher.seeds) / 60 for v in plan}
    total = 60 * sum(fit_minutes.values())
    data = teacher.data.path or teacher.data.dataset
    smoke = " (smoke run — not a result)" if teacher.data.path else ""
    t_model, s_model = teacher.model, student.model
    lines = [f"# Knowledge distillation on {data}{smoke}", ""] + provenance(teacher, command, total) + [
        (
            f"Teacher: {t_model.dim} dimensions, {t_model.layers} layers, text "
            f"{teacher.text.encoder if teacher.text.enabled else 'off'}, at most {teacher.train.epochs} epochs. "
            f"Student: {s_model.dim} dimensions, {s_model.layers} layer(s), text "
            f"{student.text.encoder if student.text.enabled else 'off'}, at most {student.train.epochs} epochs. "
            f"Distillation: temperature {student.distill.temperature}, K-means K from {student.distill.clusters} "
            f"(chosen per protocol and seed on held-out users), part weights {on} (the others 0). "
            "Test metrics, mean ± std over seeds. Against *student* (the same student trained alone): "
            "▲ better by more than one std, ▼ worse by more than one std, = within. Trainable parameters exclude "
            "the frozen language model; the file size includes its frozen item vectors (a buffer saved with the "
            "weights). Users per second: whole-catalogue next-item scoring in batches of 256 (protocol-B test users "
            "of the first seed), teacher, student and distilled student timed side by side in the bench's own process, "
            "best of 3. Fit minutes: the runs' own training time summed over seeds (seeds run as parallel "
            "single-thread processes, or beside other work, take longer than on a quiet machine)."
        ),
        "",
        "| configuration | seeds | " + " | ".join(t for _, _, t, _ in metrics)
        + " | trainable params | file MB | users/s | fit min (all seeds) |",
        "|---" * (len(metrics) + 6) + "|",
    ]
    alone = results["student"]["metrics"]
    for v in plan:
        m = results[v.name]["metrics"]
        cells = []
        for _, key, _, higher in metrics:
            mark = versus_single(m, alone, key, higher) if v.role == "distilled" else ""
            cells.append(_cell(m, key) + mark)
        seeds = ",".join(map(str, v.seeds or teacher.seeds))
        speed = m.get("bench.users_per_s", float("nan"))
        lines.append(
            f"| {v.name} | {seeds} | {' | '.join(cells)} | {_params_cell(m)} | {results[v.name]['file_mb']:.2f} | "
            f"{'—' if speed != speed else f'{speed:,.0f}'} | {fit_minutes[v.name]:.1f} |"
        )
    ablation_seeds = sorted({s for v in plan if v.removed and v.seeds for s in v.seeds})
    if ablation_seeds and ablation_seeds != sorted(teacher.seeds):
        # Part-removed runs on fewer seeds: compare them with the full recipe on those seeds.
        for name in ("student", "distilled"):
            same = aggregate([load_seed_metrics(out, name, s) for s in ablation_seeds])
            cells = [_cell(same, key) for _, key, _, _ in metrics]
            lines.append(f"| {name} (same seeds as the rows above) | {','.join(map(str, ablation_seeds))} | {' | '.join(cells)} | | | | |")
    distilled, t = results["distilled"]["metrics"], results["teacher"]["metrics"]
    wins = [title for _, key, title, higher in metrics if versus_single(distilled, alone, key, higher) == " ▲"]
    lines += ["", "## The issue's bars (distilled student)", ""] + ratio_checks(distilled, t, metrics) + [
        f"- better than the student alone by more than one std on {len(wins)} task(s) (bar ≥ 2): "
        + (", ".join(wins) if wins else "none") + f" — {'met' if len(wins) >= 2 else 'NOT met'}",
        "",
        "## Every test metric",
        "",
        *all_metrics_table(plan, results),
        "",
        "Each configuration's run folder (report, metrics.json, config.yaml) is under the bench's `--out`.",
    ]
    doc.parent.mkdir(parents=True, exist_ok=True)
    doc.write_text("\n".join(lines) + "\n")
    return doc
