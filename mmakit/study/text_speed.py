"""`python -m mmakit bench-text RUN [RUN ...]`: real-text throughput of study models.

Each run's graph (study.rebuild) and the dense fp32 baseline it is compared with (the first
run's model at its `baseline_seed`) tag the en, es and nl test sets at their real lengths,
batched by length as `tag` batches them, in both runtimes, timed in one interleaved run
(runtime.text_bench). The record goes to <results>/bench/<name>.json: rows with sentences/s,
words/s and the speedup over the dense model in onnxruntime, and for each model the record it
comes from with its quality and fixed-length speed, so a report can set them side by side.
"""
from __future__ import annotations

import json
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path

from transformers import AutoTokenizer

from mmakit.core.alignment import tokenizer_fingerprint
from mmakit.core.data import LANGUAGES, load_split
from mmakit.core.encoding import encode
from mmakit.runtime.export import graph_inputs
from mmakit.runtime.model_folder import GRAPH
from mmakit.runtime.text_bench import TextBenchConfig, run_text_benchmark, speedups, text_pass
from mmakit.study import common, rebuild
from mmakit.study.data_setting import ENGLISH_ONLY, record_data_setting
from mmakit.study.model_card import own_throughput
from mmakit.study.params import Params
from mmakit.study.records import make_record, now, results_root, write_record

DENSE = "dense"
BENCH = "bench"
METHOD = "bench-text"


def default_name(names: Sequence[str]) -> str:
    """text-<run>[+<run>...]: the record's name when none is given."""
    return ("text-" + "+".join(n.split("/")[-1] for n in names))[:150]


def _about(record: dict, max_length: int) -> dict:
    """What a bench-text record keeps of a model's own record: its quality and fixed-length speed."""
    return {"record": rebuild.record_name(record), "data_setting": record_data_setting(record),
            "technique": record["technique"], "f1": record["f1"], "mls": record["mls"],
            "mls_std": record.get("mls_std"), "fixed_length": own_throughput(record), "max_length": max_length}


def _models(names: Sequence[str], results_dir, cache_dir, data_dir) -> tuple[dict, dict, Params]:
    """({model: graph folder}, {model: what it is}, the first run's parameters) for the runs and
    the dense baseline (described by its 01_baselines record where there is one)."""
    records = [rebuild.find_record(n, results_dir) for n in names]
    first = rebuild.run_params(records[0], cache_dir, data_dir)
    common.setup(first)
    seed = int(first.get("baseline_seed") or first.seed)
    folders = {DENSE: rebuild.baseline_folder(first)}
    about = {DENSE: {"what": f"dense fp32 {first.model} at seed {seed}", "checkpoint": str(folders[DENSE]),
                     "data_setting": ENGLISH_ONLY, "max_length": int(first.max_length)}}
    try:
        about[DENSE] |= _about(rebuild.find_record(f"01_baselines/{first.model}-s{seed}", results_dir),
                               int(first.max_length))
    except rebuild.RecordError:  # 01 has not run: the baseline was fine-tuned by a later notebook
        pass
    for record in records:
        P = rebuild.run_params(record, cache_dir, data_dir)
        folders[rebuild.record_name(record)] = rebuild.graph_folder(record, P)
        about[rebuild.record_name(record)] = _about(record, int(P.max_length))
    return folders, about, first


def bench_text(names: Sequence[str], config: TextBenchConfig, max_sentences: int | None = None, split: str = "test",
               results_dir: str | Path | None = None, cache_dir: str | Path | None = None,
               data_dir: str | Path | None = None, name: str | None = None) -> tuple[list[dict], Path]:
    """Time the records `names` and the dense baseline on the test sets; write and return the rows
    and the record's path. `max_sentences` per language (default: the run's `max_eval_samples`,
    all for the quick profile)."""
    started, t0 = now(), time.perf_counter()
    folders, about, P = _models(names, results_dir, cache_dir, data_dir)
    limit = max_sentences or P.get("max_eval_samples")
    sentences = {lang: load_split(lang, split, P.get("data_dir"), limit)["tokens"] for lang in LANGUAGES}
    encoded: dict = {}  # per tokenizer and limit: models of one encoder share it
    passes = {}
    for model, folder in folders.items():
        tokenizer, width = AutoTokenizer.from_pretrained(str(folder)), about[model]["max_length"]
        key = (tokenizer_fingerprint(tokenizer), width)
        if key not in encoded:
            encoded[key] = {lang: encode(tokenizer, s, width) for lang, s in sentences.items()}
        inputs = graph_inputs(folder / GRAPH)
        passes[model] = {(lang, b): text_pass(encoded[key][lang], inputs, tokenizer.pad_token_id, b, config.bucket,
                                              width) for lang in LANGUAGES for b in config.batches}
    rows = speedups(run_text_benchmark({m: f / GRAPH for m, f in folders.items()}, passes, config), DENSE)
    record = make_record(
        notebook=BENCH, run=name or default_name(names), profile=P.profile,
        model=about[DENSE]["checkpoint"], technique={"method": METHOD, "reference": DENSE},
        params=asdict(config) | {"runs": list(names), "split": split, "max_sentences": limit},
        f1={}, mls={}, text_throughput=rows, models=about, started=started, seconds=time.perf_counter() - t0,
    )
    return rows, write_record(record, results_dir)


def text_records(results_dir: str | Path | None = None) -> list[dict]:
    """Every bench-text record, newest first."""
    found = [json.loads(p.read_text()) for p in (results_root(results_dir) / BENCH).glob("*.json")]
    return sorted((r for r in found if r.get("technique", {}).get("method") == METHOD),
                  key=lambda r: r["started"], reverse=True)


def rows_for(record: str, results_dir: str | Path | None = None) -> list[dict]:
    """The real-text rows of model `record` (`<notebook>/<run>`) in the newest bench-text record
    that timed it, [] when none did."""
    for bench in text_records(results_dir):
        rows = [r for r in bench["text_throughput"] if r["model"] == record]
        if rows:
            return rows
    return []
