"""The 04_distillation driver: a student made from the pretrained encoder by keeping some of its
layers, fine-tuned on English with the baseline's budget, with word-level KD from the cached
fine-tuned dense baseline (the teacher) or without it; scored on every set, exported and timed
beside the dense 12-layer graph in one interleaved benchmark, one record per run.

A student checkpoint is cached like a baseline (key: model, training data and settings, the
student's layers, the teacher's key, hardness and temperature), so 06_combined can start from
it and re-running the notebook to redraw tables does not train again. The teacher's word-level
logits are computed once per training sentence and kept under the cache too.
"""
from __future__ import annotations

import tempfile
from pathlib import Path

from accelerate import PartialState
from transformers import (
    AutoModelForTokenClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.evaluation import torch_logits
from mmakit.core.models import count_parameters
from mmakit.core.paths import cache_root
from mmakit.runtime import bench, export
from mmakit.study import common, provenance, speed
from mmakit.study.cache import cache_key, cached_fine_tune
from mmakit.study.params import Params
from mmakit.study.teacher import teacher_logits
from mmakit.techniques.distillation import (
    KDConfig,
    StudentConfig,
    WordKDHook,
    make_student,
)

NOTEBOOK = "04_distillation"
DENSE = "dense"
STUDENT = "student"


def student_config(P: Params) -> StudentConfig:
    """The run's student: `student_layers` (explicit indices) or `student_size` layers by `student_choice`."""
    layers = P.get("student_layers")
    return StudentConfig(size=int(P.student_size), choice=P.get("student_choice") or "alternate",
                         layers=tuple(int(i) for i in layers) if layers else None)


def kd_config(P: Params) -> KDConfig:
    """KD settings; intermediate-layer matching (`intermediate`, weight `intermediate_weight`)
    maps student layer i to the teacher layer it was copied from and needs a teacher with the
    student's tokenizer (teacher_model unset or the model itself)."""
    weight = float(P.get("intermediate_weight") or 1.0) if P.get("intermediate") else 0.0
    if weight and not (P.teacher and (P.get("teacher_model") or P.model) == P.model):
        raise ValueError("intermediate=True needs teacher=True and a teacher made from the student's model "
                         "(same tokenizer and hidden size): leave teacher_model unset")
    return KDConfig(hardness=float(P.hardness), temperature=float(P.temperature), intermediate_weight=weight)


def run_name(P: Params, keep: list[int]) -> str:
    """`run_name`, else <model>-L<layers kept>[-<choice>]-<kd|kd-hid|ce>-s<seed>, e.g. me5-small-L6-kd-s42
    (kd-hid: with intermediate-layer matching)."""
    if P.get("run_name"):
        return P.run_name
    cfg = student_config(P)
    how = "" if cfg.layers is None and cfg.choice == "alternate" else (
        f"-{cfg.choice}" if cfg.layers is None else "-layers" + "_".join(map(str, keep)))
    kd = ("kd-hid" if P.get("intermediate") else "kd") if P.teacher else "ce"
    return f"{P.model}-L{len(keep)}{how}-{kd}-s{P.seed}"


def distil(P: Params) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(student, tokenizer, meta): the run's student fine-tuned on English with or without the
    teacher, loaded from the cache when this exact run was done before. `meta` is the cache's
    metadata plus the student's layers, the teacher's key and the teacher-logit bookkeeping."""
    base, tokenizer = common.fresh_model(P, seed=P.seed)
    scfg = student_config(P)
    student, keep = make_student(base, scfg)
    del base
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    cfg = common.train_config(P)
    teacher, teacher_tok, teacher_meta = common.fine_tuned(P, P.get("teacher_model")) if P.teacher else (None, None, None)
    kd = kd_config(P)
    extra = {"student": scfg.to_dict() | {"kept": keep}, "teacher": teacher_meta["key"] if teacher_meta else None,
             "hardness": kd.hardness if teacher is not None else None,
             "temperature": kd.temperature if teacher is not None else None}
    if kd.intermediate_weight:  # only when on, so keys of output-only runs stay as they were
        extra["intermediate"] = {"weight": kd.intermediate_weight, "layer_map": dict(enumerate(keep))}
    processes = PartialState().num_processes
    if processes > 1:
        extra["processes"] = processes
    key = cache_key(P.model_spec(), train, cfg, P.max_length, extra, kind="distil")
    hooks, logits_meta = [], None
    if teacher is not None and not (cache_root(P.get("cache_dir")) / "checkpoints" / key / "mmakit.json").exists():
        words, logits_meta = teacher_logits(P, teacher, teacher_tok, teacher_meta["key"], kd.teacher_batch)
        hooks = [WordKDHook(words, train, kd, layer_map=dict(enumerate(keep)))]
    folder, meta = cached_fine_tune(key, student, tokenizer, train, cfg, P.get("cache_dir"),
                                    desc=f"distil {P.model} L{len(keep)} {'kd' if P.teacher else 'ce'} seed {P.seed}",
                                    device=P.get("device") or "auto", provenance=provenance.run_environment(),
                                    hooks=hooks)
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    info = {"layers": keep, "num_layers": len(keep), "teacher_key": extra["teacher"], "teacher_logits": logits_meta,
            "checkpoint": str(folder)}
    return model, tokenizer, meta | info


def deployed(P: Params, models: dict[str, PreTrainedModel], tokenizer: PreTrainedTokenizerBase,
             exported: dict[str, Path] | None = None, parity_batches: list | None = None) -> dict:
    """Export every model (or take its graph from `exported` where that file exists), time all
    graphs together (interleaved) in the run's runtimes with speedups over the dense graph in
    onnxruntime: {"throughput", "sizes", "parity"} (max |logit difference| ONNX vs PyTorch)."""
    with tempfile.TemporaryDirectory(prefix="04_distillation-") as tmp:
        paths = {name: Path(p) for name, p in (exported or {}).items() if Path(p).exists()}
        paths |= {name: export.export_onnx(m, tokenizer, Path(tmp) / f"{name}.onnx") for name, m in models.items()
                  if name not in paths}
        parity = {name: export.parity(models[name], p, parity_batches) for name, p in paths.items()
                  if parity_batches and name != DENSE}
        rows = bench.speedups(speed.benchmark(paths, tokenizer, P), DENSE)
        sizes = {name: export.model_sizes(models[name], p) for name, p in paths.items()}
    return {"throughput": rows, "sizes": sizes, "parity": parity}


def technique(P: Params, keep: list[int]) -> dict:
    kd = kd_config(P)
    return {"method": "distil", "layers": keep, "num_layers": len(keep), "teacher": bool(P.teacher),
            "teacher_model": (P.get("teacher_model") or P.model) if P.teacher else None,
            "hardness": kd.hardness if P.teacher else None, "temperature": kd.temperature if P.teacher else None,
            "intermediate": kd.intermediate_weight or None,
            "seed": P.seed}


def seed_run(name: str) -> str:
    """The name of the seed aggregate a run's record belongs to (its name without -s<seed>)."""
    return name.rsplit("-s", 1)[0]


def run(P: Params) -> dict:
    """Distil (or load) the run's student, score it on all six sets, time it beside the dense
    baseline and write its record under 04_distillation/<run name>; unless `run_name` names it,
    the seed aggregate <run name without -s<seed>> is refreshed."""
    clock = common.RunClock()
    model, tokenizer, meta = distil(P)
    suite = common.eval_suite(P, tokenizer)
    scored = common.score(P, suite, torch_logits(model))
    dense, _, base = common.fine_tuned(P)
    first = next(iter(suite.sets.values())).tokenized
    batches = list(iterate(first, sorted_batches([len(x) for x in first["input_ids"]], 16)[:2], tokenizer.pad_token_id))
    dense_graph = Path(base["checkpoint"]) / "model.onnx"  # written by 01_baselines, if it ran
    speed_ = deployed(P, {DENSE: dense, STUDENT: model}, tokenizer, {DENSE: dense_graph}, batches)
    keep = meta["layers"]
    name = run_name(P, keep)
    record = common.finish(P, common.result_record(
        P, name, technique(P, keep), scored, clock,
        throughput=speed_["throughput"], sizes=speed_["sizes"][STUDENT], dense_sizes=speed_["sizes"][DENSE],
        onnx_parity=speed_["parity"].get(STUDENT), parameters=count_parameters(model), training=meta,
        baseline={"key": base["key"], "checkpoint": base["checkpoint"]}, cache_key=meta["key"],
        dense_layers=dense.config.num_hidden_layers,
    ))
    if not P.get("run_name"):
        common.write_seed_aggregate(P, seed_run(name))
    return record
