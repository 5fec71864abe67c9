"""Data-parallel fine-tuning across processes (train/data_parallel.py, process_group.py).

Two gloo processes on the shared cores, a tiny model and a few epochs: they must split each
epoch's batches between them and end with the same weights; `torchrun … polyrec run` must
write one run folder, report once, and leave no scratch behind.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from synthetic import synthetic_dataset, tiny_config, write_dataset

from polyrec.cli import main
from polyrec.config import TASKS
from polyrec.train import data_parallel
from polyrec.train.finetune import autoencoder_fits, build_model, finetune
from polyrec.train.protocol_data import prepare
from polyrec.train.validation import validation_losses


def test_outside_a_process_group_nothing_changes() -> None:
    parallel = data_parallel.DataParallel()
    assert (parallel.rank, parallel.size, parallel.active) == (0, 1, False)
    batches = [np.arange(3), np.arange(3, 5)]
    assert parallel.shard(batches) == batches and parallel.steps(7) == 7
    assert parallel.agree(True) and not parallel.agree(False)


def _train_in_group(rank: int, store: str, out: str) -> None:
    """One of two processes: a GradNorm training whose batches and final weights are kept."""
    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"file://{store}", rank=rank, world_size=2)
    try:
        taken: list[list[int]] = []
        shard = data_parallel.DataParallel.shard

        def recorded(self, batches, costs=None):
            mine = shard(self, batches, costs)
            taken.append([[int(u) for u in b] for b in batches])  # the epoch's whole list, then mine
            taken.append([[int(u) for u in b] for b in mine])
            return mine

        data_parallel.DataParallel.shard = recorded
        ds = synthetic_dataset()
        data = prepare(ds, "A", 0, 4.0, 10, True)
        torch.manual_seed(rank)  # different starting weights: rank 0's must win
        cfg = tiny_config(epochs=3, weighting={"method": "gradnorm"})
        validated = {}  # each protocol's validation, predicted in two parts and in one
        for protocol in ("A", "B"):
            side = prepare(ds, protocol, 0, 4.0, 10, True)
            untrained = build_model(side, list(TASKS), ds.n_items, None, cfg.model, ds.rating_range)
            parallel, alone = data_parallel.DataParallel(), data_parallel.DataParallel()
            alone.rank, alone.size = 0, 1
            parallel.broadcast_state(untrained)
            validated[protocol] = (validation_losses(untrained, side, parallel), validation_losses(untrained, side, alone))
        torch.manual_seed(rank)
        model = build_model(data, list(TASKS), ds.n_items, None, cfg.model, ds.rating_range)
        result = finetune(model, data, cfg.train, progress=False)
        state = {"state": result.model.state_dict(), "taken": taken, "curves": result.curves, "validated": validated}
        torch.save(state, Path(out) / f"rank{rank}.pt")
    finally:
        dist.destroy_process_group()


@pytest.fixture(scope="module")
def two_processes(tmp_path_factory) -> list[dict]:
    out = tmp_path_factory.mktemp("dp")
    mp.spawn(_train_in_group, args=(str(out / "store"), str(out)), nprocs=2, join=True)
    return [torch.load(out / f"rank{r}.pt", weights_only=False) for r in (0, 1)]


def test_autoencoders_fitted_in_different_processes_are_those_one_process_fits(two_processes) -> None:
    """The fits are dealt out (the item autoencoder in rank 0, the engagement one in rank 1)
    and broadcast from where they were fitted: each equals the same fit made alone."""
    ds = synthetic_dataset()
    data = prepare(ds, "A", 0, 4.0, 10, True)
    torch.manual_seed(0)
    cfg = tiny_config(epochs=1)
    model = build_model(data, list(TASKS), ds.n_items, None, cfg.model, ds.rating_range)
    for _, fit in autoencoder_fits(model, data, False, None):
        fit()
    # What the fits set: the weights, and the user autoencoder's share of the mix (the joins
    # fitted after the steps set the other buffers).
    fitted = [k for k, _ in model.named_parameters() if "autoencoder" in k] + ["user_autoencoder.share"]
    alone = {k: model.state_dict()[k] for k in fitted}
    assert any(k.startswith("engagement_autoencoder.") for k in alone) and any(k.startswith("item_autoencoder.") for k in alone)
    for rank in two_processes:
        for k, v in alone.items():
            torch.testing.assert_close(rank["state"][k], v, rtol=0, atol=1e-6, msg=k)


def test_two_processes_split_every_epochs_batches_between_them(two_processes) -> None:
    first, second = (r["taken"] for r in two_processes)
    assert len(first) == len(second) == 2 * 3  # three epochs: (whole list, own share) each
    for epoch in range(3):
        whole, whole_too = first[2 * epoch], second[2 * epoch]
        assert whole == whole_too  # one batch order, drawn alike in both processes
        mine, theirs = first[2 * epoch + 1], second[2 * epoch + 1]
        assert len(mine) == len(theirs) == -(-len(whole) // 2)
        assert set(map(tuple, mine + theirs)) == set(map(tuple, whole))  # every batch, each epoch
        assert len(set(map(tuple, mine)) & set(map(tuple, theirs))) <= len(whole) % 2  # once (but a padded one)


def test_a_steps_batches_are_neighbours_in_cost() -> None:
    """Sharded by cost, the two batches of a step differ less than taken in list order."""
    parallel = data_parallel.DataParallel()
    parallel.size = 2
    rng = np.random.default_rng(0)
    costs = rng.integers(1, 200, size=41).tolist()
    batches = list(range(41))
    shares = []
    for rank in (0, 1):
        parallel.rank = rank
        shares.append(parallel.shard(batches, costs))
    assert len(shares[0]) == len(shares[1]) == 21
    assert set(shares[0]) | set(shares[1]) == set(batches) and len(shares[0] + shares[1]) == 42  # one padded
    rounds = [(a, b) for a, b in zip(*shares) if b not in shares[0]]  # the short round's filler left out
    assert len(rounds) == 20
    gap = sum(abs(costs[a] - costs[b]) for a, b in rounds)
    in_order = sum(abs(costs[k] - costs[k + 1]) for k in range(0, 40, 2))
    assert gap < in_order / 4


def test_validation_predicted_in_parts_is_validation_predicted_whole(two_processes) -> None:
    for rank in two_processes:
        for protocol, (parts, whole) in rank["validated"].items():
            assert parts.keys() == whole.keys() and parts, protocol
            for k in whole:
                assert parts[k] == pytest.approx(whole[k], rel=1e-5), (protocol, k)
    assert "next_item.ndcg@10" in two_processes[0]["validated"]["B"][0]
    assert {"rating", "ctr", "profile"} <= two_processes[0]["validated"]["A"][0].keys()


def test_two_processes_end_with_the_same_weights_and_learned_task_weights(two_processes) -> None:
    a, b = (r["state"] for r in two_processes)
    assert a.keys() == b.keys()
    for k in a:
        assert torch.equal(a[k], b[k]), k
    weights = [{t: c["weight"] for t, c in r["curves"].items() if "weight" in c} for r in two_processes]
    assert weights[0] and weights[0] == weights[1]


def test_torchrun_writes_one_run_folder_and_reports_once(tmp_path) -> None:
    data = write_dataset(tmp_path / "data")
    tiny_config(data, epochs=2).save(tmp_path / "cfg.yaml")
    torchrun = shutil.which("torchrun", path=os.path.dirname(sys.executable))
    assert torchrun is not None
    env = {**os.environ, "TMPDIR": str(tmp_path)}  # the follower's scratch folder lands here
    done = subprocess.run(
        [torchrun, "--nproc_per_node", "2", "-m", "polyrec", "run", "--config", str(tmp_path / "cfg.yaml"),
         "--out", str(tmp_path / "run"), "--quiet"],
        capture_output=True, text=True, env=env, timeout=300,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.count("| metric |") == 1 and done.stdout.count("data: synthetic") == 1
    metrics = json.loads((tmp_path / "run" / "metrics.json").read_text())
    assert "A.rating.rmse" in metrics and "B.next_item.ndcg@10" in metrics
    assert not list(tmp_path.glob("polyrec-follower-*"))


def test_commands_that_do_not_train_across_processes_refuse_under_torchrun(monkeypatch, capsys) -> None:
    monkeypatch.setenv("WORLD_SIZE", "2")
    assert main(["data", "describe", "ml-100k"]) == 2
    err = capsys.readouterr().err
    assert "`polyrec data` runs in one process" in err and "`polyrec run`" in err
