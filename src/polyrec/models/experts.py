"""Expert layers between the shared user encoder and the task heads: shared-bottom, MMoE, PLE.

Placement. Every task reads the user through the encoder's causal states ``h`` (B, L, d):
next_item scores from the state after the history, profile pools all states, and rating/ctr
take the state before their target into their pair features (``PairEncoder``). So the one
place where all four tasks can get a view of their own is right there: an expert layer maps
``h`` to one state per task, ``h_t`` (B, L, d), position by position, and each task reads
``h_t`` wherever it read ``h``. Rating and ctr then build their pair features from their own
state; the rest of the pair features (target-aware attention over the history tokens, the
history summary, the item vector) read no state and stay shared by construction, which also
keeps the leave-one-out guarantee: a position's state is still causal, whatever the experts
do to it. Being per position keeps the layer cheap (no attention) and causal.

- ``SharedBottom``: ``h_t = h`` for every task, no parameters: today's model exactly.
- ``MMoE`` (Ma et al., KDD 2018): K experts shared by all tasks, a softmax gate per task
  over them, ``h_t = h + Σ_k g_tk(h) · E_k(h)``.
- ``PLE`` (Tang et al., RecSys 2020): per level, shared experts plus each task's own
  experts; task t's gate mixes its own and the shared experts; in every level but the last a
  shared gate mixes all experts into the next level's shared input. So in the last level
  (in every level with ``levels: 1``, i.e. CGC) a task's own experts get no gradient from any
  other task's loss.

The mixture is added to its input (a residual) rather than replacing it: the heads were
designed around the encoder's states, and an expert layer that starts near the identity
trains as stably as shared-bottom. Gate weights per task come back with the states for
logging (``ExpertOutput.gates``).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from ..config import MtlConfig
from .dropout import Dropout


@dataclass
class ExpertOutput:
    states: dict[str, torch.Tensor]  # task → (B, L, d)
    gates: dict[str, torch.Tensor]  # task → (B, L, E) softmax weights over ``expert_names(task)``; {} if ungated


def _expert(dim: int, hidden: int, dropout: float) -> nn.Sequential:
    return nn.Sequential(nn.Linear(dim, hidden), nn.GELU(), Dropout(dropout), nn.Linear(hidden, dim))


def _mix(gate: nn.Linear, x: torch.Tensor, outs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Softmax gate on ``x`` (B, L, d) over ``outs`` (B, L, E, d) → mixture (B, L, d), gate (B, L, E)."""
    g = torch.softmax(gate(x), dim=-1)
    return (g.unsqueeze(-1) * outs).sum(-2), g


class SharedBottom(nn.Module):
    """No expert layer: every task reads the encoder's states themselves."""

    gated = False

    def __init__(self, tasks: list[str]):
        super().__init__()
        self.tasks = list(tasks)

    def forward(self, h: torch.Tensor) -> ExpertOutput:
        return ExpertOutput({t: h for t in self.tasks}, {})

    def expert_names(self, task: str) -> list[str]:
        """What each column of ``ExpertOutput.gates[task]`` weighs."""
        return []

    def task_modules(self, task: str) -> list[nn.Module]:
        """The modules only ``task``'s loss reaches (the rest of the layer is shared)."""
        return []


class MMoE(nn.Module):
    """K shared experts, one softmax gate per task."""

    gated = True

    def __init__(self, tasks: list[str], dim: int, experts: int, hidden: int, dropout: float):
        super().__init__()
        self.tasks = list(tasks)
        self.experts = nn.ModuleList(_expert(dim, hidden, dropout) for _ in range(experts))
        self.gates = nn.ModuleDict({t: nn.Linear(dim, experts) for t in self.tasks})

    def forward(self, h: torch.Tensor) -> ExpertOutput:
        outs = torch.stack([e(h) for e in self.experts], dim=-2)  # (B, L, K, d)
        states, gates = {}, {}
        for t in self.tasks:
            mixed, gates[t] = _mix(self.gates[t], h, outs)
            states[t] = h + mixed
        return ExpertOutput(states, gates)

    def expert_names(self, task: str) -> list[str]:
        return [f"expert {k}" for k in range(len(self.experts))]

    def task_modules(self, task: str) -> list[nn.Module]:
        return [self.gates[task]]


class ExtractionLevel(nn.Module):
    """One PLE level (a CGC): shared experts, each task's own experts, their gates."""

    def __init__(self, tasks: list[str], dim: int, shared: int, own: int, hidden: int, dropout: float, last: bool):
        super().__init__()
        self.tasks = list(tasks)
        self.shared = nn.ModuleList(_expert(dim, hidden, dropout) for _ in range(shared))
        self.own = nn.ModuleDict({t: nn.ModuleList(_expert(dim, hidden, dropout) for _ in range(own)) for t in tasks})
        self.gates = nn.ModuleDict({t: nn.Linear(dim, own + shared) for t in tasks})
        # The shared gate feeds the next level's shared experts; the last level has none.
        self.shared_gate = None if last else nn.Linear(dim, shared + own * len(tasks))

    def forward(
        self, x: dict[str, torch.Tensor], x_shared: torch.Tensor
    ) -> tuple[dict[str, torch.Tensor], torch.Tensor | None, dict[str, torch.Tensor]]:
        """Per-task inputs and the shared input, each (B, L, d) → next inputs and gates."""
        shared = [e(x_shared) for e in self.shared]
        own = {t: [e(x[t]) for e in self.own[t]] for t in self.tasks}
        out, gates = {}, {}
        for t in self.tasks:
            mixed, gates[t] = _mix(self.gates[t], x[t], torch.stack(own[t] + shared, dim=-2))
            out[t] = x[t] + mixed
        out_shared = None
        if self.shared_gate is not None:
            every = [o for t in self.tasks for o in own[t]] + shared
            mixed, _ = _mix(self.shared_gate, x_shared, torch.stack(every, dim=-2))
            out_shared = x_shared + mixed
        return out, out_shared, gates


class PLE(nn.Module):
    """Progressive layered extraction: ``levels`` extraction levels."""

    gated = True

    def __init__(
        self, tasks: list[str], dim: int, shared: int, own: int, levels: int, hidden: int, dropout: float
    ):
        super().__init__()
        self.tasks = list(tasks)
        self.levels = nn.ModuleList(
            ExtractionLevel(tasks, dim, shared, own, hidden, dropout, last=k == levels - 1) for k in range(levels)
        )

    def forward(self, h: torch.Tensor) -> ExpertOutput:
        x, x_shared = {t: h for t in self.tasks}, h
        gates: dict[str, torch.Tensor] = {}
        for level in self.levels:
            x, x_shared, gates = level(x, x_shared)
        return ExpertOutput(x, gates)  # the last level's gates: what feeds each head

    def expert_names(self, task: str) -> list[str]:
        last = self.levels[-1]
        return [f"{task} {k}" for k in range(len(last.own[task]))] + [f"shared {k}" for k in range(len(last.shared))]

    def task_modules(self, task: str) -> list[nn.Module]:
        # A task's gates feed only that task; its own experts below the last level also feed
        # the shared gate, so every task reads them.
        return [level.gates[task] for level in self.levels] + [self.levels[-1].own[task]]


def build_experts(cfg: MtlConfig, tasks: list[str], dim: int, dropout: float) -> SharedBottom | MMoE | PLE:
    hidden = cfg.hidden or 2 * dim
    if cfg.arch == "mmoe":
        return MMoE(tasks, dim, cfg.experts, hidden, dropout)
    if cfg.arch == "ple":
        return PLE(tasks, dim, cfg.experts, cfg.task_experts, cfg.levels, hidden, dropout)
    return SharedBottom(tasks)
