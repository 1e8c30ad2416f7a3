"""Where the study reads and writes: the repository, the cache of checkpoints and tokenized
data, and atomic writes (a reader never sees a half-written file or directory)."""
from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[2]
CACHE_ENV = "MMAKIT_CACHE_DIR"


def cache_root(path: str | Path | None = None) -> Path:
    """The cache directory: the argument, MMAKIT_CACHE_DIR, or ~/.cache/mmakit."""
    chosen = path or os.environ.get(CACHE_ENV) or Path.home() / ".cache" / "mmakit"
    return Path(chosen).expanduser()


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path)
    else:
        path.unlink(missing_ok=True)


@contextlib.contextmanager
def atomic_path(final: str | Path) -> Iterator[Path]:
    """A temporary sibling of `final` (`<name>.tmp`) to write a file or a directory at.

    When the block succeeds the temporary is moved onto `final` with os.replace (a directory
    already at `final` is removed first); when it fails the temporary is removed. `final` is
    thus never half-written. A temporary left by a crashed writer is cleared before the block;
    the parent folder is created.
    """
    final = Path(final)
    tmp = final.with_name(final.name + ".tmp")
    final.parent.mkdir(parents=True, exist_ok=True)
    _remove(tmp)
    try:
        yield tmp
        if final.is_dir() and not final.is_symlink():
            shutil.rmtree(final)
        os.replace(tmp, final)
    except BaseException:
        with contextlib.suppress(OSError):  # the error that matters is the writer's
            _remove(tmp)
        raise


def write_json_atomic(obj: Any, path: str | Path) -> Path:
    """Write JSON through `atomic_path`: never a half-written file."""
    path = Path(path)
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2, default=str)
    return path


def file_sha256(path: str | Path) -> str:
    """The sha256 of a file's bytes, read in blocks so large weights never sit in memory whole."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 24), b""):
            digest.update(block)
    return digest.hexdigest()
