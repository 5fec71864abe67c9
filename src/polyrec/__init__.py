"""polyrec: multi-task recommendation on top of pretrained language models."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from .config import RunConfig
from .data.errors import DataError
from .data.loader import load_dataset
from .data.tables import Dataset

if TYPE_CHECKING:
    from .pipeline import RunResult
    from .recommender import Recommender

__version__ = "0.1.0"
__all__ = ["DataError", "Dataset", "Recommender", "RunConfig", "load", "load_dataset", "run"]


def run(config: RunConfig | None = None, out: str = "runs/latest", progress: bool = True) -> "RunResult":
    """Train and evaluate with ``config`` (defaults: ml-100k, all tasks, protocols A and B)."""
    from .pipeline import run as _run

    return _run(config or RunConfig(), out, progress)


def load(path: str) -> "Recommender":
    """Load a run folder written by ``polyrec run`` or ``polyrec ensemble``: polyrec's own
    model (:class:`polyrec.recommender.Recommender`), a baseline's or an ensemble, each
    answering ``recommend`` / ``predict`` / ``profile`` by id."""
    from .run_loader import load_run

    return load_run(path)


def __getattr__(name: str) -> Any:
    # Imported on first use: torch loads only when a model is needed, so `polyrec --help` is quick.
    if name == "Recommender":
        from .recommender import Recommender

        return Recommender
    raise AttributeError(f"module 'polyrec' has no attribute '{name}'")
