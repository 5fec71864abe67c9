"""Validation's analogue of the item prior's refit (`model.item_prior_refit`), on a run's models.

    python benchmarks/item_prior_refit.py runs/ml100k [seeds]
    python benchmarks/item_prior_refit.py --test runs/distillTiny9/student [seeds]

`polyrec run` chooses the prior's λ, decay and share on validation with EASE fitted on the
training histories, then refits it with the chosen λ on those histories plus each user's
validation item before it scores test. Whether one more, most recent, item per user in the
fit helps cannot be read on test, so this measures the same step one item earlier, on the
validation side: the blend's best validation NDCG@10 over the prior's grids with EASE fitted
on the training histories without each user's latest item, against with it (the fit `polyrec
run` validates). The model's own scores and the histories scored are the same in both; only
the EASE fit differs. Nothing from the test side is read.

`--test`, for a run saved before the refit existed (its models carry the prior fitted on the
training histories): the test NDCG@10 and HR@10 of its saved models as they are and with the
prior refitted as `polyrec run` now does (the λ, decay and share the run chose, kept), so that
pages measured before can be set beside today's figures without retraining.
"""

from __future__ import annotations

import json
import sys
from dataclasses import replace
from pathlib import Path
from typing import Iterator

import numpy as np
import torch

from polyrec.config import RunConfig
from polyrec.eval.predict import score_users
from polyrec.models.io import load_model
from polyrec.models.item_prior import standardised
from polyrec.models.polyrec import PolyRecModel
from polyrec.pipeline import load_configured_dataset
from polyrec.run_loader import seed_model_folder
from polyrec.train.item_prior_fit import best_on_grids, refit_item_prior, taken_matrix
from polyrec.train.protocol_data import ProtocolData, prepare
from polyrec.train.sequences import Histories, collate

from item_prior import side_figures  # benchmarks/item_prior.py, beside this script


def without_latest(h: Histories) -> Histories:
    return Histories(*([x[:-1] for x in part] for part in (h.items, h.ratings, h.labels, h.tokens)))


def best_blend(own: torch.Tensor, batch, fit_on: Histories, n_items: int, cfg, targets, seen) -> tuple[float, tuple]:
    """The best validation NDCG@10 over the prior's grids (as `polyrec run` chooses), and its (λ, decay, share)."""
    best = best_on_grids(own, batch, taken_matrix(fit_on, n_items), targets, seen, cfg, floor=-1.0)
    return best["valid_ndcg"], (best["l2"], best["decay"], best["share"])


def seed_models(run: Path, seeds: list[int]) -> Iterator[tuple[int, RunConfig, ProtocolData, PolyRecModel]]:
    """Each seed's protocol-B split and saved model."""
    cfg = RunConfig.load(run / "config.yaml", saved=True)
    ds = load_configured_dataset(cfg)
    for seed in seeds:
        data = prepare(ds, "B", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, False)
        yield seed, cfg, data, load_model(seed_model_folder(run, "B", seed))


def main(run: Path, seeds: list[int]) -> None:
    rows = []
    for seed, cfg, data, model in seed_models(run, seeds):
        model.item_prior = None  # the model's own scores; the prior is refitted below
        side, n_items = data.valid, model.spec.n_items
        seen = taken_matrix(side.history, n_items)[side.next_users]
        own = standardised(torch.from_numpy(score_users(model, side.history, side.next_users)))
        batch = collate(side.history, side.next_users, model.spec.config.max_history)
        fits = {"without": without_latest(data.train), "with": data.train}
        best = {k: best_blend(own, batch, h, n_items, cfg.model, side.next_items, seen) for k, h in fits.items()}
        rows.append([best["without"][0], best["with"][0]])
        print(f"seed {seed}: validation NDCG@10, EASE fitted without each user's latest training item "
              f"{best['without'][0]:.4f} (λ, decay, share {best['without'][1]}), with it {best['with'][0]:.4f} ({best['with'][1]})")
    m = np.mean(rows, 0)
    s = np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(2)
    print(f"mean: without {m[0]:.4f} ± {s[0]:.4f}, with {m[1]:.4f} ± {s[1]:.4f}")


def test_figures(run: Path, seeds: list[int]) -> None:
    rows = []
    for seed, cfg, data, model in seed_models(run, seeds):
        record = json.loads((run / "progress" / f"seed{seed}.json").read_text())["metrics"]
        if "item_prior.B.refit" in record:
            sys.exit(f"{run}: seed {seed} was saved with the refitted prior already")
        before = side_figures(model, data.test)
        # The run's own prior settings, the refit on (its saved config reads it as off).
        refit_item_prior(model, data.test.history, record.get("item_prior.B.l2", 0.0), replace(cfg.model, item_prior_refit=True),
                         record.get("item_prior.B.transition_l2", 0.0))
        after = side_figures(model, data.test)
        rows.append([before["ndcg@10"], after["ndcg@10"], before["hr@10"], after["hr@10"]])
        print(f"seed {seed}: test NDCG@10 {rows[-1][0]:.4f} as saved → {rows[-1][1]:.4f} refitted · HR@10 {rows[-1][2]:.4f} → {rows[-1][3]:.4f}")
    m = np.mean(rows, 0)
    s = np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(4)
    print(f"mean: test NDCG@10 {m[0]:.4f} ± {s[0]:.4f} → {m[1]:.4f} ± {s[1]:.4f} · HR@10 {m[2]:.4f} → {m[3]:.4f}")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--test"]
    if not args:
        sys.exit(__doc__)
    seeds = [int(x) for x in (args[1] if len(args) > 1 else "0,1,2").split(",")]
    (test_figures if "--test" in sys.argv else main)(Path(args[0]), seeds)
