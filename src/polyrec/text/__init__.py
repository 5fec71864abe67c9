"""Language-model item features."""

from .encoder import MINILM, encode_texts, resolve_encoder
from .packaged_mpnet import MPNET

__all__ = ["MINILM", "MPNET", "encode_texts", "resolve_encoder"]
