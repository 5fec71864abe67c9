"""The user encoder of a next-item model as one ONNX graph.

What ``Recommender.user_vectors`` computes — the history's tokens looked up in the
catalogue's vectors, the causal Transformer's state after the last item, the expert layer
and the head's query — wrapped as a module of plain tensors, so ``torch.onnx.export`` traces
it with the batch and the history length left dynamic. The catalogue's vectors are a
constant of the graph (eval mode: ID dropout is off, so they are fixed).
"""

from __future__ import annotations

import importlib.util
import logging
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import torch
from torch import nn

from ..models.polyrec import PolyRecModel
from .format import ONNX_EXTRA, MissingExtra

INPUTS = ("items", "rating_tokens", "lengths", "users")  # the graph's inputs, in order


class UserVectorGraph(nn.Module):
    """A next-item model's query vectors from plain tensors (what the graph computes)."""

    def __init__(self, model: PolyRecModel):
        super().__init__()
        self.model = model.eval()
        self.register_buffer("catalogue", model.item_tower.all_items().detach().clone())

    @property
    def reads_user_text(self) -> bool:
        return self.model.user_text_projection is not None

    def forward(self, items: torch.Tensor, rating_tokens: torch.Tensor, lengths: torch.Tensor, users: torch.Tensor) -> torch.Tensor:
        """(B, L) item indices and rating tokens, right-padded; (B,) lengths (≥ 1); (B,) user
        indices (−1: none; read only by a model of users described by text) → (B, d) the
        next-item head's query vectors."""
        m = self.model
        tokens = m.user_encoder.tokens(self.catalogue[items], rating_tokens)
        if self.reads_user_text:
            tokens = m.with_user_text(tokens, m.user_text_of(users))
        state = m.user_encoder.forward_at(tokens, (lengths - 1).clamp(min=0))
        state = m.task_state(state.unsqueeze(1), "next_item").squeeze(1)
        return m.heads["next_item"].query(state)


def write_graph(model: PolyRecModel, path: Path) -> None:
    """Export ``model``'s user encoder to ``path`` (ONNX). The graph declares every input of
    :data:`INPUTS`, ``users`` too where the model does not read it; the reader feeds what the
    graph declares."""
    if any(importlib.util.find_spec(name) is None for name in ("onnx", "onnxscript")):  # torch.onnx's exporter needs both
        raise MissingExtra(f"exporting needs onnx and onnxscript: {ONNX_EXTRA}")
    graph = UserVectorGraph(model)
    B, L = 2, 3  # any example: the shapes are declared dynamic
    example = (
        torch.zeros(B, L, dtype=torch.long), torch.ones(B, L, dtype=torch.long),
        torch.full((B,), L, dtype=torch.long), torch.zeros(B, dtype=torch.long),
    )
    batch, length = torch.export.Dim("batch"), torch.export.Dim("length", max=max(model.spec.config.max_history, 2))
    shapes = ({0: batch, 1: length}, {0: batch, 1: length}, {0: batch}, {0: batch})
    with quiet_exporter(), torch.no_grad():
        program = torch.onnx.export(
            graph, example, dynamo=True, dynamic_shapes=shapes, input_names=list(INPUTS),
            output_names=["query"], verbose=False,
        )
    program.save(str(path))


@contextmanager
def quiet_exporter() -> Iterator[None]:
    """The exporter's warnings and logs (torchvision's ops skipped, deprecations) concern
    torch's internals, not the user: silenced while it runs. Its loggers set their own levels,
    so logging is disabled below ERROR for the duration rather than logger by logger."""
    before = logging.root.manager.disable
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        logging.disable(max(before, logging.WARNING))
        try:
            yield
        finally:
            logging.disable(before)
