"""The 05_quantization experiment: quantize the fine-tuned baseline by every chosen method,
score each int8 graph through onnxruntime on all evaluation sets, time all graphs together
in both runtimes, and write one record per method plus one for the fp32 graph they are
compared with.

`quantize_model` is the step other notebooks reuse (06 applies it to pruned and distilled
models): the profile's quantization settings, English calibration sentences and QAT run.
"""
from __future__ import annotations

import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.evaluation import ZERO_SHOT
from mmakit.core.train import TrainHooks
from mmakit.runtime import bench, export
from mmakit.study import common, speed
from mmakit.study.params import Params
from mmakit.techniques.quantization.pipeline import FP32, QATSpec, QuantResult, quantize
from mmakit.techniques.quantization.ptq import QuantSettings

NOTEBOOK = "05_quantization"


def settings(P: Params) -> QuantSettings:
    """The run's quantization settings from its parameters."""
    return QuantSettings(
        calibration_size=int(P.calibration_size), calibration_method=P.calibration_method, quant_format=P.quant_format,
        per_channel=bool(P.per_channel), exclude=tuple(P.quant_exclude), embeddings=bool(P.quantize_embeddings), seed=P.seed,
    )


def qat_spec(P: Params, tokenizer: PreTrainedTokenizerBase, hooks: Sequence[TrainHooks] = ()) -> QATSpec:
    """QAT on English train: `qat_epochs` at `qat_lr`, otherwise the profile's fine-tuning settings."""
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    # fp32: fake quantization mirrors onnxruntime's int8 arithmetic, which bf16 autocast would not
    cfg = common.train_config(P, epochs=float(P.qat_epochs), lr=float(P.qat_lr), precision="fp32")
    return QATSpec(train, cfg, float(P.qat_freeze_ranges), tuple(hooks))


def quantize_model(P: Params, source: PreTrainedModel | Path, tokenizer: PreTrainedTokenizerBase, method: str,
                   out: str | Path, hooks: Sequence[TrainHooks] = ()) -> QuantResult:
    """INT8 graph of `source` (a model, or an fp32 ONNX graph for the post-training methods) by
    `method`, with the run's settings; `hooks` join the QAT training loop (e.g. distillation)."""
    qat = qat_spec(P, tokenizer, hooks) if method == "qat" else None
    return quantize(source, method, out, tokenizer, settings(P), calibration=common.english_train(P), qat=qat,
                    max_length=P.max_length)


def run_name(P: Params) -> str:
    """Prefix of the records' names: the `run_name` parameter, else the model name."""
    return P.get("run_name") or P.model


def f1_change(f1: dict, reference: dict) -> dict:
    """F1 minus the reference's, per language and split present in both."""
    return {lang: {s: v - reference[lang][s] for s, v in splits.items() if s in reference.get(lang, {})}
            for lang, splits in f1.items() if lang in reference}


def mls_change(change: dict) -> dict:
    """The multilingual score against our own fp32 graph: sum over es and nl of the F1 change."""
    splits = set.intersection(*(set(change.get(lang, {})) for lang in ZERO_SHOT))
    return {s: sum(change[lang][s] for lang in ZERO_SHOT) for s in sorted(splits)}


def run(P: Params) -> list[dict]:
    """Quantize `P.model`'s fine-tuned baseline by each of `P.quant_methods`; return the records (fp32 first)."""
    clock = common.RunClock()
    model, tokenizer, meta = common.fine_tuned(P)
    suite = common.eval_suite(P, tokenizer)
    graphs, scored, info, seconds = {}, {}, {}, {}
    with tempfile.TemporaryDirectory(prefix="05_quantization-") as tmp:
        graphs[FP32] = export.export_onnx(model, tokenizer, Path(tmp) / f"{FP32}.onnx")
        for method in (FP32, *P.quant_methods):
            start = time.perf_counter()
            if method != FP32:
                source = model if method == "qat" else graphs[FP32]
                result = quantize_model(P, source, tokenizer, method, Path(tmp) / f"{method}.onnx")
                graphs[method], info[method] = result.path, result.info
            scored[method] = common.score(P, suite, export.onnx_logits(graphs[method], P.get("threads")))
            seconds[method] = time.perf_counter() - start
        throughput = bench.speedups(speed.benchmark(graphs, tokenizer, P), FP32)
        sizes = {m: {"onnx_bytes": p.stat().st_size} for m, p in graphs.items()}
    records = []
    for method, result in scored.items():
        change = f1_change(result["f1"], scored[FP32]["f1"])
        technique = {"method": method, "int8": method != FP32}
        if method != FP32:
            technique |= info[method]
        record = common.result_record(
            P, f"{run_name(P)}-{method}", technique, result, clock, f1_change_vs_fp32=change,
            mls_vs_fp32=mls_change(change), throughput=[r for r in throughput if r["model"] == method],
            sizes=sizes[method] | {"fp32_onnx_bytes": sizes[FP32]["onnx_bytes"]}, baseline=meta,
            experiment_seconds=round(clock.seconds, 1),
        )
        records.append(record | {"seconds": round(seconds[method], 2)})
    return [common.finish(P, r) for r in records]
