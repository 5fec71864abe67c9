"""Files written whole or not at all."""

from __future__ import annotations

import os
import tempfile
from collections.abc import Callable
from pathlib import Path


def replace_atomically(path: Path, write: Callable[[Path], None]) -> None:
    """Call ``write`` on a temporary file beside ``path``, then rename it over ``path``.

    The rename is atomic, so a killed run never leaves a half-written file. The temporary
    file is unique to this call: two runs that write ``path`` at once (two processes, or two
    threads) must not share one, where the second rename would find it gone. The later
    rename wins."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f"{path.stem}.", suffix=f".tmp{path.suffix}")
    os.close(fd)
    tmp = Path(name)
    try:
        write(tmp)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
