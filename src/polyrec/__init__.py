"""polyrec: multi-task recommendation on top of pretrained language models."""

from .config import RunConfig
from .data.errors import DataError
from .data.loader import load_dataset
from .data.tables import Dataset
from .recommender import Recommender, load

__version__ = "0.1.0"
__all__ = ["DataError", "Dataset", "Recommender", "RunConfig", "load", "load_dataset", "run"]


def run(config: RunConfig | None = None, out: str = "runs/latest", progress: bool = True):
    """Train and evaluate with ``config`` (defaults: ml-100k, all tasks, protocols A and B)."""
    from .pipeline import run as _run

    return _run(config or RunConfig(), out, progress)
