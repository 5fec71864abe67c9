"""Time the joint model's training steps on MovieLens-100K, one thread: what an epoch of
`polyrec run` spends outside validation and the autoencoder fits.

    python benchmarks/training_step.py            # protocol B, seed 0, the default config
    python benchmarks/training_step.py A          # protocol A
    python benchmarks/training_step.py B configs/quickstart.yaml 3
    python benchmarks/training_step.py B my-shop.yaml 2 50   # the first 50 steps of each epoch

Builds the model as `polyrec run` does, then runs whole epochs of `train.finetune.training_step`
(forward, backward, clipping, AdamW) with the batching and the weight average around it, and
prints milliseconds per step and seconds per epoch, best of the given number of epochs
(default 3). A fourth argument cuts each epoch to its first N steps, for data whose whole
epochs take too long to time (a large catalogue).
"""

from __future__ import annotations

import sys
import tempfile
import time

import numpy as np
import torch

from polyrec.config import RunConfig
from polyrec.pipeline import load_run_data, prepare_run
from polyrec.train.data_parallel import DataParallel
from polyrec.train.finetune import TaskObjective, auxiliary_fractions, build_model, joint_optimizer, training_step
from polyrec.train.sequences import collate, length_bucketed_batches
from polyrec.train.weight_average import WeightAverage, ema_decay
from polyrec.train.weighting import SharedParameters, make_weighting


def main(protocol: str = "B", config: str = "configs/quickstart.yaml", epochs: int = 3, steps: int | None = None) -> None:
    cfg = RunConfig.load(config)
    cfg.train.threads = 1
    data_all = load_run_data(cfg, progress=False, log=lambda _: None)
    with tempfile.TemporaryDirectory() as out:
        inputs = prepare_run(cfg, out, data_all, progress=False, baselines=False).inputs
        data = inputs.prepare(protocol, 0)
    torch.manual_seed(0)
    tasks = cfg.train.tasks_for(inputs.tasks, protocol)
    model = build_model(data, tasks, inputs.ds.n_items, inputs.text_vectors, cfg.model, inputs.ds.rating_range)
    for fitted in model.autoencoders():  # fitted before the joint steps, frozen during them
        fitted.requires_grad_(False)
    objective = TaskObjective(data.profile_labels, cfg.train.sampled_negatives)
    weighting = make_weighting(cfg.train.weighting, list(model.heads), cfg.train.loss_weights, protocol, 0)
    shared = SharedParameters(model.shared_parameters(), model.last_shared_layer())
    params = [p for p in model.parameters() if p.requires_grad]
    opt = joint_optimizer(params, cfg.train)
    lengths = data.train.lengths()
    users = np.flatnonzero(lengths > 1)
    averaged = WeightAverage(model, ema_decay(cfg.train.ema_epochs, -(-len(users) // cfg.train.batch_size), cfg.train.epochs))
    fractions = auxiliary_fractions(cfg.train, protocol)
    shuffle = cfg.train.shuffle_history_in_a and protocol == "A"
    rng = np.random.default_rng(0)
    single = DataParallel()  # no process group: the step's gradient exchange is a no-op
    model.train()
    per_epoch = []
    for _ in range(epochs):
        batches = length_bucketed_batches(users, lengths, cfg.train.batch_size, rng)[:steps]
        start = time.perf_counter()
        for batch_users in batches:
            batch = collate(data.train, batch_users, cfg.model.max_history, rng, shuffle)
            training_step(model, batch, objective, weighting, shared, opt, params, fractions, single)
            averaged.update()
        per_epoch.append((time.perf_counter() - start, len(batches)))
    seconds, steps = min(per_epoch)
    print(f"protocol {protocol}: {seconds / steps * 1e3:.1f} ms a step, {seconds:.2f} s an epoch of {steps} steps "
          f"(best of {epochs}; all: {', '.join(f'{s:.2f}' for s, _ in per_epoch)} s)")


if __name__ == "__main__":
    args = sys.argv[1:]
    main(*(args[:2]), *(int(a) for a in args[2:4]))
