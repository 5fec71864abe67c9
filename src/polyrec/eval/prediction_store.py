"""Each run keeps its validation and test predictions: ``predictions/<protocol>/seed<k>/<side>.npz``.

They are what an ensemble is fitted on (validation) and scored on (test), without
retraining or reloading its members.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

SIDES = ("valid", "test")


def predictions_folder(run: Path, protocol: str, seed: int) -> Path:
    return Path(run) / "predictions" / protocol / f"seed{seed}"


def save_predictions(run: Path, protocol: str, seed: int, side: str, pred: dict[str, np.ndarray]) -> None:
    folder = predictions_folder(run, protocol, seed)
    folder.mkdir(parents=True, exist_ok=True)
    np.savez(folder / f"{side}.npz", **pred)


def load_predictions(run: Path, protocol: str, seed: int, side: str) -> dict[str, np.ndarray]:
    path = predictions_folder(run, protocol, seed) / f"{side}.npz"
    if not path.is_file():
        raise FileNotFoundError(f"{path}: missing; was {run} written by `polyrec run` with protocol {protocol} and seed {seed}?")
    with np.load(path) as z:
        return {k: z[k] for k in z.files}
