"""Where the study reads and writes: the repository, the cache of checkpoints and tokenized
data, and atomic file writes (a reader never sees a half-written file)."""
from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "MMAKIT_CACHE_DIR"


def cache_root(path: str | Path | None = None) -> Path:
    """The cache directory: the argument, MMAKIT_CACHE_DIR, or ~/.cache/mmakit."""
    chosen = path or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mmakit"
    return Path(chosen).expanduser()


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write JSON via a temp file in the same directory and a rename: never a half-written file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(obj, f, indent=2, default=str)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path
