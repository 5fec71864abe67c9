"""Language-model adaptation: the sentence encoder made partly trainable during pretraining.

The item text vectors are normally computed once by a frozen sentence encoder and cached.
With adaptation (``pretrain.adapt_text``), pretraining's text–ID objective also trains either
LoRA adapters (the ``peft`` library, on the attention's query and value projections) or the
encoder's top layers, so that the language model learns what in a title tells items apart
*in this behaviour*. When pretraining ends the adapted encoder re-encodes the catalogue, and
those vectors (saved with the model) are what fine-tuning and serving read.
"""

from __future__ import annotations

import numpy as np
import torch
from torch import nn

from ..config import ADAPT_MODES
from .encoder import load_sentence_encoder

LORA_TARGETS = ["query", "value"]  # BERT / MPNet attention projections (MiniLM and mpnet alike)


class TextAdapter(nn.Module):
    """A sentence-transformers encoder whose LoRA adapters or top ``layers`` layers train."""

    def __init__(
        self, encoder: str, texts: list[str], mode: str, layers: int = 1, rank: int = 8, cache_dir: str | None = None,
        max_tokens: int | None = None,
    ):  # fmt: skip
        super().__init__()
        if mode not in ADAPT_MODES[1:]:
            raise ValueError(f"'pretrain.adapt_text' must be one of {', '.join(ADAPT_MODES)}; got {mode!r}")
        self.texts = texts
        self.encoder = load_sentence_encoder(encoder, cache_dir, max_tokens)
        backbone = self.encoder[0].auto_model
        for p in self.encoder.parameters():
            p.requires_grad_(False)
        if mode == "lora":
            try:
                from peft import LoraConfig, inject_adapter_in_model
            except ImportError:
                raise RuntimeError("pretrain.adapt_text 'lora' needs the peft library: pip install 'polyrec[adapt]'") from None
            # New LoRA weights are trainable; the frozen base stays as it was (B starts at 0,
            # so before any step the encoder computes exactly the cached vectors).
            inject_adapter_in_model(LoraConfig(r=rank, lora_alpha=2 * rank, target_modules=LORA_TARGETS), backbone)
        else:
            blocks = next(m for m in backbone.modules() if isinstance(m, nn.ModuleList))  # encoder.layer
            for block in list(blocks)[-layers:]:
                for p in block.parameters():
                    p.requires_grad_(True)

    def trainable(self) -> list[nn.Parameter]:
        return [p for p in self.encoder.parameters() if p.requires_grad]

    def forward(self, items: torch.Tensor) -> torch.Tensor:
        """(N,) item indices → (N, D) L2-normalised text vectors, with gradients."""
        texts = [self.texts[i] for i in items.tolist()]
        prepare = getattr(self.encoder, "preprocess", None) or self.encoder.tokenize
        return self.encoder(prepare(texts))["sentence_embedding"]

    @torch.no_grad()
    def encode_all(self, batch_size: int = 64) -> np.ndarray:
        """(I, D) vectors of the whole catalogue from the adapted encoder."""
        was_training = self.training
        self.eval()
        out = [self(torch.arange(s, min(s + batch_size, len(self.texts)))) for s in range(0, len(self.texts), batch_size)]
        self.train(was_training)
        return torch.cat(out).numpy().astype(np.float32)
