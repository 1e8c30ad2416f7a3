"""Several processes: `python -m mmakit fine-tune` under `accelerate launch` with 2 CPU processes
(gloo), the way a user with several GPUs or machines scales out.

accelerate 1.15's `launch --cpu --num_processes 2` starts ONE process (its CPU launcher only
fans out through mpirun and a hostfile); `--multi_gpu` goes through torchrun and, on a CPU-only
machine with the run's device on the CPU, gives a 2-process gloo group. Each process uses one
torch thread.
"""
from __future__ import annotations

import math
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from datasets import Dataset

from mmakit.core.paths import REPO
from mmakit.core.train import TrainConfig, _batches_for_epoch, total_steps

PROCESSES = 2
EPOCHS = 2
LAUNCH_TIMEOUT_S = 240  # ~15 s on 2 busy cores; a hang (ranks out of step) ends here, not at gloo's 30 min


def _accelerate_cli() -> str | None:
    return shutil.which("accelerate", path=str(Path(sys.executable).parent)) or shutil.which("accelerate")


ACCELERATE = _accelerate_cli()
needs_launcher = pytest.mark.skipif(ACCELERATE is None, reason="the `accelerate` command line is not installed "
                                    "next to this Python nor on PATH (pip install accelerate)")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run_group(cmd: list[str], env: dict, timeout: float) -> subprocess.CompletedProcess:
    """Run `cmd` in its own process group; on timeout end that group (launcher and workers)."""
    proc = subprocess.Popen(cmd, env=env, cwd=REPO, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        pytest.fail(f"2-process fine-tune still running after {timeout:.0f}s (ranks out of step?)\n"
                    f"stdout:\n{out[-3000:]}\nstderr:\n{err[-3000:]}")
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


@pytest.fixture(scope="module")
def two_process_run(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One `accelerate launch` of the smoke fine-tune with 2 processes, and what 1 process would do.

    The training set is cut to a multiple of 2 batches so both processes get the same number
    of batches (see test_every_process_gets_the_same_number_of_batches for the odd case).
    """
    from mmakit.study import common, params

    base = tmp_path_factory.mktemp("distributed")
    P = params.resolve({"profile": "smoke"}, "tests")
    n = len(common.english_train(P)) // (PROCESSES * P.batch_size) * (PROCESSES * P.batch_size)
    assert n > 0, "too few training sentences for one batch per process"
    overrides = {"epochs": EPOCHS, "max_train_samples": n, "threads": 1, "device": "cpu", "precision": "fp32"}
    P = params.resolve({"profile": "smoke", **overrides}, "tests")
    cmd = [ACCELERATE, "launch", "--multi_gpu", "--num_processes", str(PROCESSES), "--num_machines", "1",
           "--mixed_precision", "no", "--dynamo_backend", "no", "--num_cpu_threads_per_process", "1",
           "--main_process_port", str(_free_port()),
           "-m", "mmakit", "fine-tune", "--profile", "smoke"]
    for name, value in overrides.items():
        cmd += ["-p", name, str(value)]
    env = os.environ | {"MMAKIT_CACHE_DIR": str(base / "cache"), "MMAKIT_RESULTS_DIR": str(base / "results"),
                        "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1", "TOKENIZERS_PARALLELISM": "false"}
    result = _run_group(cmd, env, LAUNCH_TIMEOUT_S)
    return {"result": result, "cache": base / "cache", "n": n, "cfg": common.train_config(P)}


def _checkpoint(run: dict) -> Path:
    result = run["result"]
    assert result.returncode == 0, f"exit {result.returncode}\nstdout:\n{result.stdout[-3000:]}\nstderr:\n{result.stderr[-3000:]}"
    printed = re.findall(r"^checkpoint: (.+)$", result.stdout, re.MULTILINE)
    assert len(printed) == 1, f"the main process alone prints the checkpoint once:\n{result.stdout}"
    folder = Path(printed[0])
    assert folder.parent == run["cache"] / "checkpoints"
    assert (folder / "mmakit.json").is_file()
    return folder


@needs_launcher
def test_two_processes_share_the_steps(two_process_run):
    from mmakit.study.cache import load_meta

    folder = _checkpoint(two_process_run)
    meta = load_meta(folder)
    n, cfg = two_process_run["n"], two_process_run["cfg"]
    one = total_steps(n, cfg, 1)
    assert meta["processes"] == PROCESSES
    assert meta["steps"] == total_steps(n, cfg, PROCESSES) == math.ceil(one / PROCESSES)
    assert (meta["device"], meta["precision"]) == ("cpu", "fp32")
    assert f"processes: {PROCESSES}" in two_process_run["result"].stdout
    assert f"steps: {meta['steps']}" in two_process_run["result"].stdout
    assert not list(folder.parent.glob("*.partial")), "the resumable state is removed once the checkpoint is saved"


@needs_launcher
def test_two_process_checkpoint_loads(two_process_run):
    import torch
    from transformers import AutoModelForTokenClassification, AutoTokenizer

    from mmakit.core.data import LABELS
    from mmakit.study.cache import load_meta

    folder = _checkpoint(two_process_run)
    meta = load_meta(folder)
    assert meta["key"] == folder.name and meta["train"]["epochs"] == EPOCHS
    assert math.isfinite(meta["final_loss"]) and meta["train_seconds"] > 0
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    tokenizer = AutoTokenizer.from_pretrained(folder)
    assert model.config.num_labels == len(LABELS)
    batch = tokenizer([["EU", "rejects", "German", "call"]], is_split_into_words=True, return_tensors="pt")
    with torch.no_grad():
        logits = model(**batch).logits
    assert logits.shape[-1] == len(LABELS) and torch.isfinite(logits).all()


def test_every_process_gets_the_same_number_of_batches():
    ds = Dataset.from_dict({"input_ids": [[1] * (5 + i % 7) for i in range(300)]})  # 19 batches of 16
    cfg = TrainConfig(batch_size=16)
    steps_per_epoch = math.ceil(math.ceil(300 / 16) / PROCESSES)
    shares = [_batches_for_epoch(ds, cfg, 0, rank, PROCESSES) for rank in range(PROCESSES)]
    assert [len(s) for s in shares] == [steps_per_epoch] * PROCESSES
