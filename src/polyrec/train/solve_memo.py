"""Closed-form solves kept in memory by a digest of their inputs, for this process's later trainings.

A study (`polyrec bench mtl`) trains many configurations on each seed's splits, one after
the other in each worker process. Some solves in a training read nothing a configuration
changes: the item prior's EASE solves (one matrix inverse per λ of its grid) read the
training interactions alone, and the profile join's logistic regressions read the fitted
item autoencoder's user rows, the same in every configuration of a seed wherever
``train.fit_cache`` shares the fit. Their solvers are deterministic, so an answer kept by a
digest of every input is exactly what solving again would give. A few answers are kept (the
oldest go first), and every caller gets its own copy.
"""

from __future__ import annotations

import hashlib
from collections import OrderedDict
from collections.abc import Callable
from typing import TypeVar

import numpy as np

from .fit_cache import hash_array

MAX_KEPT = 32  # the EASE grid of one split is 5 answers of about 1 MB each on MovieLens-100K
T = TypeVar("T", bound=tuple)
_kept: OrderedDict[str, tuple] = OrderedDict()


def digest(*parts: np.ndarray | float | int | str) -> str:
    """A digest of arrays (dtype, shape and contents) and scalars, in order."""
    h = hashlib.sha256()
    for part in parts:
        if isinstance(part, np.ndarray):
            hash_array(h, part)
        else:
            h.update(f"{type(part).__name__}:{part!r}".encode())
    return h.hexdigest()


def remembered(kind: str, inputs: tuple[np.ndarray | float | int | str, ...], solve: Callable[[], T]) -> T:
    """``solve()`` — a tuple of arrays (or None in their place) — or the answer kept from an
    earlier call of the same ``kind`` with equal ``inputs``."""
    key = digest(kind, *inputs)
    if key in _kept:
        _kept.move_to_end(key)
    else:
        _kept[key] = solve()
        while len(_kept) > MAX_KEPT:
            _kept.popitem(last=False)
    return tuple(a.copy() if isinstance(a, np.ndarray) else a for a in _kept[key])  # type: ignore[return-value]


def forget() -> None:
    """Drop every kept answer (tests)."""
    _kept.clear()
