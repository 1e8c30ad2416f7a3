"""Side environments: tools that cannot share the main environment (deepsparse, sparseml) each
live in their own virtual environment, built from a pinned requirements file and driven through
a worker script in a subprocess. This module holds what their set-up has in common: finding a
Python they support, creating the venv, and knowing whether it is complete with the current pins.

A venv counts as ready only when its marker file lists exactly the current pins, so a changed
requirements file (or an install that died half-way) makes `setup` rebuild it.
"""
from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from importlib import metadata
from pathlib import Path

READY = ".mmakit-ready"


def read_pins(requirements: Path) -> list[str]:
    """The requirement lines of `requirements` (comments and blank lines dropped)."""
    return [line.strip() for line in requirements.read_text().splitlines() if line.strip() and not line.startswith("#")]


def python_version(python: str) -> str | None:
    """'3.11' for a working interpreter at `python`, None where it cannot be run."""
    try:
        out = subprocess.run([python, "-c", "import sys; print('%d.%d' % sys.version_info[:2])"],
                             check=False, capture_output=True, text=True, timeout=30)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() if out.returncode == 0 else None


def find_interpreter(supported: Sequence[str], override_var: str, what: str) -> tuple[str | None, str]:
    """A Python whose version is in `supported` (newest first): $override_var, this one, or on PATH.

    Returns (path or None, a line saying what was found or why none fits); `what` names the
    tool in that line, e.g. "deepsparse 1.8".
    """
    candidates = [os.environ.get(override_var), sys.executable, *(shutil.which(f"python{v}") for v in supported)]
    seen = []
    for python in filter(None, candidates):
        version = python_version(python)
        seen.append(f"{python} ({version or 'unusable'})")
        if version in supported:
            return python, f"{python} (Python {version})"
    return None, (f"{what} needs Python {supported[-1]}-{supported[0]} and none was found; tried " + ", ".join(seen)
                  + f". Install one, or name it in {override_var}.")


def is_ready(venv: Path, pins: list[str]) -> bool:
    """The venv exists and was completed with exactly these pins."""
    marker = venv / READY
    return marker.exists() and (venv / "bin" / "python").exists() and marker.read_text().split() == pins


def create(venv: Path, python: str, installs: Sequence[Sequence[str]], pins: list[str], quiet: bool = False) -> Path:
    """Make a fresh venv at `venv` with `python`, run one `pip install` per entry of `installs`
    (in order: e.g. torch from its CPU wheel before anything can pull a CUDA build), then mark
    it ready for `pins`. Raises RuntimeError naming the step that failed."""
    (venv / READY).unlink(missing_ok=True)
    steps = [[python, "-m", "venv", "--clear", str(venv)],
             *([str(venv / "bin" / "python"), "-m", "pip", "install", *(["-q"] if quiet else []), *packages]
               for packages in installs)]
    for step in steps:
        done = subprocess.run(step, check=False, capture_output=quiet, text=True)
        if done.returncode != 0:
            detail = (done.stderr or "")[-2000:] if quiet else ""
            raise RuntimeError(f"`{' '.join(step)}` failed with exit code {done.returncode}. {detail}".strip())
    (venv / READY).write_text("\n".join(pins) + "\n")
    return venv


def installed_version(venv: Path, distribution: str) -> str | None:
    """The version of `distribution` installed in `venv` (from its package metadata), None where absent."""
    site = [str(p) for p in venv.glob("lib/python*/site-packages")]
    found = [d.version for d in metadata.distributions(name=distribution, path=site)]
    return found[0] if found else None


def worker_environment() -> dict[str, str]:
    """Environment for a worker run by a side venv's python: no analytics calls home (Neural Magic
    packages send them at import otherwise), and nothing of the main environment on its path."""
    env = os.environ | {"NM_DISABLE_ANALYTICS": "1", "PYTHONNOUSERSITE": "1"}
    env.pop("PYTHONPATH", None)
    return env
