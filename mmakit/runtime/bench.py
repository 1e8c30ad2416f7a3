"""CPU throughput of ONNX graphs in onnxruntime and deepsparse, the way the paper reports speed.

Items/s at fixed batch sizes and sequence length, on real English sentences padded or cut
to that length. This 2-core machine is shared and drifts between fast and slow states, so
absolute numbers move from run to run: every model x runtime is timed in interleaved
rounds (A B A B ...) and compared through ratios taken within one run (`speedups`).
A runtime that fails for a model (deepsparse aborts on some quantized graphs) yields a row
with status "failed" and the reason; it never costs the other rows.
"""
from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from tqdm.auto import tqdm
from transformers import PreTrainedTokenizerBase

from mmakit.core.alignment import MODEL_INPUTS
from mmakit.runtime import deepsparse_env
from mmakit.runtime.export import graph_inputs, session
from mmakit.runtime.timing import timed_calls

RUNTIMES = ("onnxruntime", "deepsparse")
REFERENCE_RUNTIME = "onnxruntime"
BUSY_LOAD = 0.5  # load average per core, before we start, above which timings are called noisy


@dataclass(frozen=True)
class BenchConfig:
    """How to time: runtimes, batch sizes, sequence length, timed seconds per model x runtime x
    batch (split over `rounds` interleaved rounds), untimed calls before each timed block, and
    intra-op threads (None: all cores)."""

    runtimes: tuple[str, ...] = RUNTIMES
    batches: tuple[int, ...] = (1, 4, 8)
    seq_len: int = 128
    seconds: float = 6.0
    rounds: int = 3
    warmup: int = 2
    threads: int | None = None

    @property
    def n_threads(self) -> int:
        return int(self.threads or os.cpu_count() or 1)


def bench_inputs(tokenizer: PreTrainedTokenizerBase, sentences: Sequence[Sequence[str]], seq_len: int) -> dict[str, np.ndarray]:
    """Token ids of pre-split sentences, padded or truncated to exactly `seq_len` (int64 rows)."""
    enc = tokenizer([list(s) for s in sentences], is_split_into_words=True, padding="max_length",
                    truncation=True, max_length=seq_len, return_tensors="np")
    return {k: np.asarray(enc[k], dtype=np.int64) for k in MODEL_INPUTS if k in enc}


def _rows_for(inputs: Mapping[str, np.ndarray], batch: int) -> dict[str, np.ndarray]:
    """`batch` rows cycled from the input pool."""
    index = [i % len(next(iter(inputs.values()))) for i in range(batch)]
    return {k: np.ascontiguousarray(v[index]) for k, v in inputs.items()}


class OrtRunner:
    """One graph in an onnxruntime session, fed the graph's own inputs (zeros for one not tokenized)."""

    def __init__(self, path: str | Path, inputs: Mapping[str, np.ndarray], config: BenchConfig):
        self.session = session(path, config.n_threads)
        names = graph_inputs(self.session)
        width = config.seq_len
        self.feeds = {}
        for batch in config.batches:
            rows = _rows_for(inputs, batch)
            self.feeds[batch] = {n: rows.get(n, np.zeros((batch, width), dtype=np.int64)) for n in names}

    def time(self, batch: int, seconds: float, warmup: int) -> list[float]:
        feed = self.feeds[batch]
        return timed_calls(lambda: self.session.run(None, feed), seconds, warmup)

    def close(self) -> None:
        self.session = None


def _start(runtime: str, path: Path, inputs: Mapping[str, np.ndarray], config: BenchConfig):
    if runtime == "onnxruntime":
        return OrtRunner(path, inputs, config)
    return deepsparse_env.DeepSparseWorker(path, inputs, config.batches, config.seq_len, config.n_threads)


@dataclass
class Slot:
    """What is known about one model x runtime while the rounds go on: its runner (anything with
    `time(key, seconds, warmup) -> seconds per call` and `close()`), or why it has none, and
    the seconds per call measured so far for each key (a batch size, or what the caller times)."""

    runner: object | None = None
    error: str | None = None
    status: str = "ok"
    times: dict = field(default_factory=dict)


def _load_per_core() -> float:
    return os.getloadavg()[0] / (os.cpu_count() or 1)


def warn_if_busy() -> None:
    """Warn when the machine is already loaded before a benchmark starts."""
    if _load_per_core() > BUSY_LOAD:
        warnings.warn(f"load average {os.getloadavg()[0]:.1f} on {os.cpu_count()} cores before the benchmark: "
                      "absolute items/s will be low and noisy, and deepsparse on all cores collapses when other "
                      "processes compete for them (seen here: 4x slower than at 1 thread); compare ratios within "
                      "this run, or rerun on an idle machine", stacklevel=3)


def start_slots(models: Sequence[str], runtimes: Sequence[str],
                start: Callable[[str, str], object]) -> dict[tuple[str, str], Slot]:
    """A slot per model x runtime with the runner `start(model, runtime)` gives; deepsparse without
    its environment is "unavailable", a runner that fails to start "failed", both with the reason."""
    slots: dict[tuple[str, str], Slot] = {}
    usable, why = deepsparse_env.status()
    for model in models:
        for runtime in runtimes:
            if runtime == "deepsparse" and not usable:
                slots[model, runtime] = Slot(status="unavailable", error=why)
                continue
            try:
                slots[model, runtime] = Slot(runner=start(model, runtime))
            except Exception as exc:  # one graph a runtime cannot load must not stop the others
                slots[model, runtime] = Slot(status="failed", error=f"{type(exc).__name__}: {exc}"[:500])
    return slots


def interleave(slots: Mapping[tuple[str, str], Slot], keys: Sequence, seconds: float, rounds: int, warmup: int) -> None:
    """Time every slot at every key in `rounds` interleaved rounds (A B C D, then D C B A, ...),
    `seconds` per slot x key x round, into `slot.times[key]`; a runner that fails is closed and
    its slot marked "failed" with the reason, the others go on; every runner is closed at the end."""
    per_block = seconds / rounds
    progress = tqdm(total=rounds * len(keys) * len(slots), desc="benchmark", unit="block", leave=False)
    try:
        for round_ in range(rounds):
            order = list(slots.values()) if round_ % 2 == 0 else list(slots.values())[::-1]
            for key in keys:
                for slot in order:
                    progress.update()
                    if slot.runner is None:
                        continue
                    try:
                        slot.times.setdefault(key, []).extend(slot.runner.time(key, per_block, warmup))
                    except Exception as exc:  # e.g. deepsparse aborting mid-run: keep what the others measured
                        slot.status, slot.error = "failed", f"{type(exc).__name__}: {exc}"[:500]
                        slot.runner.close()
                        slot.runner = None
    finally:
        progress.close()
        for slot in slots.values():
            if slot.runner is not None:
                slot.runner.close()


def _row(model: str, runtime: str, batch: int, config: BenchConfig, slot: Slot) -> dict:
    times = slot.times.get(batch) or []
    row = {"model": model, "runtime": runtime, "batch": batch, "seq_len": config.seq_len, "items_per_s": None,
           "spread": None, "threads": config.n_threads, "calls": len(times), "status": slot.status, "error": slot.error}
    if slot.status == "ok" and times:
        rates = batch / np.asarray(times)
        q25, median, q75 = np.percentile(rates, [25, 50, 75])
        row |= {"items_per_s": round(float(median), 2), "spread": round(float((q75 - q25) / median), 3)}
    return row


def run_benchmark(models: Mapping[str, str | Path], inputs: Mapping[str, np.ndarray], config: BenchConfig) -> list[dict]:
    """Rows {"model", "runtime", "batch", "seq_len", "items_per_s", "spread", "threads", "calls",
    "status", "error"} for every model x runtime x batch.

    items_per_s is the median over calls of batch / seconds per call; spread is the
    interquartile range of that rate over its median. Rounds interleave every model and
    runtime at each batch size (A B C D, then D C B A, ...), so slow phases of the machine
    and the position in a round hit all of them alike.
    """
    warn_if_busy()
    slots = start_slots(list(models), config.runtimes,
                        lambda model, runtime: _start(runtime, Path(models[model]), inputs, config))
    interleave(slots, config.batches, config.seconds, config.rounds, config.warmup)
    return [_row(model, runtime, batch, config, slots[model, runtime])
            for model in models for runtime in config.runtimes for batch in config.batches]


def speedups(rows: Sequence[Mapping], reference_model: str) -> list[dict]:
    """The rows with "speedup": items/s over the reference model's onnxruntime items/s at the
    same batch size (None where either is missing), as the paper's speedup columns."""
    reference = {r["batch"]: r["items_per_s"] for r in rows
                 if r["model"] == reference_model and r["runtime"] == REFERENCE_RUNTIME and r["items_per_s"]}
    out = []
    for r in rows:
        base = reference.get(r["batch"])
        out.append(dict(r) | {"speedup": round(r["items_per_s"] / base, 2) if base and r["items_per_s"] else None})
    return out
