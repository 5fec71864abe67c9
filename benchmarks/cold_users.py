"""What a user the model was not trained with gets: a run's protocol-A metrics with every user
read as a new one, from the same history.

    python benchmarks/cold_users.py RUN [--side valid|test] [--seeds 0,1,2] [--time]

A user outside the training data reaches polyrec through an ad-hoc history
(`Recommender.predict_history`, `profile_history`, `POST /predict/history`, `POST /profile`).
The joint model reads that history as it reads a known user's; the parts fitted per trained
user (the autoencoders' user rows, the kNN views' ratings, the profile views' per-user
logits) have nothing for a new one. This scores each seed's saved protocol-A model on the
side's pairs and profile users twice, with the same histories: as the run scored them (every
user known) and with every user read as unknown, and, for the pair tasks, a third way: the
model's own heads without anything joined to them (``ctr_join`` off). The third row, *history,
own rows*, reads each user from the history as a known user with new live events is served:
what no history gives back (the user-side engagement autoencoder, the autoencoder's user-row
profile view) reads the user's own rows.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from polyrec.config import RunConfig
from polyrec.eval.evaluate import side_metrics
from polyrec.eval.predict import predict_side
from polyrec.models.io import load_model
from polyrec.pipeline import load_configured_dataset
from polyrec.run_loader import load_tables, seed_model_folder
from polyrec.train.protocol_data import prepare_configured

SHOWN = ("A.rating.rmse", "A.ctr.auc", "A.profile.gender.auc", "A.profile.age.accuracy")


def main(run: Path, side_name: str, seeds: list[int]) -> None:
    cfg = RunConfig.load(run / "config.yaml", saved=True)
    ds = load_configured_dataset(cfg)
    rows: dict[str, list[dict[str, float]]] = {"known": [], "unknown": [], "history, own rows": [], "unknown, heads alone": []}
    for seed in seeds:
        data = prepare_configured(ds, "A", seed, cfg, bool(ds.attributes))
        side = getattr(data, side_name)
        model = load_model(seed_model_folder(run, "A", seed))
        figures = {
            "known": side_metrics(data, side, predict_side(model, data, side), ds.rating_range),
            "unknown": side_metrics(data, side, predict_side(model, data, side, as_unknown=True), ds.rating_range),
            # A known user whose history grew by live events: read from it, with their own
            # rows where no history gives them back (FoldedUsers.trained_as).
            "history, own rows": side_metrics(data, side, predict_side(model, data, side, as_unknown=True, own_rows=True), ds.rating_range),
        }
        model.ctr_join = None  # join_autoencoder then returns the heads' outputs as they are
        heads = predict_side(model, data, side, as_unknown=True)
        figures["unknown, heads alone"] = side_metrics(data, side, {k: v for k, v in heads.items() if not k.startswith("profile")}, ds.rating_range)
        for name, metrics in figures.items():
            rows[name].append(metrics)
            print(f"seed {seed}, {side_name}, {name}: " + ", ".join(f"{k} {metrics[k]:.4f}" for k in SHOWN if k in metrics), flush=True)
    print(f"\n| {side_name}, mean ± std over seeds {', '.join(map(str, seeds))} | " + " | ".join(SHOWN) + " |")
    print("|---" * (len(SHOWN) + 1) + "|")
    for name, metrics in rows.items():
        cells = []
        for k in SHOWN:
            values = [m[k] for m in metrics if k in m]
            cells.append("—" if not values else f"{np.mean(values):.4f} ± {np.std(values, ddof=1) if len(values) > 1 else 0.0:.4f}")
        print(f"| {name} | " + " | ".join(cells) + " |")


def request_time(run: Path, users: int = 100, targets: int = 10) -> None:
    """Milliseconds of ``Recommender.predict_history`` and ``profile_history`` for a user
    given by a known user's whole history (the run's saved model, one thread)."""
    import polyrec

    torch.set_num_threads(1)
    rec = polyrec.load(run)
    _, _, inter = load_tables(run)
    if "timestamp" in inter:
        inter = inter.sort_values("timestamp", kind="stable")
    item_ids = rec.items_["item_id"].astype(str).to_numpy()
    rng = np.random.default_rng(0)
    times: dict[str, list[float]] = {"predict_history": [], "profile_history": []}
    lengths = []
    for u in rng.choice(inter["user"].unique(), size=min(users, inter["user"].nunique()), replace=False):
        mine = inter[inter["user"] == u]
        items = item_ids[mine["item"].to_numpy()].tolist()
        ratings = mine["rating"].astype(float).tolist() if "rating" in mine else None
        wanted = item_ids[rng.choice(len(item_ids), size=targets, replace=False)].tolist()
        lengths.append(len(items))
        for name, call in (("predict_history", lambda: rec.predict_history(items, wanted, ratings)),
                           ("profile_history", lambda: rec.profile_history(items, ratings))):  # fmt: skip
            start = time.perf_counter()
            call()
            times[name].append(1000 * (time.perf_counter() - start))
    print(f"\n{len(lengths)} users given by their whole histories (median {int(np.median(lengths))} items), one thread:")
    for name, ms in times.items():
        print(f"  {name}: median {np.median(ms):.1f} ms, p95 {np.percentile(ms, 95):.1f} ms")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("run", type=Path)
    parser.add_argument("--side", choices=("valid", "test"), default="valid")
    parser.add_argument("--seeds", default="0,1,2")
    parser.add_argument("--time", action="store_true", help="also time a request for a history (the run's served model)")
    args = parser.parse_args()
    main(args.run, args.side, [int(s) for s in args.seeds.split(",")])
    if args.time:
        request_time(args.run)
