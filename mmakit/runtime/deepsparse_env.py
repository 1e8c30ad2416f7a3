"""deepsparse as a separate component: its own virtual environment and a worker process.

deepsparse 1.8 (the last release with wheels) needs Python < 3.12, numpy < 2 and onnx < 1.15,
none of which the main environment has, and it aborts the whole process on some quantized
graphs. So it is installed in its own venv (`python -m mmakit setup-deepsparse`) and driven
through `deepsparse_worker.py` in a subprocess: a crash there costs one runtime's numbers
for one model, never the caller.
"""
from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path

import numpy as np

from mmakit.core.paths import REPO
from mmakit.runtime import side_env

VENV_ENV = "MMAKIT_DEEPSPARSE_VENV"
PYTHON_ENV = "MMAKIT_DEEPSPARSE_PYTHON"
REQUIREMENTS = Path(__file__).with_name("deepsparse_requirements.txt")
WORKER = Path(__file__).with_name("deepsparse_worker.py")
SUPPORTED_PYTHONS = ("3.11", "3.10", "3.9", "3.8")


class WorkerFailed(RuntimeError):
    """The worker could not compile or run the graph, or died; the message says why."""


def venv_dir() -> Path:
    """Where the deepsparse venv lives: MMAKIT_DEEPSPARSE_VENV or .venv-deepsparse in the repository."""
    return Path(os.environ.get(VENV_ENV) or REPO / ".venv-deepsparse")


def venv_python() -> Path:
    return venv_dir() / "bin" / "python"


def pins() -> list[str]:
    """The pinned requirements of the deepsparse environment."""
    return side_env.read_pins(REQUIREMENTS)


def find_interpreter() -> tuple[str | None, str]:
    """A Python that deepsparse 1.8 supports (3.8-3.11): MMAKIT_DEEPSPARSE_PYTHON, this one, or on PATH.

    Returns (path or None, a line saying what was found or why none fits).
    """
    return side_env.find_interpreter(SUPPORTED_PYTHONS, PYTHON_ENV, "deepsparse 1.8")


def _ready() -> bool:
    """The venv exists and was completed with the current pins."""
    return side_env.is_ready(venv_dir(), pins())


def status() -> tuple[bool, str]:
    """(usable, why): whether the deepsparse venv is set up, and if not, what to do."""
    if _ready():
        return True, f"deepsparse environment at {venv_dir()}"
    python, found = find_interpreter()
    if python is None:
        return False, found
    return False, f"no deepsparse environment at {venv_dir()}: run `python -m mmakit setup-deepsparse`"


def setup(quiet: bool = False) -> Path:
    """Create (or repair) the deepsparse venv with the pinned packages; idempotent.

    Raises RuntimeError saying why when no suitable interpreter exists or pip fails.
    """
    if _ready():
        return venv_dir()
    python, found = find_interpreter()
    if python is None:
        raise RuntimeError(found)
    return side_env.create(venv_dir(), python, [pins()], pins(), quiet)


def version() -> str | None:
    """The deepsparse version installed in its venv (read from the package metadata), None where there is none."""
    return side_env.installed_version(venv_dir(), "deepsparse") if _ready() else None


def _reason(returncode: int, stderr: str) -> str:
    """A one-line account of a dead worker: the signal or exit code and the last telling stderr lines."""
    if returncode < 0:
        how = f"killed by {signal.Signals(-returncode).name}"
    else:
        how = f"exit code {returncode}"
    lines = [ln.strip() for ln in stderr.splitlines()
             if ln.strip() and not ln.startswith((" ", "\t", "[", "Please email")) and "#" not in ln[:5]]
    telling = [ln for ln in lines if re.search(r"assert|exception|error|abort|terminate", ln, re.IGNORECASE)]
    return f"deepsparse worker {how}: " + " | ".join((telling or lines)[-3:])[:400]


class DeepSparseWorker:
    """One graph compiled in deepsparse for the given batch sizes, timed on request.

    Start it with the inputs (rows of token ids, seq_len wide); `time(batch, seconds)`
    returns per-call seconds. Batches of any shape (real text, padded by length) go through
    `logits`, or `load` and `time_pass`; those compile an engine per shape on demand, so such a
    worker may be started with no batches. Any failure raises WorkerFailed and leaves the
    process dead.
    """

    def __init__(self, model: str | Path, inputs: Mapping[str, np.ndarray], batches: Sequence[int], seq_len: int,
                 threads: int | None = None, timeout: float = 900):
        self.timeout = timeout
        self.stderr = tempfile.TemporaryFile("w+")
        self.folder = tempfile.mkdtemp(prefix="mmakit-deepsparse-")  # ours to remove: a crashed worker cannot
        self.process = subprocess.Popen([str(venv_python()), str(WORKER)], stdin=subprocess.PIPE,
                                        stdout=subprocess.PIPE, stderr=self.stderr, text=True,
                                        env=side_env.worker_environment())
        setup = {"model": str(Path(model).resolve()), "batches": list(batches), "seq_len": seq_len, "threads": threads,
                 "folder": self.folder, "inputs": {k: np.asarray(v).tolist() for k, v in inputs.items()}}
        try:
            answer = self._ask(setup)
        except WorkerFailed:
            self.close()
            raise
        self.version = answer.get("deepsparse")
        self.compile_seconds = answer.get("compile_seconds", {})

    def _ask(self, request: dict) -> dict:
        expired = threading.Event()

        def kill() -> None:
            expired.set()
            self.process.kill()

        timer = threading.Timer(self.timeout, kill)
        timer.start()
        try:
            self.process.stdin.write(json.dumps(request) + "\n")
            self.process.stdin.flush()
            line = self.process.stdout.readline()
        except (BrokenPipeError, OSError):
            line = ""
        finally:
            timer.cancel()
        if not line:
            code = self.process.wait()
            if expired.is_set():
                raise WorkerFailed(f"deepsparse worker gave no answer in {self.timeout:.0f} s and was stopped")
            self.stderr.seek(0)
            raise WorkerFailed(_reason(code, self.stderr.read()))
        answer = json.loads(line)
        if not answer.get("ok"):
            self.close()
            raise WorkerFailed(f"deepsparse: {answer.get('error')}")
        return answer

    def time(self, batch: int, seconds: float, warmup: int = 2) -> list[float]:
        """Seconds per call of `warmup` untimed then repeated timed calls for at least `seconds`."""
        return self._ask({"batch": batch, "seconds": seconds, "warmup": warmup})["times"]

    def logits(self, feed: Mapping[str, np.ndarray]) -> np.ndarray:
        """The graph's logits for one batch of inputs (an engine per new shape is compiled first)."""
        answer = self._ask({"logits": {k: np.asarray(v).tolist() for k, v in feed.items()}})
        return np.asarray(answer["logits"], dtype=np.float32)

    def load(self, name: str, feeds: Sequence[Mapping[str, np.ndarray]]) -> dict[str, float]:
        """Keep a pass (batches run one after another) in the worker under `name`, each new
        shape compiled and run once; returns the compile seconds per shape."""
        batches = [{k: np.asarray(v).tolist() for k, v in feed.items()} for feed in feeds]
        return self._ask({"load": name, "batches": batches})["compile_seconds"]

    def time_pass(self, name: str, seconds: float, warmup: int = 0, min_calls: int = 1) -> list[float]:
        """Seconds per pass over the batches loaded as `name`: `warmup` untimed passes, then
        passes until `seconds` have passed (at least `min_calls`)."""
        return self._ask({"pass": name, "seconds": seconds, "warmup": warmup, "min_calls": min_calls})["times"]

    def close(self) -> None:
        """End the worker (it exits at end of input) and remove its files."""
        if self.process.poll() is None:
            self.process.stdin.close()
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self.stderr.close()
        shutil.rmtree(self.folder, ignore_errors=True)

    def __enter__(self) -> DeepSparseWorker:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
