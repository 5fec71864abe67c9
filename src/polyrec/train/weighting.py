"""Loss-weighting strategies: how the task losses of one step become one gradient.

Every strategy has the same two methods, so the training loop never branches on which one
runs:

- ``backward(losses, shared)`` fills ``.grad`` of the model's parameters from the task losses
  of one batch (and updates the strategy's own learned weights, if it has any, with its own
  small Adam: they are not model parameters and take no weight decay);
- ``weights()`` gives the effective weight of each task now, for the per-epoch log;
- ``parameters()`` lists the learned weights (none for fixed λ and PCGrad), which a
  data-parallel training averages over its processes after each step.

``fixed`` is ``Σ λ_t L_t`` with ``train.loss_weights`` (what polyrec always did);
``uncertainty`` (Kendall et al., CVPR 2018) learns ``s_t = log σ_t²`` and minimises
``Σ exp(−s_t) L_t + s_t`` (weight ``exp(−s_t)``, which settles at ``1 / L_t``); ``gradnorm``
(Chen et al., ICML 2018) learns weights ``w_t`` that pull each task's gradient norm on the
last shared layer towards the mean norm times ``r_t^α``, where ``r_t`` is the task's relative
inverse training rate, and renormalises them to sum to the number of tasks after every step;
``pcgrad`` (Yu et al., NeurIPS 2020) projects each task's gradient of ``λ_t L_t`` on the
shared parameters off the gradients it conflicts with (negative dot product), in random
order; task-specific parameters get their usual gradient.

A batch may lack a task (no labelled target in it); strategies use the tasks present. Model
selection (early stopping) weighs the validation losses with ``train.loss_weights`` whatever
the strategy, so every strategy is judged by the same rule.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

import torch

from ..config import WeightingConfig
from .losses import joint_loss


@dataclass
class SharedParameters:
    params: list[torch.Tensor]  # parameters more than one task reads (PCGrad projects these)
    last_layer: torch.Tensor  # the last layer every task flows through (GradNorm measures here)


class LossWeighting(Protocol):
    name: str

    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None: ...

    def weights(self) -> dict[str, float]: ...

    def parameters(self) -> list[torch.Tensor]: ...


class FixedWeights:
    """``Σ λ_t L_t``; a task missing from ``lambdas`` has weight 1."""

    name = "fixed"

    def __init__(self, tasks: list[str], lambdas: dict[str, float]):
        self.lambdas = {t: float(lambdas.get(t, 1.0)) for t in tasks}

    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None:
        joint_loss(losses, self.lambdas).backward()

    def weights(self) -> dict[str, float]:
        return dict(self.lambdas)

    def parameters(self) -> list[torch.Tensor]:
        return []


class _Learned:
    """A vector of per-task parameters with its own Adam."""

    def __init__(self, tasks: list[str], init: float, lr: float):
        self.tasks = list(tasks)
        self.index = {t: k for k, t in enumerate(tasks)}
        self.param = torch.full((len(tasks),), float(init), requires_grad=True)
        self.opt = torch.optim.Adam([self.param], lr=lr)

    def parameters(self) -> list[torch.Tensor]:
        return [self.param]

    def present(self, losses: dict[str, torch.Tensor]) -> tuple[list[str], torch.Tensor]:
        names = [t for t in self.tasks if t in losses]
        return names, torch.tensor([self.index[t] for t in names], dtype=torch.long)


class UncertaintyWeights(_Learned):
    """Homoscedastic uncertainty: ``Σ exp(−s_t) L_t + s_t``, ``s_t`` learned from 0."""

    name = "uncertainty"

    def __init__(self, tasks: list[str], lr: float):
        super().__init__(tasks, 0.0, lr)

    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None:
        names, idx = self.present(losses)
        s = self.param[idx]
        total = (torch.exp(-s) * torch.stack([losses[t] for t in names]) + s).sum()
        self.opt.zero_grad(set_to_none=True)
        total.backward()  # the model's gradients, and the gradient of s
        self.opt.step()

    def weights(self) -> dict[str, float]:
        return {t: float(torch.exp(-self.param[k].detach())) for t, k in self.index.items()}


class GradNormWeights(_Learned):
    """GradNorm: weights that balance gradient norms on the last shared layer."""

    name = "gradnorm"

    def __init__(self, tasks: list[str], alpha: float, lr: float):
        super().__init__(tasks, 1.0, lr)
        self.alpha = alpha
        self.initial: dict[str, float] = {}  # L_t at the first step a task appeared

    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None:
        names, idx = self.present(losses)
        for t in names:
            self.initial.setdefault(t, max(float(losses[t].detach()), 1e-8))
        # ‖∇_W w_t L_t‖ = w_t ‖∇_W L_t‖ (w_t > 0): one gradient per task on W, no second order.
        w = self.param[idx]
        listed = [losses[t] for t in names]
        grads = backward_with_task_gradients(listed, names, w.detach(), shared.last_layer)
        with torch.no_grad():
            norms = [torch.zeros(()) if g is None else g.norm() for g in grads]
            ratio = torch.stack(listed) / torch.tensor([self.initial[t] for t in names])  # L_t / L_t(0)
            target = torch.stack(norms).mean() * (ratio / ratio.mean()) ** self.alpha  # a constant (paper, eq. 2)
        grad_norms = w * torch.stack(norms)
        self.opt.zero_grad(set_to_none=True)
        (grad_norms - target).abs().sum().backward()  # reaches only w: the norms are constants
        self.opt.step()
        with torch.no_grad():
            self.param.clamp_(min=1e-3)
            self.param.mul_(len(self.tasks) / self.param.sum())

    def weights(self) -> dict[str, float]:
        return {t: float(self.param[k].detach()) for t, k in self.index.items()}


def backward_with_task_gradients(
    losses: list[torch.Tensor], names: list[str], weights: torch.Tensor, layer: torch.Tensor
) -> list[torch.Tensor | None]:
    """``(weights · losses).backward()`` (the model's gradients), and each task's own gradient
    ``∇ L_t`` on ``layer`` (None where the task does not reach it), in ``names``' order.
    ``losses`` are the tasks' own scalars: a gradient taken from one element of a stacked
    tensor would run back through every task's graph, with zeros.

    Every task's gradient but one is taken on its own. The remaining task's is what the
    joint backward adds to ``layer`` beyond the others' (``Σ w_t ∇L_t`` less the known
    terms, divided by its ``w``): its own gradient up to float rounding, without a pass of
    its own from its loss down to the layer. The task spared is the costliest: next_item's
    runs back through scores over the whole catalogue (about 11 % of a protocol-A step on
    MovieLens-100K); without it, the last task."""
    spared = names.index("next_item") if "next_item" in names else len(names) - 1
    grads: list[torch.Tensor | None] = [None] * len(names)
    for k in range(len(names)):
        if k != spared:
            (grads[k],) = torch.autograd.grad(losses[k], layer, retain_graph=True, allow_unused=True)
    before = None if layer.grad is None else layer.grad.clone()
    (weights * torch.stack(losses)).sum().backward()
    if layer.grad is not None:
        with torch.no_grad():
            rest = layer.grad.clone() if before is None else layer.grad - before
            for k, g in enumerate(grads):
                if g is not None:
                    rest.sub_(g, alpha=float(weights[k]))
            grads[spared] = rest.div_(weights[spared])
    return grads


def project_conflicting(grads: torch.Tensor, rng: random.Random) -> torch.Tensor:
    """PCGrad on (T, P) task gradients → (T, P): each row, in turn, loses its component along
    every other task's (original) gradient it has a negative dot product with, others visited
    in random order."""
    out = grads.clone()
    for i in range(len(grads)):
        others = [j for j in range(len(grads)) if j != i]
        rng.shuffle(others)
        for j in others:
            dot = out[i] @ grads[j]
            if dot < 0:
                out[i] -= dot / grads[j].pow(2).sum().clamp(min=1e-20) * grads[j]
    return out


class PCGrad:
    """Fixed λ, with conflicting task gradients on the shared parameters projected apart."""

    name = "pcgrad"

    def __init__(self, tasks: list[str], lambdas: dict[str, float], seed: int = 0):
        self.lambdas = {t: float(lambdas.get(t, 1.0)) for t in tasks}
        self.rng = random.Random(seed)

    def backward(self, losses: dict[str, torch.Tensor], shared: SharedParameters) -> None:
        params = [p for p in shared.params if p.requires_grad]
        names = list(losses)
        rows = []
        # One backward per task. Task-specific parameters accumulate their gradient as usual;
        # the shared ones are taken out after each task, to be projected and summed below.
        for k, t in enumerate(names):
            (self.lambdas[t] * losses[t]).backward(retain_graph=k < len(names) - 1)
            rows.append(torch.cat([(torch.zeros_like(p) if p.grad is None else p.grad).flatten() for p in params]))
            for p in params:
                p.grad = None
        total = project_conflicting(torch.stack(rows), self.rng).sum(0)
        offset = 0
        for p in params:
            p.grad = total[offset : offset + p.numel()].view_as(p).clone()
            offset += p.numel()

    def weights(self) -> dict[str, float]:
        return dict(self.lambdas)

    def parameters(self) -> list[torch.Tensor]:
        return []


def make_weighting(
    cfg: WeightingConfig, tasks: list[str], lambdas: dict[str, float], protocol: str, seed: int = 0
) -> LossWeighting:
    """The strategy ``cfg`` names for ``protocol``, for ``tasks`` (λ = ``train.loss_weights``)."""
    method = cfg.method_for(protocol)
    if method == "uncertainty":
        return UncertaintyWeights(tasks, cfg.lr)
    if method == "gradnorm":
        return GradNormWeights(tasks, cfg.alpha, cfg.lr)
    if method == "pcgrad":
        return PCGrad(tasks, lambdas, seed)
    return FixedWeights(tasks, lambdas)
