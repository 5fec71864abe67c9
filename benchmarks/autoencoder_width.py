"""Validation RMSE of the item autoencoder alone, per code width and prior weight.

    python benchmarks/autoencoder_width.py runs/ml100k 0 16,32,64 200
    python benchmarks/autoencoder_width.py runs/ml100k 0 32 50,100,400
    python benchmarks/autoencoder_width.py /tmp/ml1m-synthetic 0 500 200

Reads the data from a run folder's config.yaml, or takes a data folder as `--data` would
(with the default settings), splits it under protocol A for the seed, and fits an autoencoder
of each width × prior as `polyrec run` fits it (train/item_autoencoder_fit.py), printing its
best validation RMSE, its parameter count (2 × users × width) and the fit's seconds. How
`configs/student-tiny.yaml` chose its width and prior, and how docs/results/scale.md timed
the fit at MovieLens-1M's shape; nothing is written.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import torch

from polyrec.config import RunConfig
from polyrec.models.item_autoencoder import ItemAutoencoder
from polyrec.pipeline import load_configured_dataset
from polyrec.train.item_autoencoder_fit import autoencoder_ratings, fit_item_autoencoder
from polyrec.train.protocol_data import prepare


def main(run: Path, seed: int, widths: list[int], priors: list[float]) -> None:
    torch.set_num_threads(1)
    if (run / "config.yaml").is_file():
        cfg = RunConfig.load(run / "config.yaml")
    else:  # a data folder
        cfg = RunConfig.from_dict({"data": {"path": str(run), "dataset": None}})
    ds = load_configured_dataset(cfg)
    data = prepare(ds, "A", seed, cfg.data.ctr_threshold, cfg.model.rating_levels, True)
    users, items, ratings = autoencoder_ratings(data)
    for width in widths:
        for prior in priors:
            torch.manual_seed(seed)
            ae = ItemAutoencoder(data.train.n_users, ds.n_items, width, len(ratings))
            ae.set_ratings(users, items, ratings)
            start = time.perf_counter()
            rmse = fit_item_autoencoder(ae, data, prior, progress=False)
            print(f"width {width}, prior {prior:g}: validation RMSE {rmse:.4f}, "
                  f"{2 * data.train.n_users * width:,} parameters, {time.perf_counter() - start:.0f} s", flush=True)


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]), [int(w) for w in sys.argv[3].split(",")], [float(p) for p in sys.argv[4].split(",")])
