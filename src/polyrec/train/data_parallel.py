"""Data-parallel fine-tuning over several processes, on PyTorch's own distributed engine.

Launched by ``torchrun --nproc_per_node N -m polyrec run …`` (or ``--nnodes`` for several
machines), every process runs the same pipeline on the same data; inside each training they
split the epoch's batches and average their gradients before every optimiser step, so N
processes take one step where one process took N. This is what ``DistributedDataParallel``
does, written out because the loss weightings need the per-task gradients before any
averaging (PCGrad projects them, GradNorm measures them) and DDP averages during the
backward pass. Which process takes which batch, and how gradients and decisions are shared:

- every process draws the same batches (one seeded generator); each step, each takes one of
  a round of N batches of similar cost, so that none waits long for the others; a last,
  short round is filled from the first batches, as ``DistributedSampler`` pads, so that every
  process takes as many steps;
- gradients are summed over the processes and divided by N, in one flat buffer (a parameter
  without a gradient anywhere keeps none, so AdamW skips it as it would alone);
- a weighting's learned task weights are averaged after each step;
- the fits before the steps (the autoencoders) are dealt out among the processes, each
  fitted in one and then broadcast from it;
- each epoch's validation predictions are computed in parts, one per process, and gathered;
- rank 0's model state is broadcast before anything is fitted, and rank 0 decides each epoch's
  "improved" and "stop" (every process validates the same weights, but a decision must never
  differ by a rounding), so all processes hold the same weights throughout.

A single process (no process group, or a group of one) takes exactly the path it always did.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from typing import TypeVar

import numpy as np
import torch
import torch.distributed as dist
from torch._utils import _flatten_dense_tensors, _unflatten_dense_tensors

T = TypeVar("T")
R = TypeVar("R", np.ndarray, dict[str, np.ndarray])


def process_group_size() -> tuple[int, int]:
    """(rank, world size) of this process; (0, 1) outside a process group."""
    if dist.is_available() and dist.is_initialized():
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


class DataParallel:
    """The few points where a training in a process group differs from one alone."""

    def __init__(self) -> None:
        self.rank, self.size = process_group_size()

    @property
    def active(self) -> bool:
        return self.size > 1

    def steps(self, n_batches: int) -> int:
        """Optimiser steps each process takes for an epoch of ``n_batches``."""
        return math.ceil(n_batches / self.size)

    def shard(self, batches: Sequence, costs: Sequence[float] | None = None) -> list:
        """This process's batches of an epoch whose (identical) batch list every process holds.

        Each step every process takes one batch and then waits for the slowest at the gradient
        exchange, so with ``costs`` (e.g. users × padded length) a step's batches are
        neighbours in cost: the batches sorted by cost are cut into rounds of N, and the rounds
        keep the list's random order (by their earliest batch in it). Without, round k is
        batches kN … kN + N − 1. A last, short round is filled from the list's first batches."""
        if not self.active or not batches:
            return list(batches)
        n = len(batches)
        by_cost = np.argsort(np.asarray(costs), kind="stable") if costs is not None else np.arange(n)
        rounds = sorted((by_cost[k : k + self.size] for k in range(0, n, self.size)), key=lambda r: int(r.min()))
        return [batches[int(r[self.rank]) if self.rank < len(r) else self.rank % n] for r in rounds]

    @torch.no_grad()
    def broadcast_state(self, module: torch.nn.Module, src: int = 0) -> None:
        """Process ``src``'s parameters and buffers into every process's ``module``."""
        if self.active:
            for tensor in list(module.parameters()) + list(module.buffers()):
                dist.broadcast(tensor.data, src=src)

    def split(self, jobs: Sequence[tuple[Sequence[torch.nn.Module], Callable[[], T]]]) -> list[T]:
        """Run job k in process k mod N only; then its modules' state and its result reach
        every process. ``jobs``: (the modules a job changes, the job). Alone: each job, in order."""
        owners = [k % self.size for k in range(len(jobs))]
        results: list[T | None] = [job() if owner == self.rank else None for (_, job), owner in zip(jobs, owners)]
        if self.active:
            for k, ((modules, _), owner) in enumerate(zip(jobs, owners)):
                for module in modules:
                    self.broadcast_state(module, src=owner)
                box = [results[k]]
                dist.broadcast_object_list(box, src=owner)
                results[k] = box[0]
        return results  # type: ignore[return-value]

    def gather_rows(self, rows: Callable[[slice], R], n: int) -> R:
        """``rows(slice(0, n))`` — an array, or a dict of arrays, with one row per index —
        computed in parts: each process takes a contiguous N-th of the indices, and every
        process receives all parts, joined in order (with fewer indices than processes,
        every process computes them all)."""
        if not self.active or n < self.size:
            return rows(slice(0, n))
        bounds = np.linspace(0, n, self.size + 1).round().astype(int)
        parts: list = [None] * self.size
        dist.all_gather_object(parts, rows(slice(int(bounds[self.rank]), int(bounds[self.rank + 1]))))
        if isinstance(parts[0], dict):
            return {k: np.concatenate([p[k] for p in parts]) for k in parts[0]}  # type: ignore[return-value]
        return np.concatenate(parts)  # type: ignore[return-value]

    @torch.no_grad()
    def average_gradients(self, params: Sequence[torch.Tensor]) -> None:
        """Each parameter's ``.grad`` becomes the mean over the processes (missing counts as 0)."""
        if not self.active or not params:
            return
        has = torch.tensor([p.grad is not None for p in params], dtype=torch.int32)
        dist.all_reduce(has, op=dist.ReduceOp.MAX)
        grads = [torch.zeros_like(p) if p.grad is None else p.grad for p in params]
        flat = _flatten_dense_tensors(grads)
        dist.all_reduce(flat)
        flat /= self.size
        for p, g, anywhere in zip(params, _unflatten_dense_tensors(flat, grads), has.tolist()):
            p.grad = g if anywhere else None

    @torch.no_grad()
    def average(self, tensors: Sequence[torch.Tensor]) -> None:
        """Each tensor, in place, becomes its mean over the processes."""
        if self.active:
            for t in tensors:
                dist.all_reduce(t.data)
                t.data /= self.size

    def agree(self, decision: bool) -> bool:
        """Rank 0's ``decision``, in every process."""
        if not self.active:
            return decision
        flag = torch.tensor([int(decision)], dtype=torch.int32)
        dist.broadcast(flag, src=0)
        return bool(flag.item())
