"""Fitted autoencoders kept by what their fit reads, so that a training which would fit the
same one again reads it back instead (``train.fit_cache``, off by default).

`polyrec bench mtl` trains up to 14 protocol-A configurations per seed that differ in their
expert layers, loss weighting or tasks, yet fit the same item autoencoder: the same initial
weights (drawn before any layer that differs), training ratings, validation ratings and
seed. At 6 epochs its fit is about half of such a training. The key hashes every input of
the fit and the source code that fits it, so a hit gives exactly the weights the fit would,
and anything else (an edited fit included) fits anew.
"""

from __future__ import annotations

import hashlib
import inspect
import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..atomic import replace_atomically


def source_digest(*code: object) -> str:
    """A digest of the source of ``code`` (functions, classes and their polyrec bases): part of
    a key, so that a fit made by other code is never read back."""
    h = hashlib.sha256()
    for obj in code:
        parts = [c for c in inspect.getmro(obj) if c is obj or c.__module__.startswith("polyrec")] if inspect.isclass(obj) else [obj]
        for part in parts:
            h.update(inspect.getsource(part).encode())  # type: ignore[arg-type]
    return h.hexdigest()[:16]


def hash_array(h: "hashlib._Hash", a: np.ndarray) -> None:
    """Feed ``a``'s dtype, shape and contents to the digest ``h``."""
    a = np.ascontiguousarray(a)
    h.update(f"{a.dtype}:{a.shape}".encode())
    h.update(a.tobytes())


def fit_key(module: nn.Module, arrays: tuple[np.ndarray, ...], settings: dict[str, Any]) -> str:
    """A digest of ``module``'s state (parameters and buffers, before its fit), the
    ``arrays`` the fit reads besides, and its ``settings`` (JSON-serialisable)."""
    h = hashlib.sha256()
    described = {"module": type(module).__name__, "torch": torch.__version__, **settings}
    h.update(json.dumps(described, sort_keys=True).encode())
    for name, tensor in sorted(module.state_dict().items()):
        h.update(f"{name}:".encode())
        hash_array(h, tensor.detach().cpu().numpy())
    for a in arrays:
        hash_array(h, a)
    return h.hexdigest()[:40]


def cached_fit(
    folder: str | Path,
    module: nn.Module,
    arrays: tuple[np.ndarray, ...],
    settings: dict[str, Any],
    fit: Callable[[], float],
) -> float:
    """``fit()`` (which trains ``module`` in place and returns its score), or, where
    ``folder`` holds a fit with the same key, that fit's state and score read back. A fit
    is stored there once done."""
    path = Path(folder) / f"{fit_key(module, arrays, settings)}.pt"
    if path.is_file():
        saved = torch.load(path, weights_only=True)
        module.load_state_dict(saved["state"])
        return float(saved["score"])
    score = fit()
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {k: v.detach().clone() for k, v in module.state_dict().items()}
    replace_atomically(path, lambda tmp: torch.save({"state": state, "score": score}, tmp))
    return score
