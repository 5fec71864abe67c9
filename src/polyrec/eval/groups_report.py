"""``polyrec fairness``: a run's test metrics by group (groups.py) as Markdown and JSON."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

from ..config import RunConfig
from ..pipeline import load_configured_dataset
from .groups import MISSING, PAIR_METRICS, RANK_METRICS, TOP, GroupMetrics, score_groups

LOWER_IS_BETTER = ("rating.rmse",)
HEADINGS = {
    "rating.rmse": "rating RMSE ↓", "ctr.auc": "ctr AUC ↑", f"next_item.ndcg@{TOP}": f"NDCG@{TOP} ↑", f"next_item.hr@{TOP}": f"HR@{TOP} ↑",
}  # fmt: skip
# A group with fewer test pairs (protocol A) or targets (protocol B) than these, on the mean
# over seeds, is shown but left out of the gap: one seed's handful of targets moves it most.
MIN_SIZE = {"test pairs": 200, "test targets": 30}


def _cell(groups: GroupMetrics, section: str, group: str, name: str) -> str:
    stats = groups.mean_std(section, group, name)
    if stats is None:
        return "—"
    mean, std, n = stats
    if name.startswith("test "):
        return f"{mean:.0f}"
    return f"{mean:.4f} ± {std:.4f}" if n > 1 else f"{mean:.4f}"


def _large_enough(groups: GroupMetrics, section: str, group: str, name: str) -> bool:
    size = "test pairs" if name in PAIR_METRICS else "test targets"
    stats = groups.mean_std(section, group, size)
    return stats is not None and stats[0] >= MIN_SIZE[size]


def _gap(groups: GroupMetrics, section: str, name: str) -> str:
    """Best − worst group mean of ``name``, and which groups: over the groups large enough
    (``MIN_SIZE``), the missing-value group left out."""
    means = {
        g: s[0] for g in groups.groups(section)
        if g != MISSING and _large_enough(groups, section, g, name) and (s := groups.mean_std(section, g, name)) is not None
    }  # fmt: skip
    if len(means) < 2:
        return "—"
    ordered = sorted(means, key=means.get, reverse=name not in LOWER_IS_BETTER)  # best first
    return f"{abs(means[ordered[0]] - means[ordered[-1]]):.4f} ({ordered[0]} / {ordered[-1]})"


def groups_markdown(run: Path, groups: GroupMetrics, seeds: list[int]) -> str:
    stamp = datetime.now(timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    lines = [
        f"# Test metrics by group: {run}",
        "",
        f"`polyrec fairness --run {run}` · {stamp} · seeds {', '.join(map(str, seeds))} · mean ± std over seeds, "
        "scored from the run's kept test predictions (nothing retrained). Users are grouped by each attribute "
        "(read for grouping only); items by popularity on each split's training side: head = the most-taken items "
        "holding the first third of the training interactions, torso the next third, tail the rest. "
        f"Gap: best − worst group mean, over the groups with at least {MIN_SIZE['test pairs']} test pairs "
        f"(rating, ctr) or {MIN_SIZE['test targets']} test targets (next item) a seed on the mean, the missing-value "
        "group left out: a smaller group's figures move most between seeds.",
    ]
    for section in groups.sections():
        names = list(dict.fromkeys(n for g in groups.groups(section) for n in groups.values[section, g]))
        headings = [HEADINGS.get(n, n) for n in names]
        lines += ["", f"## {section}", "", "| group | " + " | ".join(headings) + " |", "|---" * (len(names) + 1) + "|"]
        for group in groups.groups(section):
            lines.append(f"| {group} | " + " | ".join(_cell(groups, section, group, n) for n in names) + " |")
        gaps = [_gap(groups, section, n) if n in PAIR_METRICS + tuple(f"next_item.{m}" for m in RANK_METRICS) else "" for n in names]
        if any(g not in ("", "—") for g in gaps):
            lines.append("| gap | " + " | ".join(gaps) + " |")
    return "\n".join(lines) + "\n"


def write_groups_report(run: str | Path, out: str | Path | None = None) -> Path:
    """Score run ``run``'s test predictions by group; write ``out`` (default ``<run>/fairness.md``)
    and the same figures as flat JSON beside it (``.json``). Returns the Markdown path."""
    run = Path(run)
    if not (run / "config.yaml").is_file():
        raise FileNotFoundError(f"{run}: no config.yaml (expected a run folder written by `polyrec run`)")
    cfg = RunConfig.load(run / "config.yaml")
    if cfg.data.deploy:
        raise ValueError(f"{run}: a run for deployment (data.deploy) has no test side to report on")
    groups = score_groups(run, cfg, load_configured_dataset(cfg))
    if not groups.sections():
        raise ValueError(f"{run}: its test predictions hold no rating, ctr or next-item scores to group (profile only)")
    path = Path(out) if out is not None else run / "fairness.md"
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(groups_markdown(run, groups, cfg.seeds))
    path.with_suffix(".json").write_text(json.dumps(groups.flat(), indent=1, sort_keys=True))
    return path
