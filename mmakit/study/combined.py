"""The 06_combined experiment: one pipeline of the earlier notebooks' pieces per run, ending in
int8 graphs, scored on every set through onnxruntime and timed beside the dense fp32 12-layer
graph in one interleaved benchmark.

A pipeline is (optionally) 04's distilled student (KD from the dense baseline), then
(optionally) 03's OBS pruning with KD from the dense baseline (unstructured or 4-block), then
05's QAT with the sparsity masks kept. Each pipeline gives two records: the QAT graph with 05's
float exclusions (attention-score MatMuls, and FFN output unless `quant_exclude` says
otherwise), and, from the same QAT-trained weights, a graph with every MatMul int8 (static
ranges calibrated on English, as QAT cannot track the attention products), so the cost of the
exclusions shows. Students and pruned models come from the caches of 04 and 03.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.models import count_parameters
from mmakit.runtime import bench, export
from mmakit.study import common, distillation, pruning, quantization, speed
from mmakit.study.params import Params

NOTEBOOK = "06_combined"
DENSE = "dense"
ALL_INT8 = "int8all"  # suffix of the record whose graph has every MatMul int8


def pipeline_name(P: Params) -> str:
    """`run_name`, else <model>[-L<n>-kd[-unlab_<langs>]][-obs<percent>[-4block]]-q, e.g.
    me5-small-L6-kd-obs80-4block-q."""
    if P.get("run_name"):
        return P.run_name
    name = P.model + (f"-L{int(P.combine_student)}-kd" if P.get("combine_student") else "")
    if unlabelled_langs(P):
        name += "-unlab_" + "_".join(unlabelled_langs(P))
    if P.get("combine_sparsity"):
        name += f"-obs{round(100 * float(P.combine_sparsity))}" + ("-4block" if int(P.combine_group_size) == 4 else "")
    return name + "-q"


def unlabelled_langs(P: Params) -> list[str]:
    """The languages whose unlabelled sentences the pipeline's student was also taught on (beyond the paper)."""
    return list(P.get("combine_unlabelled_langs") or []) if P.get("combine_student") else []


def student_params(P: Params) -> Params:
    """04's parameters for the pipeline's student: `combine_student` layers, taught by the dense
    baseline (beyond the paper, also on `combine_unlabelled_langs`' unlabelled sentences), the
    baseline's seed (the checkpoint 04 cached for that run)."""
    return Params(P | {"notebook": distillation.NOTEBOOK, "student_size": int(P.combine_student), "teacher": True,
                       "seed": P.baseline_seed, "student_layers": None, "student_model": None,
                       "unlabelled_langs": unlabelled_langs(P), "intermediate": False,
                       "run_name": None})


def pruning_params(P: Params) -> Params:
    """03's parameters for the pipeline's pruning step: OBS to `combine_sparsity` with KD from
    the dense baseline, `combine_group_size`, the first event at `combine_initial_sparsity`
    (default the profile's), the profile's schedule otherwise."""
    first = P.get("combine_initial_sparsity")
    return Params(P | {"notebook": pruning.NOTEBOOK, "method": "obs", "sparsity": float(P.combine_sparsity),
                       "group_size": int(P.combine_group_size), "kd": True, "seed": P.baseline_seed,
                       "initial_sparsity": float(first) if first is not None else float(P.initial_sparsity)})


def float_model(P: Params, dense: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, base: dict
                ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(model, tokenizer, what it is) before quantization: the dense baseline (`dense`, its
    cache metadata `base`) or 04's student, then 03's pruning if the pipeline asks for it."""
    model, meta = dense, base
    made = {"start": {"kind": "dense", "key": meta["key"]}}
    if P.get("combine_student"):
        model, tokenizer, meta = distillation.distil(student_params(P))
        made["start"] = {"kind": "student", "key": meta["key"], "layers": meta["layers"],
                         "unlabelled_langs": unlabelled_langs(P)}
    if P.get("combine_sparsity"):
        start = None if not P.get("combine_student") else (model, meta)
        model, _, tokenizer, meta = pruning.prune(pruning_params(P), start=start)
        made["pruning"] = {"key": meta["key"], "sparsity": meta["sparsity"]["global"], "pruning": meta["pruning"],
                           "steps": len(meta["steps"]), "training": meta["training"]}
    return model, tokenizer, made


def quantized(P: Params, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path) -> dict:
    """The two int8 graphs of `model`: QAT with the profile's exclusions, and every MatMul int8
    from the QAT-trained weights; {variant: (path, info)}."""
    qat = quantization.quantize_model(P, model, tokenizer, "qat", folder / "qat.onnx")
    every = Params(P | {"quant_exclude": []})
    full = quantization.quantize_model(every, qat.model, tokenizer, "static", folder / f"{ALL_INT8}.onnx")
    return {"exclusions": (qat.path, qat.info), ALL_INT8: (full.path, full.info)}


def technique(P: Params, variant: str, made: dict, info: dict) -> dict:
    return {"method": "combined", "student": int(P.combine_student) if P.get("combine_student") else None,
            "unlabelled_langs": unlabelled_langs(P),
            "sparsity": float(P.combine_sparsity) if P.get("combine_sparsity") else None,
            "group_size": int(P.combine_group_size), "quantization": "qat", "coverage": variant,
            "float_ops": list(info["settings"]["exclude"]), "made": made}


def run(P: Params) -> list[dict]:
    """Build the run's pipeline, score both int8 graphs on all six sets, time them beside the
    dense fp32 graph, and write one record per graph."""
    clock = common.RunClock()
    dense, tokenizer, base = common.fine_tuned(P)
    model, tokenizer, made = float_model(P, dense, tokenizer, base)
    suite = common.eval_suite(P, tokenizer)
    name = pipeline_name(P)
    with tempfile.TemporaryDirectory(prefix="06_combined-") as tmp:
        graphs = quantized(P, model, tokenizer, Path(tmp))
        dense_graph = Path(base["checkpoint"]) / "model.onnx"  # written by 01_baselines, if it ran
        if not dense_graph.exists():
            dense_graph = export.export_onnx(dense, tokenizer, Path(tmp) / "dense.onnx")
        scored = {v: common.score(P, suite, export.onnx_logits(path, P.get("threads"))) for v, (path, _) in graphs.items()}
        rows = bench.speedups(speed.benchmark({DENSE: dense_graph} | {v: p for v, (p, _) in graphs.items()}, tokenizer, P),
                              DENSE)
        sizes = {v: p.stat().st_size for v, (p, _) in graphs.items()}
    records = []
    for variant, (_, info) in graphs.items():
        run_name = name if variant == "exclusions" else f"{name}-{ALL_INT8}"
        records.append(common.finish(P, common.result_record(
            P, run_name, technique(P, variant, made, info), scored[variant], clock,
            throughput=[r for r in rows if r["model"] == variant], dense_throughput=[r for r in rows if r["model"] == DENSE],
            quantization=info,
            sizes={"onnx_bytes": sizes[variant]}, parameters=count_parameters(model),
            baseline={"key": base["key"], "checkpoint": base["checkpoint"]},
        )))
    return records
