"""What an exported run's folder holds, shared by the writer and the reader."""

from __future__ import annotations

FORMAT, VERSION = "polyrec-export", 1
MANIFEST = "export.json"  # names the format: `polyrec.load` tells an exported folder by it
GRAPH = "user_encoder.onnx"  # (items, rating_tokens, lengths[, users]) → (B, d) query vectors
ITEM_VECTORS = "item_vectors.npy"  # (I, d + 1) float32 [e_i, b_i]: score = [q, 1] · [e_i, b_i]
HISTORIES = "histories.npz"  # known users' histories: offsets (U + 1), items and rating tokens
PRIOR_FILE = "{name}.npz"  # a prior's (I, I) map with sources as rows (scipy.sparse.save_npz)
ONNX_EXTRA = "pip install 'polyrec[export]'"  # onnx, onnxscript and onnxruntime


class MissingExtra(ImportError):
    """An optional package the export needs is not installed (the message says how to)."""
