"""SparseML as a separate component: its own virtual environment and a one-shot worker process.

SparseML 1.8.0 (end of life) holds the reference implementation of oBERT, against which the
study cross-checks its own OBS pruning. It needs Python < 3.12, numpy < 2, onnx < 1.15 and
transformers < 4.41, none of which the main environment has, so it is installed in its own
venv (`python -m mmakit setup-sparseml`) and driven through `sparseml_worker.py`: one request
(a JSON object on stdin, tensors in files it names) and one JSON answer on stdout.
"""
from __future__ import annotations

import json
import os
import subprocess
import tempfile
from pathlib import Path

from mmakit.core.paths import REPO
from mmakit.runtime import side_env

VENV_ENV = "MMAKIT_SPARSEML_VENV"
PYTHON_ENV = "MMAKIT_SPARSEML_PYTHON"
REQUIREMENTS = Path(__file__).with_name("sparseml_requirements.txt")
WORKER = Path(__file__).with_name("sparseml_worker.py")
SUPPORTED_PYTHONS = ("3.11", "3.10", "3.9", "3.8")
FIRST = "torch=="  # installed alone, first: the CPU wheel, before anything can pull a CUDA build


class WorkerFailed(RuntimeError):
    """The sparseml worker died or reported an error; the message says why."""


def venv_dir() -> Path:
    """Where the sparseml venv lives: MMAKIT_SPARSEML_VENV or .venv-sparseml in the repository."""
    return Path(os.environ.get(VENV_ENV) or REPO / ".venv-sparseml")


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def pins() -> list[str]:
    """The pinned requirements of the sparseml environment."""
    return side_env.read_pins(REQUIREMENTS)


def install_order() -> list[list[str]]:
    """The pins as pip installs in order: torch alone first, then everything else."""
    first = [p for p in pins() if p.startswith(FIRST)]
    return [first, [p for p in pins() if p not in first]] if first else [pins()]


def available() -> bool:
    """Whether the sparseml venv is set up with the current pins."""
    return side_env.is_ready(venv_dir(), pins())


def status() -> tuple[bool, str]:
    """(usable, why): whether the sparseml venv is set up, and if not, what to do."""
    if available():
        return True, f"sparseml environment at {venv_dir()}"
    python, found = side_env.find_interpreter(SUPPORTED_PYTHONS, PYTHON_ENV, "sparseml 1.8")
    if python is None:
        return False, found
    return False, f"no sparseml environment at {venv_dir()}: run `python -m mmakit setup-sparseml`"


def setup(quiet: bool = False) -> Path:
    """Create (or repair) the sparseml venv with the pinned packages; idempotent.

    Raises RuntimeError saying why when no suitable interpreter exists or pip fails.
    """
    if available():
        return venv_dir()
    python, found = side_env.find_interpreter(SUPPORTED_PYTHONS, PYTHON_ENV, "sparseml 1.8")
    if python is None:
        raise RuntimeError(found)
    return side_env.create(venv_dir(), python, install_order(), pins(), quiet)


def version() -> str | None:
    """The sparseml version installed in its venv, None where there is none."""
    return side_env.installed_version(venv_dir(), "sparseml") if available() else None


def run_worker(request: dict, timeout: float = 600) -> dict:
    """Send `request` to a fresh sparseml worker and return its answer (a dict with "ok": true).
    Paths in `request` must be absolute: the worker runs in a scratch directory.

    Raises WorkerFailed when the venv is missing, the worker dies or times out, or it answers
    with an error; the message carries the worker's error or the end of its stderr.
    """
    usable, why = status()
    if not usable:
        raise WorkerFailed(why)
    env = side_env.worker_environment() | {"OMP_NUM_THREADS": os.environ.get("OMP_NUM_THREADS", "1")}
    # SparseML writes a sparse_logs/ folder into its working directory: give it a scratch one
    with tempfile.TemporaryDirectory(prefix="mmakit-sparseml-cwd-") as scratch:
        try:
            done = subprocess.run([str(venv_python()), str(WORKER)], input=json.dumps(request), capture_output=True,
                                  text=True, env=env, timeout=timeout, check=False, cwd=scratch)
        except subprocess.TimeoutExpired as exc:
            raise WorkerFailed(f"sparseml worker gave no answer in {timeout:.0f} s and was stopped") from exc
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        tail = " | ".join(done.stderr.strip().splitlines()[-3:])[:600]
        raise WorkerFailed(f"sparseml worker exited with code {done.returncode}: {tail}")
    answer = json.loads(lines[-1])
    if not answer.get("ok"):
        raise WorkerFailed(f"sparseml: {answer.get('error')}")
    return answer
