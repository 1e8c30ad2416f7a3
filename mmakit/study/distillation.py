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
from datasets import Dataset, concatenate_datasets
from transformers import (
    AutoModelForTokenClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import LABEL2ID, load_split
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
    student's tokenizer (teacher_model unset or the model itself, no student_model).
    Unlabelled sentences (`unlabelled_langs`) carry only the teacher's soft targets, so they
    need the teacher and hardness 1."""
    weight = float(P.get("intermediate_weight") or 1.0) if P.get("intermediate") else 0.0
    if weight and not (P.teacher and (P.get("teacher_model") or P.model) == P.model and not P.get("student_model")):
        raise ValueError("intermediate=True needs teacher=True and a student made from the teacher's model "
                         "(same tokenizer and hidden size): leave teacher_model and student_model unset")
    if P.get("unlabelled_langs") and not (P.teacher and float(P.hardness) == 1.0):
        raise ValueError("unlabelled_langs needs teacher=True and hardness=1: those sentences have no labels, "
                         "only the teacher's soft targets")
    return KDConfig(hardness=float(P.hardness), temperature=float(P.temperature), intermediate_weight=weight)


def training_sentences(P: Params) -> Dataset:
    """English train, then (beyond the paper) the CoNLL-2002 train sentences of `unlabelled_langs`
    with their tags dropped (all O: only the teacher's soft targets at their words are used)."""
    english = common.english_train(P)
    langs = P.get("unlabelled_langs") or []
    if not langs:
        return english
    unlabelled = [load_split(lang, "train", P.get("data_dir"), P.get("max_train_samples")).map(
        lambda ex: {"ner_tags": [LABEL2ID["O"]] * len(ex["ner_tags"])}) for lang in langs]
    return concatenate_datasets([english, *unlabelled])


def make_run_student(P: Params) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, list[int]]:
    """(student, its tokenizer, the encoder layers it has): `student_model`'s pretrained encoder
    as it is (the paper profile's hub students), else the run's layers of the model's encoder."""
    if P.get("student_model"):
        model, tokenizer = common.fresh_model(P, P.student_model, seed=P.seed)
        return model, tokenizer, list(range(model.config.num_hidden_layers))
    base, tokenizer = common.fresh_model(P, seed=P.seed)
    student, keep = make_student(base, student_config(P))
    return student, tokenizer, keep


def run_name(P: Params, keep: list[int]) -> str:
    """`run_name`, else <model>-L<layers kept>[-<choice>]-<kd|kd-hid|ce>[-unlab_<langs>]-s<seed>, e.g.
    me5-small-L6-kd-s42 (kd-hid: with intermediate-layer matching; unlab: with unlabelled
    sentences), or <student_model>-<kd|ce>-s<seed> for a hub student."""
    if P.get("run_name"):
        return P.run_name
    kd = ("kd-hid" if P.get("intermediate") else "kd") if P.teacher else "ce"
    kd += "-unlab_" + "_".join(P.unlabelled_langs) if P.get("unlabelled_langs") else ""
    if P.get("student_model"):
        return f"{P.student_model}-{kd}-s{P.seed}"
    cfg = student_config(P)
    how = "" if cfg.layers is None and cfg.choice == "alternate" else (
        f"-{cfg.choice}" if cfg.layers is None else "-layers" + "_".join(map(str, keep)))
    return f"{P.model}-L{len(keep)}{how}-{kd}-s{P.seed}"


def distil(P: Params) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(student, tokenizer, meta): the run's student fine-tuned on English with or without the
    teacher, loaded from the cache when this exact run was done before. `meta` is the cache's
    metadata plus the student's layers, the teacher's key and the teacher-logit bookkeeping."""
    kd = kd_config(P)
    student, tokenizer, keep = make_run_student(P)
    sentences = training_sentences(P)
    train = tokenize_dataset(sentences, tokenizer, P.max_length)
    cfg = common.train_config(P)
    teacher, teacher_tok, teacher_meta = common.fine_tuned(P, P.get("teacher_model")) if P.teacher else (None, None, None)
    student_key = {"model": P.student_model} if P.get("student_model") else student_config(P).to_dict()
    extra = {"student": student_key | {"kept": keep}, "teacher": teacher_meta["key"] if teacher_meta else None,
             "hardness": kd.hardness if teacher is not None else None,
             "temperature": kd.temperature if teacher is not None else None}
    # each only when on, so keys of the runs made before they existed stay as they were
    if kd.intermediate_weight:
        extra["intermediate"] = {"weight": kd.intermediate_weight, "layer_map": dict(enumerate(keep))}
    if P.get("unlabelled_langs"):
        extra["unlabelled_langs"] = list(P.unlabelled_langs)
    processes = PartialState().num_processes
    if processes > 1:
        extra["processes"] = processes
    key = cache_key(P.model_spec(P.get("student_model")), train, cfg, P.max_length, extra, kind="distil")
    hooks, logits_meta = [], None
    if teacher is not None and not (cache_root(P.get("cache_dir")) / "checkpoints" / key / "mmakit.json").exists():
        words, logits_meta = teacher_logits(P, sentences, teacher, teacher_tok, teacher_meta["key"], kd.teacher_batch)
        hooks = [WordKDHook(words, train, kd, layer_map=dict(enumerate(keep)))]
    folder, meta = cached_fine_tune(key, student, tokenizer, train, cfg, P.get("cache_dir"),
                                    desc=f"distil {P.get('student_model') or P.model} L{len(keep)} "
                                         f"{'kd' if P.teacher else 'ce'} seed {P.seed}",
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
            "student_model": P.get("student_model"), "unlabelled_langs": list(P.get("unlabelled_langs") or []),
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
        P, name, technique(P, keep), scored, clock, model=P.get("student_model"),
        throughput=speed_["throughput"], sizes=speed_["sizes"][STUDENT], dense_sizes=speed_["sizes"][DENSE],
        onnx_parity=speed_["parity"].get(STUDENT), parameters=count_parameters(model), training=meta,
        baseline={"key": base["key"], "checkpoint": base["checkpoint"]}, cache_key=meta["key"],
        dense_layers=dense.config.num_hidden_layers,
    ))
    if not P.get("run_name"):
        common.write_seed_aggregate(P, seed_run(name))
    return record
