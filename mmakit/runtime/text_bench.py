"""Real-text throughput: sentences/s and words/s of graphs tagging whole data sets at their real
lengths, batched by length and padded to bucket widths exactly as the tagger runs them.

The fixed-length benchmark (runtime.bench) feeds 128-token rows; a CoNLL sentence has about 14
words, so what a user gets depends on padding and on batching by length. Here one timed call is
a pass over every batch of one data set (the forward passes only: tokenization is the same for
every graph with one tokenizer). Every model x runtime is timed with bench's interleaved rounds
(`start_slots`, `interleave`), so the speedups come from one run; each batch shape is run once
before timing (deepsparse compiles an engine per shape then).
"""
from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from mmakit.core.encoding import Batch, Encoded, batches, fill_rows
from mmakit.runtime import deepsparse_env
from mmakit.runtime.bench import REFERENCE_RUNTIME, RUNTIMES, interleave, start_slots, warn_if_busy
from mmakit.runtime.export import session
from mmakit.runtime.timing import timed_calls

ALL = "all"  # the `lang` of rows over every data set together
Key = tuple[str, int]  # (data set, batch size)


@dataclass(frozen=True)
class TextBenchConfig:
    """How to time: runtimes, batch sizes, bucket width in sub-tokens, interleaved rounds, timed
    seconds per model x runtime x data set x round (at least one pass each), untimed passes
    before each timed block, intra-op threads (None: all cores)."""

    runtimes: tuple[str, ...] = RUNTIMES
    batches: tuple[int, ...] = (32,)
    bucket: int = 16
    rounds: int = 3
    seconds: float = 0.0
    warmup: int = 0
    threads: int | None = None

    @property
    def n_threads(self) -> int:
        return int(self.threads or os.cpu_count() or 1)


@dataclass
class TextPass:
    """One data set as one graph runs it at one batch size: the padded batches and what they hold."""

    batches: list[Batch]
    sentences: int
    words: int
    tokens: int  # sub-tokens with the special tokens, no padding

    def padded(self, rows: int | None = None) -> int:
        """Positions computed, padding included (`rows`: every batch filled to that many rows)."""
        return sum((rows or b.shape[0]) * b.shape[1] for b in self.batches)


def text_pass(encoded: Encoded, names: Sequence[str], pad_id: int, batch_size: int, bucket: int,
              max_length: int) -> TextPass:
    """The pass over `encoded` sentences that a graph with inputs `names` runs at `batch_size`."""
    return TextPass(batches(encoded, batch_size, bucket, names, pad_id, max_length), len(encoded.words),
                    sum(encoded.words), sum(encoded.lengths))


class OrtPasses:
    """A graph in onnxruntime, running whole passes."""

    def __init__(self, path: Path, passes: Mapping[Key, TextPass], threads: int | None):
        self.session = session(path, threads)
        self.feeds = {key: [b.feed for b in p.batches] for key, p in passes.items()}
        seen = {}
        for feeds in self.feeds.values():
            for feed in feeds:
                seen.setdefault(next(iter(feed.values())).shape, feed)
        for feed in seen.values():  # every shape once before timing
            self.session.run(None, feed)

    def time(self, key: Key, seconds: float, warmup: int) -> list[float]:
        feeds = self.feeds[key]
        return timed_calls(lambda: [self.session.run(None, f) for f in feeds], seconds, warmup, min_calls=1)

    def close(self) -> None:
        self.session = None


class DeepSparsePasses:
    """A graph in the deepsparse worker, running whole passes; each batch filled to its batch size."""

    def __init__(self, path: Path, passes: Mapping[Key, TextPass], threads: int | None):
        self.worker = deepsparse_env.DeepSparseWorker(path, {}, [], 0, threads)
        try:
            for (lang, batch), p in passes.items():
                self.worker.load(f"{lang}/{batch}", [fill_rows(b.feed, batch) for b in p.batches])
        except Exception:
            self.worker.close()
            raise

    def time(self, key: Key, seconds: float, warmup: int) -> list[float]:
        return self.worker.time_pass(f"{key[0]}/{key[1]}", seconds, warmup, min_calls=1)

    def close(self) -> None:
        self.worker.close()


def _row(model: str, runtime: str, key: Key, p: TextPass, slot, config: TextBenchConfig) -> dict:
    lang, batch = key
    times = slot.times.get(key) or []
    row = {"model": model, "runtime": runtime, "lang": lang, "batch": batch, "bucket": config.bucket,
           "sentences": p.sentences, "words": p.words, "tokens": p.tokens,
           "padded_tokens": p.padded(batch if runtime == "deepsparse" else None), "passes": len(times),
           "seconds_per_pass": None, "sentences_per_s": None, "words_per_s": None, "spread": None,
           "threads": config.n_threads, "status": slot.status, "error": slot.error}
    if slot.status == "ok" and times:
        seconds = float(np.median(times))
        rate = p.sentences / seconds
        q25, q75 = np.percentile(p.sentences / np.asarray(times), [25, 75])
        row |= {"seconds_per_pass": round(seconds, 4), "sentences_per_s": round(rate, 2),
                "words_per_s": round(p.words / seconds, 2), "spread": round(float((q75 - q25) / rate), 3)}
    return row


def run_text_benchmark(models: Mapping[str, str | Path], passes: Mapping[str, Mapping[Key, TextPass]],
                       config: TextBenchConfig) -> list[dict]:
    """Rows {"model", "runtime", "lang", "batch", "bucket", "sentences", "words", "tokens",
    "padded_tokens", "passes", "seconds_per_pass", "sentences_per_s", "words_per_s", "spread",
    "threads", "status", "error"} for every model x runtime x (data set, batch) of `passes[model]`
    (the same keys for every model), then one row per model x runtime x batch over all data
    sets together (lang "all": their median pass seconds summed).

    The rates are those of the median pass; spread is the interquartile range of the rate over
    its median. A runtime that cannot run a graph gives rows with status "unavailable" or
    "failed" and the reason, as in the fixed-length benchmark.
    """
    warn_if_busy()
    runners = {"onnxruntime": OrtPasses, "deepsparse": DeepSparsePasses}
    slots = start_slots(list(models), config.runtimes,
                        lambda model, runtime: runners[runtime](Path(models[model]), passes[model], config.n_threads))
    keys = list(next(iter(passes.values())))
    interleave(slots, keys, config.seconds * config.rounds, config.rounds, config.warmup)
    rows = [_row(model, runtime, key, passes[model][key], slots[model, runtime], config)
            for model in models for runtime in config.runtimes for key in keys]
    return rows + totals(rows)


def totals(rows: Sequence[dict]) -> list[dict]:
    """Per model x runtime x batch, a row over every data set together: counts summed, seconds per
    pass the sum of the sets' median pass seconds (None unless every set was timed)."""
    out: dict[tuple, dict] = {}
    summed = ("sentences", "words", "tokens", "padded_tokens", "seconds_per_pass")
    for r in rows:
        key = (r["model"], r["runtime"], r["batch"])
        if key not in out:
            out[key] = r | {"lang": ALL, "passes": None, "spread": None, **{k: 0 for k in summed}}
        total = out[key]
        if r["status"] != "ok" and total["status"] == "ok":
            total["status"], total["error"] = r["status"], r["error"]
        for k in summed:
            total[k] = None if total[k] is None or r[k] is None else total[k] + r[k]
    for total in out.values():
        seconds = total["seconds_per_pass"]
        total["seconds_per_pass"] = round(seconds, 4) if seconds else None
        total["sentences_per_s"] = round(total["sentences"] / seconds, 2) if seconds else None
        total["words_per_s"] = round(total["words"] / seconds, 2) if seconds else None
    return list(out.values())


def speedups(rows: Sequence[dict], reference_model: str) -> list[dict]:
    """The rows with "speedup": sentences/s over the reference model's in onnxruntime on the same
    data set at the same batch size (None where either is missing)."""
    reference = {(r["lang"], r["batch"]): r["sentences_per_s"] for r in rows
                 if r["model"] == reference_model and r["runtime"] == REFERENCE_RUNTIME and r["sentences_per_s"]}
    out = []
    for r in rows:
        base = reference.get((r["lang"], r["batch"]))
        ratio = round(r["sentences_per_s"] / base, 2) if base and r["sentences_per_s"] else None
        out.append(dict(r) | {"speedup": ratio})
    return out
