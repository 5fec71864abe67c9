"""The next-item priors (models/item_prior.py) fitted onto a finished run's protocol-B models.

    python benchmarks/item_prior.py runs/ml100k [seeds] [--no-transitions]

Each seed's saved model is loaded as fine-tuning left it (priors it was saved with are
dropped: they are fitted after fine-tuning and read nothing the model learned), the priors
are fitted as `polyrec run` fits them (train/item_prior_fit.py: λ, decay and share chosen on
validation NDCG@10, then refitted on the validation items too before test), and the
validation and test NDCG@10 / HR@10 are printed without and with them — their own gain,
measured without retraining. ``--no-transitions``: EASE alone, as before the transition
prior. Test data is read only to print the figures.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from polyrec.config import RunConfig
from polyrec.eval.predict import score_users
from polyrec.eval.ranking import ranking_metrics, target_ranks
from polyrec.models.io import load_model
from polyrec.pipeline import load_configured_dataset
from polyrec.run_loader import seed_model_folder
from polyrec.train.item_prior_fit import fit_item_prior, refit_item_prior
from polyrec.train.protocol_data import prepare


def side_figures(model, side) -> dict[str, float]:
    scores = score_users(model, side.history, side.next_users)
    ranks = target_ranks(scores, side.next_items, [side.history.items[u] for u in side.next_users])
    return ranking_metrics(ranks, ks=(10,))


def main(run: Path, seeds: list[int], transitions: bool) -> None:
    cfg = RunConfig.load(run / "config.yaml", saved=True)
    ds = load_configured_dataset(cfg)
    prior_cfg = RunConfig.from_dict({"model": {"item_prior": True, "transition_prior": transitions}}).model  # today's defaults
    rows = []
    for seed in seeds:
        data = prepare(ds, "B", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, bool(ds.attributes))
        model = load_model(seed_model_folder(run, "B", seed))
        model.item_prior = model.transition_prior = None
        before = {s: side_figures(model, getattr(data, s)) for s in ("valid", "test")}
        start = time.perf_counter()
        chosen = fit_item_prior(model, data, prior_cfg)
        seconds = time.perf_counter() - start
        after = {"valid": side_figures(model, data.valid)}
        # As `polyrec run` does before test:
        refit_item_prior(model, data.test.history, chosen.get("l2", 0.0), prior_cfg, chosen.get("transition_l2", 0.0))
        after["test"] = side_figures(model, data.test)
        rows.append([before["valid"]["ndcg@10"], after["valid"]["ndcg@10"], before["test"]["ndcg@10"],
                     after["test"]["ndcg@10"], before["test"]["hr@10"], after["test"]["hr@10"]])
        transition = f"transitions λ {chosen.get('transition_l2')}, decay {chosen.get('transition_decay')}, share {chosen.get('transition_share')}, " if transitions else ""
        print(f"seed {seed}: EASE λ {chosen.get('l2')}, decay {chosen.get('decay')}, share {chosen.get('share')}, {transition}fit {seconds:.1f} s · "
              f"valid NDCG@10 {rows[-1][0]:.4f} → {rows[-1][1]:.4f} · test NDCG@10 {rows[-1][2]:.4f} → {rows[-1][3]:.4f}"
              f" · test HR@10 {rows[-1][4]:.4f} → {rows[-1][5]:.4f}")
    m, s = np.mean(rows, 0), np.std(rows, 0, ddof=1) if len(rows) > 1 else np.zeros(6)
    names = ["valid NDCG@10", "", "test NDCG@10", "", "test HR@10", ""]
    for i in (0, 2, 4):
        print(f"{names[i]}: {m[i]:.4f} ± {s[i]:.4f} without → {m[i + 1]:.4f} ± {s[i + 1]:.4f} with the prior")


if __name__ == "__main__":
    args = [a for a in sys.argv[1:] if a != "--no-transitions"]
    if not args:
        sys.exit(__doc__)
    main(Path(args[0]), [int(x) for x in (args[1] if len(args) > 1 else "0,1,2").split(",")], "--no-transitions" not in sys.argv)
