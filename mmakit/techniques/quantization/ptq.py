"""Post-training INT8 quantization of an exported fp32 ONNX graph with onnxruntime: which
nodes become int8, dynamic quantization, and static quantization from a calibration reader
or from activation ranges supplied by the caller (quantization-aware training).

What is quantized: the MatMuls with a constant weight (the Linear layers) and, optionally,
the embedding Gathers. Two groups of MatMuls can be left in float, both on by default
because on the quick model they recover most of static INT8's loss (../shared/ENVIRONMENT.md:
en/es/nl dev F1 0.795/0.513/0.606 with every MatMul int8, 0.914/0.697/0.762 without these):
- `attention_scores`: the MatMuls whose two inputs are activations (Q K^T and softmax x V);
- `ffn_output`: the FFN output projection, whose input is the GELU output with its outliers.
Both are found from the graph's structure, not from node names, so any exported encoder works.

onnxruntime writes temporary files into the working directory; every call here runs inside
its own temporary directory.
"""
from __future__ import annotations

import contextlib
import tempfile
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import onnx
from onnxruntime.quantization import (
    CalibrationMethod,
    QuantFormat,
    QuantType,
    quant_pre_process,
    quantize_dynamic,
    quantize_static,
)
from onnxruntime.quantization.calibrate import TensorsData, save_tensors_data

from mmakit.techniques.quantization.calibration import BatchReader

EXCLUDABLE = ("attention_scores", "ffn_output")  # MatMuls that may stay float
CALIBRATION = {"minmax": CalibrationMethod.MinMax, "entropy": CalibrationMethod.Entropy,
               "percentile": CalibrationMethod.Percentile}
FORMATS = {"qoperator": QuantFormat.QOperator, "qdq": QuantFormat.QDQ}
GELU_OPS = {"Erf", "Gelu", "FastGelu", "BiasGelu", "Tanh"}
CHUNK_BATCHES = 8  # calibration batches held in memory at once


@dataclass(frozen=True)
class QuantSettings:
    """How a graph is quantized; every field is recorded with the result.

    Weights are int8 symmetric, activations uint8 asymmetric (onnxruntime's advice for x86
    with VNNI); `per_channel` gives each output column of a weight its own scale.
    """

    calibration_size: int = 512
    calibration_method: str = "minmax"
    quant_format: str = "qoperator"
    per_channel: bool = False
    exclude: tuple[str, ...] = EXCLUDABLE
    embeddings: bool = True
    batch_size: int = 16
    seed: int = 42
    percentile: float = 99.999

    def __post_init__(self) -> None:
        if self.calibration_method not in CALIBRATION or self.quant_format not in FORMATS:
            raise ValueError(f"calibration_method must be one of {', '.join(CALIBRATION)} "
                             f"and quant_format one of {', '.join(FORMATS)}")
        unknown = set(self.exclude) - set(EXCLUDABLE)
        if unknown:
            raise ValueError(f"cannot exclude {sorted(unknown)}; choose from {', '.join(EXCLUDABLE)}")

    @property
    def op_types(self) -> list[str]:
        return ["MatMul", "Gather"] if self.embeddings else ["MatMul"]

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class NodePlan:
    """The weight MatMuls and embedding Gathers of a graph that will be int8, and the excluded ones."""

    matmuls: list[onnx.NodeProto]
    gathers: list[onnx.NodeProto]
    excluded: dict[str, list[str]] = field(default_factory=dict)

    @property
    def excluded_names(self) -> list[str]:
        return [name for names in self.excluded.values() for name in names]

    def summary(self) -> dict:
        return {"int8_matmuls": len(self.matmuls), "int8_gathers": len(self.gathers),
                "float_matmuls": {group: len(names) for group, names in self.excluded.items()}}


@contextlib.contextmanager
def workdir() -> Iterator[Path]:
    """A temporary directory that is also the working directory (onnxruntime drops files in cwd)."""
    with tempfile.TemporaryDirectory(prefix="mmakit-quant-") as tmp, contextlib.chdir(tmp):
        yield Path(tmp)


def preprocess(fp32: str | Path, out: str | Path) -> Path:
    """onnxruntime's pre-processing (shape inference, basic graph optimization) before quantization.

    Symbolic shape inference is skipped, as ../shared/ENVIRONMENT.md found necessary for these encoders.
    """
    quant_pre_process(str(fp32), str(out), skip_symbolic_shape=True)
    return Path(out)


def _producers(graph: onnx.GraphProto) -> dict[str, onnx.NodeProto]:
    return {out: node for node in graph.node for out in node.output}


def _follows_gelu(tensor: str, producers: Mapping[str, onnx.NodeProto], depth: int = 4) -> bool:
    """Whether `tensor` comes out of a GELU within `depth` nodes, without crossing a MatMul."""
    frontier = [tensor]
    for _ in range(depth):
        nodes = [producers[t] for t in frontier if t in producers]
        if any(n.op_type in GELU_OPS for n in nodes):
            return True
        frontier = [i for n in nodes if n.op_type not in ("MatMul", "Gemm") for i in n.input]
    return False


def plan_nodes(model: onnx.ModelProto, settings: QuantSettings) -> NodePlan:
    """Sort the graph's MatMuls into int8 and excluded groups; list the embedding Gathers."""
    graph = model.graph
    constants = {t.name for t in graph.initializer}
    producers = _producers(graph)
    matmuls, excluded = [], {group: [] for group in settings.exclude}
    for node in graph.node:
        if node.op_type != "MatMul":
            continue
        if node.input[1] not in constants:
            group = "attention_scores"
        elif _follows_gelu(node.input[0], producers):
            group = "ffn_output"
        else:
            matmuls.append(node)
            continue
        if group in excluded:
            excluded[group].append(node.name)
        else:
            matmuls.append(node)
    gathers = [n for n in graph.node if n.op_type == "Gather" and n.input[0] in constants] if settings.embeddings else []
    return NodePlan(matmuls, gathers, excluded)


def _common_options(plan: NodePlan, settings: QuantSettings) -> dict:
    return dict(
        op_types_to_quantize=settings.op_types, per_channel=settings.per_channel, weight_type=QuantType.QInt8,
        nodes_to_quantize=[n.name for n in plan.matmuls + plan.gathers],
    )


def quantize_dynamic_graph(fp32: str | Path, out: str | Path, settings: QuantSettings) -> dict:
    """Dynamic INT8: weights quantized now, activation ranges computed at run time per batch."""
    fp32, out = Path(fp32).resolve(), Path(out).resolve()
    with workdir() as tmp:
        pre = preprocess(fp32, tmp / "pre.onnx")
        plan = plan_nodes(onnx.load(pre, load_external_data=False), settings)
        quantize_dynamic(pre, out, **_common_options(plan, settings))
    return plan.summary() | {"ops": op_counts(out)}


def quantize_static_graph(
    fp32: str | Path,
    out: str | Path,
    settings: QuantSettings,
    reader: BatchReader | None = None,
    ranges: Mapping[str, tuple[float, float]] | None = None,
) -> dict:
    """Static INT8: activation ranges from calibrating on `reader`, or given as `ranges`.

    `ranges` maps tensor names of the pre-processed graph to (min, max); it takes the place
    of calibration (onnxruntime reads it as a MinMax calibration cache), which is how the
    ranges learned during quantization-aware training reach the int8 graph.
    """
    if (reader is None) == (ranges is None):
        raise ValueError("give exactly one of a calibration reader or activation ranges")
    fp32, out = Path(fp32).resolve(), Path(out).resolve()
    method = CALIBRATION["minmax" if ranges is not None else settings.calibration_method]
    with workdir() as tmp:
        pre = preprocess(fp32, tmp / "pre.onnx")
        plan = plan_nodes(onnx.load(pre, load_external_data=False), settings)
        cache, extra = tmp / "ranges.json", {"CalibPercentile": settings.percentile}
        if ranges is not None:
            data = {k: (np.array(lo, dtype=np.float32), np.array(hi, dtype=np.float32)) for k, (lo, hi) in ranges.items()}
            save_tensors_data(TensorsData(method, data), cache)
        else:  # histograms stack a chunk's batches into one array: one batch per chunk, since lengths differ
            extra["CalibStridedMinMax"] = _chunk(len(reader)) if method == CalibrationMethod.MinMax else 1
        quantize_static(
            pre, out, reader, quant_format=FORMATS[settings.quant_format], activation_type=QuantType.QUInt8,
            calibrate_method=method, calibration_cache_path=cache, extra_options=extra, **_common_options(plan, settings),
        )
    info = plan.summary() | {"ops": op_counts(out)}
    if reader is not None:
        info["calibration_sentences"] = reader.sentences
    return info


def _chunk(batches: int) -> int:
    """The largest number of batches, at most CHUNK_BATCHES, that divides `batches` (onnxruntime requires it)."""
    return max(d for d in range(1, min(CHUNK_BATCHES, batches) + 1) if batches % d == 0)


def op_counts(path: str | Path) -> dict[str, int]:
    """How many nodes of each quantization-related type a graph holds (what was really quantized)."""
    model = onnx.load(path, load_external_data=False)
    counts = Counter(n.op_type for n in model.graph.node)
    wanted = ("QLinearMatMul", "MatMulInteger", "DynamicQuantizeLinear", "QuantizeLinear", "DequantizeLinear",
              "MatMul", "Gather")
    return {k: counts[k] for k in wanted if counts[k]}
