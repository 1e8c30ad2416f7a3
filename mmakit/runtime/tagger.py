"""Tagging text with an exported model folder (runtime.model_folder) in onnxruntime or deepsparse.

Words are encoded as the study scores them (core.encoding: the first sub-token of each word
carries its tag, long sentences are split into pieces that fit), batched by length, and run
in-process through onnxruntime or through the deepsparse worker, whose fixed-shape engines get
each batch filled up to the batch size.
"""
from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from seqeval.metrics.sequence_labeling import get_entities

from mmakit.core.encoding import Batch, Encoded, batches, encode, fill_rows, word_tags
from mmakit.core.text import Sentence
from mmakit.runtime import deepsparse_env
from mmakit.runtime.bench import RUNTIMES
from mmakit.runtime.export import graph_inputs, session
from mmakit.runtime.model_folder import ModelFolder, ModelFolderError, load_folder

BATCH_SIZE = 32
BUCKET = 16  # sub-tokens: batches are padded to a multiple of this
OUTPUT_FORMATS = ("conll", "json")


def check_runtime(runtime: str) -> None:
    """ValueError naming the valid runtimes when `runtime` is none of them."""
    if runtime not in RUNTIMES:
        raise ValueError(f"unknown runtime {runtime!r}; choose from {', '.join(RUNTIMES)}")


class OrtBackend:
    """A graph in an onnxruntime session."""

    def __init__(self, graph: Path, threads: int | None):
        try:
            self.session = session(graph, threads)
        except Exception as exc:  # onnxruntime's own errors for a truncated or foreign file
            raise ModelFolderError(f"{graph} is not a readable ONNX graph: {type(exc).__name__}: {exc}"[:500]) from None
        self.names = graph_inputs(self.session)

    def logits(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        return self.session.run(["logits"], feed)[0]

    def close(self) -> None:
        self.session = None


class DeepSparseBackend:
    """A graph in the deepsparse worker; every batch is filled up to `batch_size` rows, so there
    is one engine per bucket width."""

    def __init__(self, graph: Path, threads: int | None, batch_size: int):
        usable, why = deepsparse_env.status()
        if not usable:
            raise RuntimeError(f"deepsparse cannot run here: {why}")
        try:
            self.names = graph_inputs(graph)
        except Exception as exc:  # onnx's parse error of a truncated or foreign file
            raise ModelFolderError(f"{graph} is not a readable ONNX graph: {type(exc).__name__}: {exc}"[:500]) from None
        self.worker = deepsparse_env.DeepSparseWorker(graph, {}, [], 0, threads)
        self.batch_size = batch_size

    def logits(self, feed: dict[str, np.ndarray]) -> np.ndarray:
        rows = len(next(iter(feed.values())))
        try:
            return self.worker.logits(fill_rows(feed, self.batch_size))[:rows]
        except deepsparse_env.WorkerFailed as exc:
            raise deepsparse_env.WorkerFailed(f"{exc} (deepsparse runs fp32 and static or QAT int8 graphs; it aborts "
                                              "on onnxruntime's dynamic int8 ones)") from None

    def close(self) -> None:
        self.worker.close()


class Tagger:
    """IOB2 tags for sentences of words from a model folder, in `runtime` (one of RUNTIMES)."""

    def __init__(self, folder: str | Path, runtime: str = "onnxruntime", batch_size: int = BATCH_SIZE,
                 bucket: int = BUCKET, threads: int | None = None):
        check_runtime(runtime)
        self.model: ModelFolder = load_folder(folder)
        self.batch_size, self.bucket = batch_size, bucket
        self.backend = (OrtBackend(self.model.graph, threads) if runtime == "onnxruntime"
                        else DeepSparseBackend(self.model.graph, threads, batch_size))

    def batches(self, sentences: Sequence[Sequence[str]]) -> tuple[Encoded, list[Batch]]:
        """(encoded sentences, their padded batches) as this tagger runs them."""
        tok = self.model.tokenizer
        encoded = encode(tok, sentences, self.model.max_length)
        return encoded, batches(encoded, self.batch_size, self.bucket, self.backend.names, tok.pad_token_id,
                                self.model.max_length)

    def _logits(self, batch: Batch) -> np.ndarray:
        logits = self.backend.logits(batch.feed)
        if logits.shape[-1] != len(self.model.labels):
            raise ModelFolderError(f"{self.model.graph} gives {logits.shape[-1]} logits per token but "
                                   f"{self.model.path / 'labels.json'} names {len(self.model.labels)} labels")
        return logits

    def tag(self, sentences: Sequence[Sequence[str]]) -> list[list[str]]:
        """One tag per word of every sentence."""
        encoded, todo = self.batches(sentences)
        return word_tags(encoded, [(b, self._logits(b)) for b in todo], self.model.labels)

    def close(self) -> None:
        self.backend.close()

    def __enter__(self) -> Tagger:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def entities(words: Sequence[str], tags: Sequence[str], spans: Sequence[tuple[int, int]] | None = None,
             text: str | None = None) -> list[dict]:
    """Entity spans of a tagged sentence as seqeval reads the tags (conlleval's chunks, the
    study's headline F1): {"type", "start", "end" (word indices, end exclusive), "text"}, plus
    "start_char" and "end_char" in `text` when the words' character `spans` are given."""
    out = []
    for kind, start, last in get_entities(list(tags)):
        entity = {"type": kind, "start": start, "end": last + 1, "text": " ".join(words[start:last + 1])}
        if spans is not None and text is not None:
            begin, end = spans[start][0], spans[last][1]
            entity |= {"text": text[begin:end], "start_char": begin, "end_char": end}
        out.append(entity)
    return out


def render(sentences: Sequence[Sentence], tags: Sequence[Sequence[str]], fmt: str = "conll") -> list[str]:
    """The tagged sentences as text, one string each: "conll", a `word tag` line per word and a
    blank line after the sentence; "json", one JSON object a line (its input line, words, tags
    and `entities`, with character offsets into the line for raw text)."""
    if fmt not in OUTPUT_FORMATS:
        raise ValueError(f"unknown output format {fmt!r}; choose from {', '.join(OUTPUT_FORMATS)}")
    if fmt == "conll":
        return ["".join(f"{word} {tag}\n" for word, tag in zip(s.words, t)) + "\n" for s, t in zip(sentences, tags)]
    return [json.dumps({"line": s.line, **({"text": s.text} if s.text is not None else {}), "words": s.words,
                        "tags": list(t), "entities": entities(s.words, t, s.spans, s.text)}, ensure_ascii=False) + "\n"
            for s, t in zip(sentences, tags)]
