"""Language-model item features."""

from .encoder import MINILM, encode_texts, resolve_encoder

__all__ = ["MINILM", "encode_texts", "resolve_encoder"]
