"""The 06_combined experiment: one pipeline of the earlier notebooks' pieces per run, ending in
int8 graphs, scored on every set through onnxruntime and timed beside the dense fp32 12-layer
graph in one interleaved benchmark.

A pipeline is (optionally) 04's distilled student (KD from the dense baseline; perhaps after 04's
task-agnostic stage on generic text), then (optionally) 03's OBS pruning with KD from the dense
baseline (unstructured or 4-block), then 05's QAT with the sparsity masks kept, on English
cross-entropy or (`qat_distill`, as oBERT's recipes) with word-level KD from the dense baseline.
A pipeline runs with the baseline's seed, or with `combine_seed` for every step it trains
(student, pruning, QAT; the teacher stays the baseline). Each pipeline gives two records: the
QAT graph with 05's float exclusions (attention-score MatMuls, and FFN output unless
`quant_exclude` says otherwise), and, from the same QAT-trained weights, a graph with every
MatMul int8 (static ranges calibrated on English, as QAT cannot track the attention products),
so the cost of the exclusions shows. Students and pruned models come from the caches of 04 and 03.
"""
from __future__ import annotations

import tempfile
from dataclasses import dataclass
from pathlib import Path

from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.models import count_parameters
from mmakit.core.train import TrainHooks
from mmakit.runtime import bench, export
from mmakit.study import common, distillation, pruning, quantization, speed
from mmakit.study.data_setting import generic_text_langs, target_unlabelled_langs
from mmakit.study.params import Params
from mmakit.study.teacher import teacher_logits
from mmakit.techniques.distillation import KDConfig, WordKDHook

NOTEBOOK = "06_combined"
DENSE = "dense"
ALL_INT8 = "int8all"  # suffix of the record whose graph has every MatMul int8


def pipeline_name(P: Params) -> str:
    """`run_name`, else <model>[-L<n>[-generic_<langs>]-kd[-hid][-steps<n>][-unlab_<langs>]][-obs<percent>[-4block]]-q[kd],
    e.g. me5-small-L6-kd-obs80-4block-q, or me5-small-L6-generic_en_es_nl_de_fr-kd-obs80-4block-qkd
    (a student after 04's task-agnostic stage, QAT with KD). With `combine_seed` the records are
    named <name>[-int8all]-s<seed> and aggregated under <name>[-int8all] (`record_names`)."""
    if P.get("run_name"):
        return P.run_name
    name = P.model
    if P.get("combine_student"):
        stage = "-generic_" + "_".join(generic_langs(P)) if generic_langs(P) else ""
        steps = f"-steps{int(P.student_steps)}" if P.get("student_steps") else ""
        hid = "-hid" if P.get("combine_intermediate") else ""
        name += f"-L{int(P.combine_student)}{stage}-kd{hid}{steps}"
    if unlabelled_langs(P):
        name += "-unlab_" + "_".join(unlabelled_langs(P))
    if P.get("combine_sparsity"):
        name += f"-obs{round(100 * float(P.combine_sparsity))}" + ("-4block" if int(P.combine_group_size) == 4 else "")
    return name + ("-qkd" if P.get("qat_distill") else "-q")


def record_names(P: Params, variant: str) -> tuple[str, str | None]:
    """(the record's name, the seed aggregate's name or None) of one quantization `variant`."""
    name = pipeline_name(P) if variant == "exclusions" else f"{pipeline_name(P)}-{ALL_INT8}"
    if P.get("combine_seed") is None:
        return name, None
    return f"{name}-s{int(P.combine_seed)}", name


def unlabelled_langs(P: Params) -> list[str]:
    """The languages whose unlabelled sentences the pipeline's student was also taught on (beyond the paper)."""
    return target_unlabelled_langs(NOTEBOOK, P)


def generic_langs(P: Params) -> list[str]:
    """The languages of the generic text of the student's task-agnostic stage (04's generic_langs)."""
    return generic_text_langs(NOTEBOOK, P)


def pipeline_seed(P: Params) -> int:
    """The seed of the pipeline's student and pruning: `combine_seed`, else the baseline's."""
    return int(P.combine_seed if P.get("combine_seed") is not None else P.baseline_seed)


def student_params(P: Params) -> Params:
    """04's parameters for the pipeline's student: `combine_student` layers, after the task-agnostic
    stage on `combine_generic_langs` if any, taught by the dense baseline (with its hidden states
    too under `combine_intermediate`; beyond the paper, also on `combine_unlabelled_langs`'
    unlabelled sentences), the pipeline's seed (the checkpoint 04 cached for that run)."""
    return Params(P | {"notebook": distillation.NOTEBOOK, "student_size": int(P.combine_student), "teacher": True,
                       "seed": pipeline_seed(P), "student_layers": None, "student_model": None,
                       "unlabelled_langs": unlabelled_langs(P), "generic_langs": generic_langs(P),
                       "intermediate": bool(P.get("combine_intermediate")), "run_name": None})


def pruning_params(P: Params) -> Params:
    """03's parameters for the pipeline's pruning step: OBS to `combine_sparsity` with KD from
    the dense baseline, `combine_group_size`, the first event at `combine_initial_sparsity`
    (default the profile's), the profile's schedule otherwise."""
    first = P.get("combine_initial_sparsity")
    return Params(P | {"notebook": pruning.NOTEBOOK, "method": "obs", "sparsity": float(P.combine_sparsity),
                       "group_size": int(P.combine_group_size), "kd": True, "seed": pipeline_seed(P),
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
                         "unlabelled_langs": unlabelled_langs(P), "generic_langs": generic_langs(P),
                         "task_agnostic": (meta["task_agnostic"] or {}).get("key")}
    if P.get("combine_sparsity"):
        start = None if not P.get("combine_student") else (model, meta)
        model, _, tokenizer, meta = pruning.prune(pruning_params(P), start=start)
        made["pruning"] = {"key": meta["key"], "sparsity": meta["sparsity"]["global"], "pruning": meta["pruning"],
                           "steps": len(meta["steps"]), "training": meta["training"]}
    return model, tokenizer, made


def qat_teacher(P: Params, dense: PreTrainedModel, dense_tokenizer: PreTrainedTokenizerBase,
                tokenizer: PreTrainedTokenizerBase, base: dict) -> tuple[list[TrainHooks], dict | None]:
    """With `qat_distill`, the hook that makes QAT distil from the dense baseline (`dense`, its
    cache metadata `base`) into the model of `tokenizer`: 04's word-level KD with the profile's
    hardness and temperature over the English train sentences QAT trains on, the teacher's
    logits from the cache 03 and 04 share; and what it is. Without: no hook, None."""
    if not P.get("qat_distill"):
        return [], None
    kd = KDConfig(hardness=float(P.hardness), temperature=float(P.temperature))
    sentences = common.english_train(P)
    words, logits_meta = teacher_logits(P, sentences, dense, dense_tokenizer, base["key"], kd.teacher_batch)
    hook = WordKDHook(words, tokenize_dataset(sentences, tokenizer, P.max_length), kd)
    return [hook], {"kd": kd.to_dict(), "teacher": base["key"], "teacher_logits": logits_meta}


def quantized(P: Params, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, folder: Path,
              hooks: list[TrainHooks] | None = None) -> dict:
    """The two int8 graphs of `model`: QAT with the profile's exclusions (`hooks` join its
    training loop, e.g. distillation), and every MatMul int8 from the QAT-trained weights;
    {variant: (path, info)}."""
    qat = quantization.quantize_model(P, model, tokenizer, "qat", folder / "qat.onnx", hooks=hooks or ())
    every = Params(P | {"quant_exclude": []})
    full = quantization.quantize_model(every, qat.model, tokenizer, "static", folder / f"{ALL_INT8}.onnx")
    return {"exclusions": (qat.path, qat.info), ALL_INT8: (full.path, full.info)}


def technique(P: Params, variant: str, made: dict, info: dict) -> dict:
    return {"method": "combined", "student": int(P.combine_student) if P.get("combine_student") else None,
            "unlabelled_langs": unlabelled_langs(P), "generic_langs": generic_langs(P),
            "student_steps": P.get("student_steps") if P.get("combine_student") else None,
            "student_intermediate": bool(P.get("combine_intermediate")) if P.get("combine_student") else None,
            "qat_distill": bool(P.get("qat_distill")), "seed": P.get("combine_seed"),
            "sparsity": float(P.combine_sparsity) if P.get("combine_sparsity") else None,
            "group_size": int(P.combine_group_size), "quantization": "qat", "coverage": variant,
            "float_ops": list(info["settings"]["exclude"]), "made": made}


@dataclass
class Pipeline:
    """A pipeline as built: the dense baseline (model, tokenizer, cache metadata), the float model
    before quantization (model, tokenizer, what it is) and the int8 graphs ({variant: (path, info)})."""

    dense: PreTrainedModel
    dense_tokenizer: PreTrainedTokenizerBase
    base: dict
    model: PreTrainedModel
    tokenizer: PreTrainedTokenizerBase
    made: dict
    graphs: dict


def build(P: Params, folder: Path) -> Pipeline:
    """The run's pipeline, its int8 graphs written to `folder`: what run() scores and times, and
    what `mmakit export` rebuilds, so both get the same graph. P must already carry the pipeline's
    seed (`with_pipeline_seed`)."""
    dense, dense_tokenizer, base = common.fine_tuned(P)
    model, tokenizer, made = float_model(P, dense, dense_tokenizer, base)
    hooks, made["qat_teacher"] = qat_teacher(P, dense, dense_tokenizer, tokenizer, base)
    return Pipeline(dense, dense_tokenizer, base, model, tokenizer, made, quantized(P, model, tokenizer, folder, hooks))


def with_pipeline_seed(P: Params) -> Params:
    """P whose `seed` (the one QAT trains with) is `combine_seed` when given; P otherwise."""
    return Params(P | {"seed": pipeline_seed(P)}) if P.get("combine_seed") is not None else P


def run(P: Params) -> list[dict]:
    """Build the run's pipeline, score both int8 graphs on all six sets, time them beside the
    dense fp32 graph, and write one record per graph. With `combine_seed`, QAT trains with that
    seed too (the records' `seed`)."""
    clock = common.RunClock()
    P = with_pipeline_seed(P)
    with tempfile.TemporaryDirectory(prefix="06_combined-") as tmp:
        built = build(P, Path(tmp))
        graphs, tokenizer = built.graphs, built.tokenizer
        suite = common.eval_suite(P, tokenizer)
        dense_graph = Path(built.base["checkpoint"]) / "model.onnx"  # written by 01_baselines, if it ran
        if not dense_graph.exists():
            dense_graph = export.export_onnx(built.dense, built.dense_tokenizer, Path(tmp) / "dense.onnx")
        scored = {v: common.score(P, suite, export.onnx_logits(path, P.get("threads"))) for v, (path, _) in graphs.items()}
        rows = bench.speedups(speed.benchmark({DENSE: dense_graph} | {v: p for v, (p, _) in graphs.items()}, tokenizer, P),
                              DENSE)
        sizes = {v: p.stat().st_size for v, (p, _) in graphs.items()}
    records = []
    for variant, (_, info) in graphs.items():
        run_name, aggregate_name = record_names(P, variant)
        records.append(common.finish(P, common.result_record(
            P, run_name, technique(P, variant, built.made, info), scored[variant], clock,
            throughput=[r for r in rows if r["model"] == variant], dense_throughput=[r for r in rows if r["model"] == DENSE],
            quantization=info,
            sizes={"onnx_bytes": sizes[variant]}, parameters=count_parameters(built.model),
            baseline={"key": built.base["key"], "checkpoint": built.base["checkpoint"]},
        )))
        if aggregate_name:
            common.write_seed_aggregate(P, aggregate_name)
    return records
