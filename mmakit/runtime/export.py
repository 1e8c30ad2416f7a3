"""ONNX export of token classifiers and scoring through onnxruntime.

Every speed number of the study comes from an ONNX graph, and quantized models are scored
as they are deployed, so the graph has to be faithful: `parity` measures how far its logits
are from PyTorch's, `onnx_logits` plugs an onnxruntime session into `EvalSuite.evaluate`.
The legacy exporter at opset 14 is used because deepsparse rejects (or runs slower) the
opset-18 graphs of the dynamo exporter.
"""
from __future__ import annotations

import inspect
import os
from collections.abc import Iterable
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import MODEL_INPUTS
from mmakit.core.evaluation import LogitsFn, torch_logits
from mmakit.core.models import count_parameters
from mmakit.core.paths import atomic_path

if TYPE_CHECKING:
    import onnxruntime as ort

OPSET = 14


class _LogitsOnly(torch.nn.Module):
    """Positional inputs in a fixed order, the logits tensor out: what the legacy exporter traces."""

    def __init__(self, model: PreTrainedModel, names: list[str]):
        super().__init__()
        self.model, self.names = model, names

    def forward(self, *inputs: torch.Tensor) -> torch.Tensor:
        return self.model(**dict(zip(self.names, inputs))).logits


def input_names(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase) -> list[str]:
    """The inputs the tokenizer produces that the model also accepts, in MODEL_INPUTS order.

    token_type_ids is kept only where both have it (a BERT with an XLM-R tokenizer has none).
    """
    accepted = inspect.signature(model.forward).parameters
    produced = set(tokenizer.model_input_names)
    return [n for n in MODEL_INPUTS if n in produced and n in accepted]


def export_onnx(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: str | Path, opset: int = OPSET) -> Path:
    """Export `model` to `path` (legacy exporter, dynamic batch and sequence axes, output "logits").

    The file is written to a temporary name in the same folder and renamed, so a crash never
    leaves a half-written graph that a later run would take for a finished one.
    """
    path = Path(path)
    names = input_names(model, tokenizer)
    sample = tokenizer([["Export", "me", "to", "ONNX", "."]] * 2, is_split_into_words=True, return_tensors="pt")
    args = tuple(sample[n] for n in names)
    axes = {n: {0: "batch", 1: "sequence"} for n in (*names, "logits")}
    was_training = model.training
    model.eval()
    try:
        with atomic_path(path) as tmp, torch.no_grad():
            torch.onnx.export(
                _LogitsOnly(model, names), args, str(tmp), dynamo=False, opset_version=opset,
                input_names=names, output_names=["logits"], dynamic_axes=axes, do_constant_folding=True,
            )
    finally:
        model.train(was_training)
    return path


def session(path: str | Path, threads: int | None = None):
    """An onnxruntime CPU session with all graph optimizations; `threads` intra-op threads (None: all cores)."""
    import onnxruntime as ort

    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.intra_op_num_threads = int(threads or os.cpu_count() or 1)
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def graph_inputs(graph: str | Path | ort.InferenceSession) -> list[str]:
    """The names an ONNX graph is fed, in its order, initializers excluded: asked of an
    onnxruntime session, or read from the file at `graph` (without its external data)."""
    if hasattr(graph, "get_inputs"):
        return [i.name for i in graph.get_inputs()]
    import onnx

    model = onnx.load(str(graph), load_external_data=False)
    initializers = {t.name for t in model.graph.initializer}
    return [i.name for i in model.graph.input if i.name not in initializers]


def onnx_logits(path: str | Path, threads: int | None = None) -> LogitsFn:
    """A logits function over an ONNX graph, for `EvalSuite.evaluate`: feeds only the graph's inputs."""
    sess = session(path, threads)
    names = graph_inputs(sess)

    def run(batch: dict[str, torch.Tensor]) -> np.ndarray:
        feed = {n: batch[n].numpy().astype(np.int64) for n in names}
        return sess.run(["logits"], feed)[0]

    return run


def parity(model: PreTrainedModel, path: str | Path, batches: Iterable[dict[str, torch.Tensor]]) -> float:
    """Largest absolute difference between PyTorch and ONNX logits over the real tokens of `batches`."""
    ours, theirs = torch_logits(model), onnx_logits(path)
    worst = 0.0
    for batch in batches:
        mask = batch["attention_mask"].numpy().astype(bool)
        diff = np.abs(ours(batch) - theirs(batch))[mask]
        worst = max(worst, float(diff.max(initial=0.0)))
    return worst


def model_sizes(model: torch.nn.Module, onnx_path: str | Path | None = None) -> dict[str, int | None]:
    """Total and non-zero parameters of the model and the bytes of its ONNX file (None without one)."""
    sizes: dict[str, int | None] = dict(count_parameters(model))
    sizes["onnx_bytes"] = Path(onnx_path).stat().st_size if onnx_path else None
    return sizes
