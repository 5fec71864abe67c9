"""`polyrec run` under ``torchrun``: the process group, and what each process writes.

``torchrun --nproc_per_node N -m polyrec run …`` starts N processes with ``RANK`` and
``WORLD_SIZE`` set. Each runs the whole pipeline on the same data; every training splits its
batches among them (train/data_parallel.py). Rank 0 resumes, evaluates and writes the run
folder as a lone process would; the others train the same jobs in a scratch folder of their
own, deleted when they finish, and print nothing.
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from contextlib import contextmanager
from typing import TypeVar

T = TypeVar("T")

# Commands that train across the processes of a group; every other one refuses to start there.
DISTRIBUTED_COMMANDS = ("run", "finetune")


def launched_world_size() -> int:
    """The number of processes ``torchrun`` (or any launcher setting ``WORLD_SIZE``) started."""
    return int(os.environ.get("WORLD_SIZE", "1"))


def launched_rank() -> int:
    return int(os.environ.get("RANK", "0"))


@contextmanager
def process_group() -> Iterator[int]:
    """Inside: this process's rank, in a gloo process group where a launcher started several
    (polyrec trains on CPU tensors; gloo is PyTorch's CPU backend); 0 and no group otherwise.
    A group that the caller already set up is used, and left to the caller."""
    import torch.distributed as dist  # here, not above: the command line starts without torch

    if launched_world_size() <= 1 or dist.is_initialized():
        yield dist.get_rank() if dist.is_initialized() else 0
        return
    dist.init_process_group("gloo")
    try:
        yield dist.get_rank()
    finally:
        dist.destroy_process_group()


def from_rank_zero(value: T) -> T:
    """Rank 0's ``value`` in every process of the group (``value`` itself outside one)."""
    import torch.distributed as dist

    if not dist.is_initialized() or dist.get_world_size() == 1:
        return value
    box = [value]
    dist.broadcast_object_list(box, src=0)
    return box[0]
