"""torch-rechub DeepFM for ctr on polyrec's protocol-A split (run in the PEERS venv).

    benchmarks/peers/.venv/bin/python benchmarks/peers/run_deepfm.py --seed 0
        [--splits runs/peers/splits] [--out runs/peers/rechub-deepfm] [--epochs 100]
        [--patience 10] [--threads N] [--max-batches N]

Features: user, item, the user attributes (gender, age, occupation on MovieLens) and the
item's genres (multi-hot, mean-pooled), all 16-dimensional embeddings; DeepFM with an MLP
of 256 and 128 units (dropout 0.2), torch-rechub's CTRTrainer with its defaults (Adam,
lr 1e-3, weight decay 1e-5, BCE), batch 2048. Label: the exported ``label`` (rating >= 4).
Note that polyrec reads no user attribute as input; DeepFM reads them all.

Each epoch is validated by AUC on the validation pairs; training stops after ``--patience``
epochs without a better AUC and the best epoch's weights are kept (torch-rechub keeps them
only when it stops early: here they are restored in any case). The kept model's engagement
probabilities for the validation and test pairs are written as polyrec predictions,
``<out>/predictions/A/seed<k>/{valid,test}.npz`` (``"ctr"``), with ``<out>/seed<k>.json``.
"""

from __future__ import annotations

import random
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch
from common import EpochClock, clock_result, finish, peer_arguments, read_meta
from torch.utils.data import DataLoader
from torch_rechub.basic.features import SequenceFeature, SparseFeature
from torch_rechub.models.ranking import DeepFM
from torch_rechub.trainers import CTRTrainer
from torch_rechub.utils.data import TorchDataset

EMBED_DIM, BATCH_SIZE = 16, 2048
MLP = {"dims": [256, 128], "dropout": 0.2, "activation": "relu"}
GENRES = "genres"


class ClockLogger:
    """torch-rechub's model_logger hook: its ``val/auc`` after each epoch goes to the clock."""

    def __init__(self, clock: EpochClock):
        self.clock = clock

    def log_hyperparams(self, params):
        pass

    def log_metrics(self, metrics, step):
        if "val/auc" in metrics:
            self.clock.record(step, metrics["val/auc"])

    def finish(self):
        pass


class LimitedTrainer(CTRTrainer):
    """CTRTrainer whose epochs stop after ``max_batches`` batches (smoke runs)."""

    max_batches: int | None = None

    def train_one_epoch(self, data_loader, log_interval=10):
        if self.max_batches:
            data_loader = [batch for _, batch in zip(range(self.max_batches), data_loader)]
        return super().train_one_epoch(data_loader, log_interval)


def features(splits: Path, meta: dict) -> tuple[list, dict[str, np.ndarray], pd.DataFrame]:
    """The feature definitions, the user-feature columns by user, and the genres by item."""
    users = pd.read_csv(splits / "users.csv").set_index("user")
    fea = [SparseFeature("user", meta["n_users"], EMBED_DIM), SparseFeature("item", meta["n_items"], EMBED_DIM)]
    fea += [SparseFeature(a, vocab, EMBED_DIM) for a, vocab in meta["user_features"].items()]
    genres = None
    if meta["genres"]:
        items = pd.read_csv(splits / "items.csv", keep_default_na=False).set_index("item")
        lists = [[int(g) for g in str(s).split()] for s in items[GENRES]]
        genres = np.zeros((meta["n_items"], max(1, max(map(len, lists)))), dtype=np.int64)  # 0 pads
        for i, gs in enumerate(lists):
            genres[i, : len(gs)] = gs
        fea.append(SequenceFeature(GENRES, meta["genres"], EMBED_DIM, pooling="mean", padding_idx=0))
    return fea, {a: users[a].to_numpy() for a in meta["user_features"]}, genres


def inputs(pairs: pd.DataFrame, user_cols: dict[str, np.ndarray], genres: np.ndarray | None) -> dict[str, np.ndarray]:
    u, i = pairs["user"].to_numpy(), pairs["item"].to_numpy()
    x = {"user": u, "item": i, **{a: col[u] for a, col in user_cols.items()}}
    if genres is not None:
        x[GENRES] = genres[i]
    return x


def loader(pairs: pd.DataFrame, user_cols: dict[str, np.ndarray], genres: np.ndarray | None, shuffle: bool = False) -> DataLoader:
    """Batches of (features, label) in the file's row order unless ``shuffle``; label 0 where unknown."""
    y = np.nan_to_num(pairs["label"].to_numpy(dtype=np.float32))
    return DataLoader(TorchDataset(inputs(pairs, user_cols, genres), y), batch_size=BATCH_SIZE, shuffle=shuffle)


def main() -> None:
    ap = peer_arguments(__doc__, epochs=100, patience=10)  # CTRTrainer's earlystop_patience
    args = ap.parse_args()
    start, command = time.perf_counter(), " ".join(sys.argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    random.seed(args.seed)
    np.random.seed(args.seed)
    torch.manual_seed(args.seed)
    splits = Path(args.splits)
    out = Path(args.out or "runs/peers/rechub-deepfm")
    (out / "work").mkdir(parents=True, exist_ok=True)
    meta = read_meta(splits)
    fea, user_cols, genres = features(splits, meta)
    folder = splits / "A" / f"seed{args.seed}"
    frames = {side: pd.read_csv(folder / f"{side}.csv") for side in ("train", "valid", "test")}
    train = frames["train"][frames["train"]["label"].notna()]
    valid = frames["valid"][frames["valid"]["label"].notna()]
    train_dl, valid_dl = loader(train, user_cols, genres, shuffle=True), loader(valid, user_cols, genres)

    model = DeepFM(deep_features=fea, fm_features=fea, mlp_params=MLP)
    clock = EpochClock()
    trainer = LimitedTrainer(
        model, n_epoch=args.epochs, earlystop_patience=args.patience, device="cpu",
        model_path=str(out / "work"), model_logger=ClockLogger(clock),
    )  # fmt: skip
    trainer.max_batches = args.max_batches
    clock.start = time.perf_counter()
    trainer.fit(train_dl, valid_dl)
    train_seconds = time.perf_counter() - clock.start
    model.load_state_dict(trainer.early_stopper.best_weights)

    preds = {side: {"ctr": np.asarray(trainer.predict(model, loader(frames[side], user_cols, genres)), dtype=np.float64)}
             for side in ("valid", "test")}  # fmt: skip
    finish(out, "A", args.seed, preds, clock_result("torch-rechub DeepFM", "A", args, clock, train_seconds, start, command))


if __name__ == "__main__":
    main()
