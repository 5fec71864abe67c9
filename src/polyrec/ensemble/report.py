"""The ensemble run folder's outputs: metrics.json and report.md with members and weights."""

from __future__ import annotations

import json
import platform
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from ..data.tables import Dataset
from ..eval.report import results_table


def weights_table(names: list[str], weights: dict[str, dict[str, dict[str, dict]]]) -> str:
    """Per protocol and task: each member's weight, mean ± std over seeds."""
    rows: dict[tuple[str, str], dict[str, list[float]]] = {}
    for per_protocol in weights.values():
        for p, per_key in per_protocol.items():
            for key, fit in per_key.items():
                for member, w in zip(fit["members"], fit["weights"]):
                    rows.setdefault((p, key), {}).setdefault(member, []).append(w)
    lines = ["| protocol | task | " + " | ".join(names) + " |", "|---" * (2 + len(names)) + "|"]
    for (p, key), per_member in sorted(rows.items()):
        cells = []
        for n in names:
            ws = per_member.get(n)
            cells.append("—" if not ws else f"{np.mean(ws):.3f} ± {np.std(ws, ddof=1) if len(ws) > 1 else 0.0:.3f}")
        lines.append(f"| {p} | {key} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def write_ensemble_report(
    out: Path, ds: Dataset, names: list[str], method: str, metrics: dict[str, float], weights: dict
) -> None:
    (out / "metrics.json").write_text(json.dumps(metrics, indent=2, sort_keys=True))
    lines = [
        f"# polyrec ensemble — {ds.name}",
        "",
        f"{datetime.now(timezone.utc):%Y-%m-%d %H:%M} UTC · {platform.machine()} · {platform.python_version()}",
        "",
        f"Members: {', '.join(names)}. Method: {method}; weights fitted per protocol, seed and task on "
        "validation predictions only; test metrics below (mean ± std over seeds).",
        "",
        "## Test metrics",
        "",
        results_table(metrics, "ensemble", prefix="member", others=names),
        "",
        "## Fitted weights (mean ± std over seeds)",
        "",
        weights_table(names, weights),
        "",
        f"Fitting all weights took {metrics.get('ensemble.fit_seconds', float('nan')):.1f} s in total.",
        "",
    ]
    (out / "report.md").write_text("\n".join(lines))
