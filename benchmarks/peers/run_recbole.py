"""RecBole SASRec, BERT4Rec or BPR on polyrec's protocol-B split (run in the PEERS venv).

    benchmarks/peers/.venv/bin/python benchmarks/peers/run_recbole.py --model SASRec --seed 0
        [--splits runs/peers/splits] [--out runs/peers/recbole-sasrec] [--epochs 300]
        [--patience 10] [--threads N] [--max-batches N]

RecBole reads the exported split through its ``benchmark_filename`` feature (the files
``pr.{train,valid,test}.inter``, or ``pr-seq.*`` with item lists for the sequential models),
so it trains on exactly polyrec's training interactions, with each model's RecBole defaults
(SASRec and BERT4Rec: full softmax, no sampled negatives: ``train_neg_sample_args: ~``).

After every epoch the model ranks the whole catalogue for each validation user and the
validation NDCG@10 is computed by polyrec's ranking code (history excluded, ties against the
target), the protocol's own selection rule; RecBole's early stopping (``stopping_step``) acts
on it and the best epoch's weights are kept. The kept model then scores every validation
and test user (test input: train + valid history) and the scores are written as polyrec
predictions, ``<out>/predictions/B/seed<k>/{valid,test}.npz`` (``"next_item"``), with
``<out>/seed<k>.json`` (times, peak memory, validation curve).

``--max-batches`` cuts each epoch to its first N batches: a smoke test of the pipeline only.
"""

from __future__ import annotations

import itertools
import os
import sys
import time
import warnings
from pathlib import Path

os.environ.setdefault("TORCH_FORCE_NO_WEIGHTS_ONLY_LOAD", "1")  # RecBole's checkpoint reload under torch >= 2.6

import numpy as np
import torch
from common import EpochClock, clock_result, finish, ndcg_at_10, peer_arguments, protocol_b_sides, read_meta
from recbole.config import Config
from recbole.data import create_dataset, data_preparation
from recbole.data.interaction import Interaction
from recbole.trainer import trainer as trainer_module
from recbole.utils import get_model, init_seed

SEQUENTIAL = {"SASRec", "BERT4Rec"}
SCORE_BATCH = 256


class NullWriter:
    """Stands in for RecBole's TensorBoard writer, which would write event files into the cwd."""

    def __getattr__(self, name):
        return lambda *args, **kwargs: None


trainer_module.get_tensorboard = lambda logger: NullWriter()


class FirstBatches:
    """A data loader cut to its first ``n`` batches (smoke runs)."""

    def __init__(self, loader, n: int):
        self.loader, self.n = loader, n

    def __iter__(self):
        return itertools.islice(iter(self.loader), self.n)

    def __len__(self) -> int:
        return min(self.n, len(self.loader))

    def __getattr__(self, name):
        return getattr(self.loader, name)


class Scorer:
    """Scores of a RecBole model over polyrec's catalogue (items RecBole never saw: -inf)."""

    def __init__(self, model, dataset, n_items: int, max_len: int):
        self.model, self.max_len = model, max_len
        self.sequential = model.__class__.__name__ in SEQUENTIAL
        item_ids = dataset.field2token_id[dataset.iid_field]
        self.user_ids = dataset.field2token_id[dataset.uid_field]
        self.item_col = np.array([item_ids.get(str(i), -1) for i in range(n_items)])
        self.rb_item = {i: item_ids[str(i)] for i in range(n_items) if str(i) in item_ids}
        self.known = self.item_col >= 0
        self.uid_field, self.iid_field = dataset.uid_field, dataset.iid_field

    def inputs(self, users: np.ndarray, history: list[np.ndarray]) -> Interaction:
        if not self.sequential:
            return Interaction({self.uid_field: torch.tensor([self.user_ids[str(int(u))] for u in users])})
        seqs = torch.zeros(len(users), self.max_len, dtype=torch.long)
        lengths = torch.zeros(len(users), dtype=torch.long)
        for row, h in enumerate(history):
            last = [self.rb_item[int(i)] for i in h[-self.max_len :]]
            seqs[row, : len(last)] = torch.tensor(last, dtype=torch.long)
            lengths[row] = len(last)
        cfg = self.model.ITEM_SEQ, self.model.ITEM_SEQ_LEN
        return Interaction({cfg[0]: seqs, cfg[1]: lengths})

    @torch.no_grad()
    def __call__(self, users: np.ndarray, history: list[np.ndarray]) -> np.ndarray:
        self.model.eval()
        out = np.full((len(users), len(self.item_col)), -np.inf, dtype=np.float32)
        for s in range(0, len(users), SCORE_BATCH):
            batch = self.inputs(users[s : s + SCORE_BATCH], history[s : s + SCORE_BATCH])
            rb = self.model.full_sort_predict(batch).view(len(batch), -1).float().numpy()
            out[s : s + SCORE_BATCH, self.known] = rb[:, self.item_col[self.known]]
        return out


def make_trainer(config, model, scorer: Scorer, valid, max_batches: int | None):
    """RecBole's Trainer, validating by polyrec's NDCG@10 and keeping the best weights in memory."""

    class ProtocolTrainer(trainer_module.Trainer):
        best_state: dict | None = None

        def _train_epoch(self, train_data, epoch_idx, loss_func=None, show_progress=False):
            data = FirstBatches(train_data, max_batches) if max_batches else train_data
            return super()._train_epoch(data, epoch_idx, loss_func, show_progress)

        def _valid_epoch(self, valid_data, show_progress=False):
            users, items, history = valid
            score = ndcg_at_10(scorer(users, history), items, history)
            self.model.train()
            return score, {"ndcg@10": score}

        def _save_checkpoint(self, epoch, verbose=True, **kwargs):
            self.best_state = {k: v.detach().clone() for k, v in self.model.state_dict().items()}

    return ProtocolTrainer(config, model)


def main() -> None:
    ap = peer_arguments(__doc__, epochs=300, patience=10)  # RecBole's epochs and stopping_step
    ap.add_argument("--model", required=True, choices=["SASRec", "BERT4Rec", "BPR"])
    args = ap.parse_args()
    start = time.perf_counter()
    command = " ".join(sys.argv)
    sys.argv = sys.argv[:1]  # RecBole's Config would read `--key=value` arguments as its own
    warnings.filterwarnings("ignore", category=FutureWarning)  # RecBole's pandas and torch.amp idioms
    if args.threads:
        torch.set_num_threads(args.threads)
    splits = Path(args.splits).resolve()
    out = Path(args.out or f"runs/peers/recbole-{args.model.lower()}")
    meta = read_meta(splits)
    folder = splits / "B" / f"seed{args.seed}"
    sequential = args.model in SEQUENTIAL
    name = "pr-seq" if sequential else "pr"
    config_dict = {
        "data_path": str(folder / "recbole"), "benchmark_filename": ["train", "valid", "test"],
        "load_col": {"inter": ["user_id", "item_id_list", "item_id"] if sequential else ["user_id", "item_id"]},
        "MAX_ITEM_LIST_LENGTH": meta["max_seq_len"], "eval_args": {"order": "TO" if sequential else "RO", "mode": "full"},
        "seed": args.seed, "reproducibility": True, "epochs": args.epochs, "stopping_step": args.patience,
        "valid_metric": "NDCG@10", "metrics": ["NDCG", "Hit"], "topk": [10],
        "use_gpu": False, "show_progress": False, "checkpoint_dir": str((out / "work").resolve()),
    }  # fmt: skip
    if sequential:
        # Without the alias RecBole numbers the items of the lists apart from the targets.
        config_dict.update({"train_neg_sample_args": None, "alias_of_item_id": ["item_id_list"]})
    config = Config(model=args.model, dataset=name, config_dict=config_dict)
    init_seed(config["seed"], config["reproducibility"])
    dataset = create_dataset(config)
    train_data, valid_data, _ = data_preparation(config, dataset)
    model = get_model(config["model"])(config, train_data.dataset).to(config["device"])
    scorer = Scorer(model, dataset, meta["n_items"], meta["max_seq_len"])
    sides = protocol_b_sides(folder)
    trainer = make_trainer(config, model, scorer, sides["valid"], args.max_batches)

    clock = EpochClock()
    trainer.fit(train_data, valid_data, verbose=False, saved=True, callback_fn=clock.record)
    train_seconds = time.perf_counter() - clock.start
    model.load_state_dict(trainer.best_state)
    preds = {side: {"next_item": scorer(users, history)} for side, (users, _, history) in sides.items()}
    result = clock_result(f"RecBole {args.model}", "B", args, clock, train_seconds, start, command)
    finish(out, "B", args.seed, preds, result)


if __name__ == "__main__":
    main()
