"""`quantize`: one entry point from a fine-tuned model (or its fp32 ONNX graph) to an INT8 ONNX
graph, by any of the study's four methods, usable on any model (dense, pruned, distilled).

- dynamic: onnxruntime dynamic quantization (activation ranges computed per batch at run time);
- static: ranges calibrated on English training sentences;
- data-free: ranges calibrated on random token ids, no data at all;
- qat: fine-tuning with fake-quantization (see `qat`), then the trained fp32 weights are
  exported and quantized statically with the ranges tracked during training: no calibration.
  The int8 weights are the QAT weights rounded exactly as in training, and the activation
  ranges are the training ones, so the graph computes what the network was trained with.
"""
from __future__ import annotations

import copy
import hashlib
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np
import onnx
from datasets import Dataset
from torch import nn
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.train import TrainConfig, TrainHooks
from mmakit.runtime import export
from mmakit.techniques.quantization import qat as qat_mod
from mmakit.techniques.quantization.calibration import (
    BatchReader,
    english_sample,
    random_token_sample,
)
from mmakit.techniques.quantization.ptq import (
    NodePlan,
    QuantSettings,
    plan_nodes,
    preprocess,
    quantize_dynamic_graph,
    quantize_static_graph,
    workdir,
)

FP32 = "fp32"  # the float graph every int8 graph is compared with
METHODS = ("dynamic", "static", "qat", "data-free")


@dataclass
class QATSpec:
    """What a quantization-aware training run needs: tokenized English train and its settings."""

    train: Dataset
    cfg: TrainConfig
    freeze_fraction: float = 0.5
    hooks: Sequence[TrainHooks] = field(default_factory=tuple)


@dataclass
class QuantResult:
    """The int8 graph and what was done to produce it (recorded with the run); for QAT also
    the trained float model, which other int8 graphs can be made from (e.g. with every MatMul
    quantized, which QAT itself cannot track)."""

    path: Path
    method: str
    info: dict
    model: nn.Module | None = None


def quantize(
    source: PreTrainedModel | str | Path,
    method: str,
    out: str | Path,
    tokenizer: PreTrainedTokenizerBase,
    settings: QuantSettings | None = None,
    calibration: Dataset | None = None,
    qat: QATSpec | None = None,
    max_length: int = 128,
) -> QuantResult:
    """Write an INT8 ONNX graph of `source` to `out` by `method` (one of METHODS).

    `source` is a token classifier or an fp32 ONNX graph exported from one (QAT needs the
    model). `calibration` holds untokenized English sentences for static calibration; `qat`
    the training data and settings for QAT. The caller's model is never modified. QAT always
    leaves the attention-score products in float: they have no weights to train and their
    ranges are not tracked.
    """
    if method not in METHODS:
        raise ValueError(f"unknown quantization method {method!r}; choose from {', '.join(METHODS)}")
    settings = settings or QuantSettings()
    start, out = time.perf_counter(), Path(out).resolve()
    out.parent.mkdir(parents=True, exist_ok=True)
    if not isinstance(source, nn.Module):
        source = Path(source).resolve()
    trained = None
    with workdir() as tmp:
        if method == "qat":
            if not isinstance(source, nn.Module) or qat is None:
                raise ValueError("QAT needs the PyTorch model and a QATSpec (training data and settings)")
            settings = replace(settings, exclude=tuple(sorted({*settings.exclude, "attention_scores"})))
            info, trained = _quantize_qat(source, out, tokenizer, settings, qat, tmp)
        else:
            fp32 = source if isinstance(source, Path) else export.export_onnx(source, tokenizer, tmp / "fp32.onnx")
            if method == "dynamic":
                info = quantize_dynamic_graph(fp32, out, settings)
            else:
                data = _calibration_data(method, tokenizer, settings, calibration, max_length)
                reader = BatchReader(data, export.graph_inputs(fp32), tokenizer.pad_token_id, settings.batch_size,
                                     desc=f"calibrate ({method})")
                info = quantize_static_graph(fp32, out, settings, reader=reader)
    info = {"method": method, "settings": settings.to_dict(), "seconds": round(time.perf_counter() - start, 1)} | info
    return QuantResult(out, method, info, trained)


def _calibration_data(method: str, tokenizer: PreTrainedTokenizerBase, settings: QuantSettings,
                      calibration: Dataset | None, max_length: int) -> Dataset:
    if method == "data-free":
        return random_token_sample(tokenizer, settings.calibration_size, max_length, settings.seed)
    if calibration is None:
        raise ValueError("static quantization needs calibration sentences (English train)")
    return english_sample(calibration, tokenizer, settings.calibration_size, settings.seed, max_length)


def _digest(array: np.ndarray) -> str:
    return hashlib.sha1(np.ascontiguousarray(array, dtype=np.float32).tobytes()).hexdigest()


def _added_constants(graph: onnx.ModelProto, constants: dict[str, onnx.TensorProto]) -> dict[str, set[str]]:
    """Per tensor, the digests of the constants an Add adds to it (a Linear's bias after its MatMul)."""
    added: dict[str, set[str]] = {}
    for node in graph.graph.node:
        if node.op_type == "Add":
            digests = {_digest(onnx.numpy_helper.to_array(constants[i])) for i in node.input if i in constants}
            for i in node.input:
                added.setdefault(i, set()).update(digests)
    return added


def match_modules(model: nn.Module, graph: onnx.ModelProto,
                  plan: NodePlan) -> tuple[dict[str, onnx.NodeProto], dict[str, onnx.NodeProto]]:
    """The Linear and Embedding modules behind the plan's int8 MatMuls and Gathers, by module name.

    Matched by content (a MatMul's constant is the Linear's weight transposed, a Gather's the
    embedding table), which holds whatever names the exporter gave the nodes. Weights pruned to
    the same content (e.g. all-zero query and key projections) are told apart by the bias added
    after their MatMul; Linears that read one input with one weight share the MatMul the graph
    optimizer merged them into.
    """
    constants = {t.name: t for t in graph.graph.initializer}
    by_weight: dict[str, list[onnx.NodeProto]] = {}
    for n in plan.matmuls:
        if n.input[1] in constants:
            by_weight.setdefault(_digest(onnx.numpy_helper.to_array(constants[n.input[1]])), []).append(n)
    # only weights pruned to the same content need their biases told apart
    added = _added_constants(graph, constants) if any(len(nodes) > 1 for nodes in by_weight.values()) else {}
    tables = {_digest(onnx.numpy_helper.to_array(constants[n.input[0]])): n for n in plan.gathers}
    linears, embeddings = {}, {}
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            found = by_weight.get(_digest(module.weight.detach().T.numpy()), [])
            if len(found) > 1 and module.bias is not None:
                bias = _digest(module.bias.detach().numpy())
                found = [n for n in found if bias in added.get(n.output[0], set())]
            if len(found) > 1:
                raise RuntimeError(f"{name} matches {len(found)} MatMuls of the graph: they cannot be told apart")
            if found:
                linears[name] = found[0]
        elif isinstance(module, nn.Embedding) and (node := tables.get(_digest(module.weight.detach().numpy()))):
            embeddings[name] = node
    unmatched = sum(len(nodes) for nodes in by_weight.values()) - len({n.name for n in linears.values()})
    if unmatched:
        raise RuntimeError(f"{unmatched} int8 MatMuls of the graph match no Linear module of the model")
    return linears, embeddings


def tensor_ranges(linears: dict[str, onnx.NodeProto],
                  module_ranges: dict[str, dict[str, tuple[float, float]]]) -> dict[str, tuple[float, float]]:
    """(min, max) per graph tensor from the ranges tracked on each Linear's input and pre-bias output.

    Q, K and V read one tensor and so share one range in the graph: the widest of theirs.
    """
    ranges: dict[str, tuple[float, float]] = {}
    for name, node in linears.items():
        seen = module_ranges[name]
        for tensor, (low, high) in ((node.input[0], seen["input"]), (node.output[0], seen["output"])):
            old = ranges.get(tensor, (low, high))
            ranges[tensor] = (min(old[0], low), max(old[1], high))
    return ranges


def _export_and_match(model: nn.Module, tokenizer: PreTrainedTokenizerBase, settings: QuantSettings, folder: Path):
    """Export `model`, plan its int8 nodes, and match them to modules (the graph itself is not kept)."""
    fp32 = export.export_onnx(model, tokenizer, folder / "fp32.onnx")
    graph = onnx.load(preprocess(fp32, folder / "pre.onnx"))
    return fp32, *match_modules(model, graph, plan_nodes(graph, settings))


def _quantize_qat(model: nn.Module, out: Path, tokenizer: PreTrainedTokenizerBase, settings: QuantSettings,
                  spec: QATSpec, tmp: Path) -> tuple[dict, nn.Module]:
    """Fake-quantize exactly the modules the int8 graph will quantize, train, then carry the
    ranges over; (what was done, the trained float model)."""
    model = copy.deepcopy(model)
    _, linears, embeddings = _export_and_match(model, tokenizer, settings, tmp / "before")
    result = qat_mod.train_qat(model, spec.train, spec.cfg, tokenizer.pad_token_id, linears, embeddings,
                               settings.per_channel, spec.freeze_fraction, spec.hooks)
    fp32, linears, _ = _export_and_match(model.eval(), tokenizer, settings, tmp / "after")
    info = quantize_static_graph(fp32, out, settings, ranges=tensor_ranges(linears, result.ranges))
    return info | {"qat": result.summary() | {"epochs": spec.cfg.epochs, "lr": spec.cfg.lr}}, model
