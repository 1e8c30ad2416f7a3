"""Result records: one JSON file per run, the contract between notebooks and the report.

Every number the report shows is read back from these files, each of which names the
parameters and the environment of the run that produced it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
import platform
import subprocess
import tempfile
from importlib import metadata
from pathlib import Path
from typing import Any

import pandas as pd
import torch

RESULTS_ENV = "MMAKIT_RESULTS_DIR"
REPO = Path(__file__).resolve().parent.parent
REQUIRED = ("notebook", "run", "profile", "model", "technique", "params", "f1", "mls", "env", "started", "seconds")


def results_root(path: str | Path | None = None) -> Path:
    """Where records go: the argument, MMAKIT_RESULTS_DIR, or outputs/results of the repository."""
    return Path(path or os.environ.get(RESULTS_ENV) or REPO / "outputs" / "results")


def _version(package: str) -> str | None:
    try:
        return metadata.version(package)
    except metadata.PackageNotFoundError:
        return None


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def git_commit() -> str | None:
    try:
        out = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, timeout=5)
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], cwd=REPO,
                               capture_output=True, text=True, timeout=5)
    except (OSError, subprocess.SubprocessError):
        return None
    if out.returncode != 0:
        return None
    return out.stdout.strip() + ("-dirty" if dirty.stdout.strip() else "")


def environment(extra: dict | None = None) -> dict:
    """Package versions, CPU, cores, torch threads and git commit of this process."""
    from . import deepsparse_env  # imports this module

    env = {
        "mmakit": _version("mmakit"), "python": platform.python_version(), "torch": torch.__version__,
        "transformers": _version("transformers"), "onnxruntime": _version("onnxruntime"),
        "onnx": _version("onnx"), "seqeval": _version("seqeval"), "cpu": cpu_model(),
        "cores": os.cpu_count(), "torch_threads": torch.get_num_threads(), "git_commit": git_commit(),
        "deepsparse": deepsparse_env.version(),  # in its own venv; None where it is not set up
    }
    return env | (extra or {})


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def make_record(*, notebook: str, run: str, profile: str, model: str, technique: dict, params: dict,
                f1: dict, mls: dict, started: str, seconds: float, **extra: Any) -> dict:
    """A record with the contract's required fields plus any extra ones (throughput, curve, sizes...)."""
    record = {
        "notebook": notebook, "run": run, "profile": profile, "model": model, "technique": technique,
        "params": params, "f1": f1, "mls": mls, "throughput": [], "curve": [], "sizes": {},
        "env": environment(), "started": started, "seconds": round(seconds, 2),
    }
    if profile == "smoke":
        record["note"] = "smoke profile: a tiny random model on a few hundred sentences; the numbers mean nothing"
    return record | extra


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


def write_record(record: dict, root: str | Path | None = None) -> Path:
    """Store `record` under <root>/<notebook>/<run>.json after checking the required fields."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"result record lacks {', '.join(missing)}")
    return write_json_atomic(record, results_root(root) / record["notebook"] / f"{record['run']}.json")


def read_records(root: str | Path | None = None, notebook: str | None = None) -> list[dict]:
    """All records under `root` (optionally one notebook's), sorted by notebook and run."""
    base = results_root(root)
    pattern = f"{notebook}/*.json" if notebook else "*/*.json"
    return [json.loads(p.read_text()) for p in sorted(base.glob(pattern))]


def load_records(root: str | Path | None = None, notebook: str | None = None) -> pd.DataFrame:
    """Records as a DataFrame: one row per run, F1 flattened to columns like `f1_es_dev`."""
    rows = []
    for r in read_records(root, notebook):
        row = {k: r[k] for k in ("notebook", "run", "profile", "model", "started", "seconds")}
        row["method"] = r["technique"].get("method")
        row |= {f"f1_{lang}_{split}": v for lang, splits in r["f1"].items() for split, v in splits.items()}
        row |= {f"mls_{split}": v for split, v in r["mls"].items()}
        rows.append(row)
    return pd.DataFrame(rows)
