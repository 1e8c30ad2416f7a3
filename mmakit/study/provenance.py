"""Where a result came from: the code (commit, dirty flag, a hash of the uncommitted diff),
the packages, the machine (CPU model and the instruction sets speed depends on), threads,
precision and device, captured when a run starts so a record never names a commit made
after it began."""
from __future__ import annotations

import hashlib
import os
import platform
import subprocess
from functools import lru_cache
from importlib import metadata

import torch

from mmakit.core.hardware import cpu_flags, cpu_model, resolve_device, resolve_precision
from mmakit.core.paths import REPO
from mmakit.runtime import deepsparse_env

PACKAGES = ("mmakit", "transformers", "accelerate", "datasets", "onnxruntime", "onnx", "seqeval", "numpy")
# the libraries whose versions move the numbers: training and export (checkpoints depend on these) ...
TRAINING_LIBRARIES = ("torch", "transformers", "accelerate")
# ... and the runtimes that score and time the deployed graphs (records depend on all of them)
NUMERIC_LIBRARIES = (*TRAINING_LIBRARIES, "onnxruntime", "deepsparse")
_AT_START: dict | None = None


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(["git", *args], cwd=REPO, capture_output=True, text=True, timeout=10)
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout if out.returncode == 0 else None


def code_state() -> dict:
    """Commit, whether tracked files outside outputs/ differ from it, and a hash of that
    difference. outputs/ is left out: a study run rewrites its own executed notebook and
    records there while it runs, which says nothing about the code that made them."""
    commit = _git("rev-parse", "--short", "HEAD")
    if commit is None:
        return {"git_commit": None, "dirty": None, "diff_sha": None}
    diff = _git("diff", "HEAD", "--", ".", ":(exclude)outputs") or ""
    return {"git_commit": commit.strip(), "dirty": bool(diff.strip()),
            "diff_sha": hashlib.sha256(diff.encode()).hexdigest()[:16] if diff.strip() else None}


def capture(precision: str | None = None, device: str | None = None) -> dict:
    """This process's environment now: code state, packages, machine, threads, precision, device."""
    env = {"python": platform.python_version(), "torch": torch.__version__}
    env |= {p: _version(p) for p in PACKAGES}
    env |= {"deepsparse": deepsparse_env.version(), "cpu": cpu_model(), "cpu_flags": cpu_flags(),
            "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(),
            "device": resolve_device(device or "auto"),
            "precision": resolve_precision(precision or "fp32", device or "auto")}
    return env | code_state()


@lru_cache(maxsize=1)
def library_versions() -> dict[str, str | None]:
    """The installed versions of NUMERIC_LIBRARIES (deepsparse: in its own venv, None without one)."""
    return {"torch": torch.__version__, **{p: _version(p) for p in NUMERIC_LIBRARIES[1:-1]},
            "deepsparse": deepsparse_env.version()}


def training_libraries() -> dict[str, str | None]:
    """The versions a cached checkpoint depends on: part of its cache key, so another stack retrains."""
    return {name: library_versions()[name] for name in TRAINING_LIBRARIES}


def library_mismatches(env: dict) -> dict[str, tuple[str, str]]:
    """{library: (the record's version, the installed one)} for each numeric library both name
    and that differ: a record made with another stack is stale (`run --list`) and flagged in 07."""
    now = library_versions()
    return {name: (env[name], now[name]) for name in NUMERIC_LIBRARIES
            if env.get(name) and now.get(name) and env[name] != now[name]}


def start_run(precision: str | None = None, device: str | None = None) -> dict:
    """Capture the environment at the start of a run; records written later in this process carry it."""
    global _AT_START
    _AT_START = capture(precision, device)
    return _AT_START


def run_environment() -> dict:
    """The environment captured by `start_run`, or (outside a run) the current one."""
    return _AT_START or capture()


def commit_outputs(message: str) -> bool:
    """Commit whatever changed under outputs/ (records, predictions, figures, executed
    notebooks; smoke outputs are git-ignored) so a long study keeps each finished run even if
    it is interrupted. True when a commit was made."""
    if _git("add", "-A", "--", "outputs") is None:
        raise RuntimeError("git add outputs failed: is this a git checkout?")
    staged = _git("diff", "--cached", "--name-only", "--", "outputs")
    if not (staged or "").strip():
        return False
    return _git("commit", "-q", "-m", message, "--", "outputs") is not None
