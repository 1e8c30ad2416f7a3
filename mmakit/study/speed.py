"""Speed measurements of the study's runs: the benchmark settings a run's parameters give,
the English sentences every benchmark feeds, and `bench_file` behind `python -m mmakit bench`."""
from __future__ import annotations

import os
import time
from collections.abc import Mapping
from dataclasses import asdict
from pathlib import Path

from transformers import AutoTokenizer, PreTrainedTokenizerBase

from mmakit.core.data import DATA_DIR_ENV, load_split
from mmakit.core.paths import REPO
from mmakit.runtime.bench import BenchConfig, bench_inputs, run_benchmark
from mmakit.study.params import Params
from mmakit.study.records import make_record, now, write_record


def bench_config(P: Params) -> BenchConfig:
    """The benchmark settings of a run: runtimes, batches, seq_len and the bench_* parameters."""
    return BenchConfig(runtimes=tuple(P.runtimes), batches=tuple(P.batches), seq_len=int(P.seq_len),
                       seconds=float(P.bench_seconds), rounds=int(P.bench_rounds), threads=P.get("bench_threads"))


def english_sentences(n: int, data_dir: str | Path | None = None) -> list[list[str]]:
    """The first `n` English dev sentences: the text every benchmark feeds."""
    return load_split("en", "dev", data_dir, max_samples=n)["tokens"]


def benchmark(models: Mapping[str, str | Path], tokenizer: PreTrainedTokenizerBase, P: Params) -> list[dict]:
    """`run_benchmark` with the run's parameters on English dev sentences tokenized by `tokenizer`."""
    config = bench_config(P)
    inputs = bench_inputs(tokenizer, english_sentences(max(config.batches), P.get("data_dir")), config.seq_len)
    return run_benchmark(models, inputs, config)


def bench_file(path: str | Path, config: BenchConfig, tokenizer: str | None = None,
               results_dir: str | Path | None = None) -> tuple[list[dict], Path]:
    """Benchmark a user's ONNX file and write a record under <results>/bench/<file stem>.json.

    The inputs are English dev sentences (MMAKIT_DATA_DIR, else the project's fixtures)
    tokenized by `tokenizer` (a folder or hub id; default: the ONNX file's own folder).
    """
    started, t0 = now(), time.perf_counter()
    path = Path(path)
    tok = AutoTokenizer.from_pretrained(tokenizer or str(path.parent))
    data_dir = os.environ.get(DATA_DIR_ENV) or REPO / "tests" / "fixtures" / "data"
    inputs = bench_inputs(tok, english_sentences(max(config.batches), data_dir), config.seq_len)
    rows = run_benchmark({path.stem: path}, inputs, config)
    record = make_record(
        notebook="bench", run=path.stem, profile="cli", model=str(path.resolve()), technique={"method": "bench"},
        params=asdict(config) | {"tokenizer": tokenizer or str(path.parent)}, f1={}, mls={}, throughput=rows,
        sizes={"onnx_bytes": path.stat().st_size}, started=started, seconds=time.perf_counter() - t0,
    )
    return rows, write_record(record, results_dir)
