"""What the popularity penalty trades: accuracy against the long tail's share of the top 10.

    python benchmarks/popularity_penalty.py RUN [--betas 0,0.1,0.2,0.3,0.4,0.5,0.75,1]

For each β, from the run's kept protocol-B predictions (nothing retrains), on validation and
on test: NDCG@10 and HR@10 (mean ± std over the run's seeds), the share of the top-10 slots
that go to tail items and the catalogue coverage@10. The penalty reads each split's training
counts, what a deployment knows when it ranks (``polyrec.popularity_penalty``); head, torso
and tail as in ``polyrec fairness``. Printed as a Markdown table.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from polyrec.config import RunConfig
from polyrec.eval.groups import popularity_groups, top_lists
from polyrec.eval.prediction_store import load_predictions
from polyrec.eval.ranking import ranking_metrics, target_ranks
from polyrec.pipeline import load_configured_dataset
from polyrec.popularity_penalty import penalised, popularity_scores
from polyrec.train.protocol_data import prepare


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("run", type=Path, help="a run folder with protocol-B validation and test predictions")
    ap.add_argument("--betas", default="0,0.1,0.2,0.3,0.4,0.5,0.75,1", help="penalties to try")
    args = ap.parse_args()
    cfg = RunConfig.load(args.run / "config.yaml")
    ds = load_configured_dataset(cfg)
    betas = [float(b) for b in args.betas.split(",")]
    rows: dict[tuple[str, float], list[tuple[float, float, float, float]]] = {}
    for seed in cfg.seeds:
        data = prepare(ds, "B", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, profile=False)
        counts = np.bincount(np.concatenate(data.train.items), minlength=ds.n_items)
        groups, popularity = popularity_groups(counts), popularity_scores(counts)
        for side_name in ("valid", "test"):
            side = getattr(data, side_name)
            scores = load_predictions(args.run, "B", seed, side_name)["next_item"]
            histories = [side.history.items[u] for u in side.next_users]
            for beta in betas:
                ranked = penalised(scores, popularity, beta)
                metrics = ranking_metrics(target_ranks(ranked, side.next_items, histories))
                lists = top_lists(ranked, histories)
                tail = float(np.mean(groups[lists.ravel()] == 2))
                coverage = len(np.unique(lists)) / ds.n_items
                rows.setdefault((side_name, beta), []).append((metrics["ndcg@10"], metrics["hr@10"], tail, coverage))
    print("| β | valid NDCG@10 | valid HR@10 | test NDCG@10 | test HR@10 | tail share of top-10 slots (test) | coverage@10 (test) |")
    print("|---|---|---|---|---|---|---|")
    for beta in betas:
        v, t = np.array(rows["valid", beta]), np.array(rows["test", beta])
        spread = (lambda x: f" ± {x.std(ddof=1):.4f}") if len(v) > 1 else (lambda x: "")
        print(
            f"| {beta:g} | {v[:, 0].mean():.4f}{spread(v[:, 0])} | {v[:, 1].mean():.4f} | {t[:, 0].mean():.4f}{spread(t[:, 0])} "
            f"| {t[:, 1].mean():.4f} | {t[:, 2].mean():.3f} | {t[:, 3].mean():.3f} |"
        )


if __name__ == "__main__":
    main()
