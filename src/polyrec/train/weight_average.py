"""An exponential moving average of a model's weights, judged and kept in place of the raw ones.

The joint model (train/finetune.py) and the autoencoders fitted before it
(train/item_autoencoder_fit.py) both validate, early-stop on and keep the averaged weights:
the late steps of a noisy optimiser scatter around a minimum, and their average sits nearer it.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


def ema_decay(epochs: float, steps_per_epoch: int, budget: int) -> float:
    """Per-step decay of an average whose horizon (1 / (1 − decay) steps) spans ``epochs``, at
    most a tenth of the ``budget`` of epochs: a short run (a bench's 12 epochs) would otherwise
    be judged on an average still dominated by its first, untrained steps."""
    horizon = min(epochs, budget / 10) * steps_per_epoch
    return 0.0 if epochs <= 0 else 1.0 - 1.0 / max(1.0, horizon)


class WeightAverage:
    """An exponential moving average of a model's parameters, swapped into the model while it
    is validated and its best state kept (off when decay is 0). The average is one more copy
    of the parameters only, not of the buffers (such as a large catalogue's text vectors)."""

    def __init__(self, model: nn.Module, decay: float):
        self.decay = decay
        self.params = [p for p in model.parameters() if p.requires_grad]  # frozen ones never move
        self.average: list[torch.Tensor] | None = None

    @torch.no_grad()
    def update(self) -> None:
        """After each optimiser step; the first step's weights start the average."""
        if self.decay <= 0:
            return
        current = [p.detach() for p in self.params]
        if self.average is None:
            self.average = [p.clone() for p in current]
        else:
            torch._foreach_lerp_(self.average, current, 1.0 - self.decay)

    @contextmanager
    def applied(self) -> Iterator[None]:
        """Inside: the model holds the average (unchanged when off). After: its own weights."""
        if self.average is None:
            yield
            return
        raw = [p.detach().clone() for p in self.params]
        with torch.no_grad():
            torch._foreach_copy_(self.params, self.average)
        try:
            yield
        finally:
            with torch.no_grad():
                torch._foreach_copy_(self.params, raw)
