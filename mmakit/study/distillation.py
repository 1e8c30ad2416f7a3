"""The 04_distillation driver: a student made from the pretrained encoder by keeping some of its
layers, optionally first taught to reproduce the whole pretrained encoder on generic text of some
languages (`generic_langs`: the task-agnostic stage, as DistilBERT and Multilingual MiniLM were
distilled before any fine-tuning), then fine-tuned on English with the baseline's budget, with
word-level KD from the cached fine-tuned dense baseline (the teacher) or without it; scored on
every set, exported and timed beside the dense 12-layer graph in one interleaved benchmark, one
record per run.

A student checkpoint is cached like a baseline (key: model, training data and settings, the
student's layers, the teacher's key, hardness and temperature, the stage's key), so 06_combined
can start from it and re-running the notebook to redraw tables does not train again. The stage's
checkpoint is cached the same way (key: model, generic text, its settings and the student's
layers) and checkpointed while it trains, so an interrupted stage resumes. The teacher's
word-level logits are computed once per training sentence and kept under the cache too.
"""
from __future__ import annotations

import math
import shutil
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
from mmakit.core.data import LABEL2ID, fingerprint, load_generic_text, load_split
from mmakit.core.evaluation import torch_logits
from mmakit.core.models import count_parameters
from mmakit.core.paths import cache_root
from mmakit.core.train import TrainConfig, fine_tune, total_steps
from mmakit.runtime import bench, export
from mmakit.study import common, provenance, speed
from mmakit.study.cache import cache_key, cached_fine_tune, load_meta, save_atomically
from mmakit.study.params import Params, profile_value
from mmakit.study.teacher import teacher_logits
from mmakit.techniques.distillation import (
    HeldOutCurve,
    KDConfig,
    StudentConfig,
    TaskAgnosticConfig,
    TaskAgnosticHook,
    WordKDHook,
    freeze_outside_encoder,
    make_student,
    tokenize_text,
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


def generic_langs(P: Params) -> list[str]:
    """The languages of the task-agnostic stage's generic text (empty: no stage)."""
    return list(P.get("generic_langs") or [])


def generic_text(P: Params, tokenizer: PreTrainedTokenizerBase) -> tuple[Dataset, Dataset, dict[str, int]]:
    """(training text, held-out text, training sentences per language) of the stage, tokenized.
    Each language's first `generic_held_out` sentences are held out: the corpus files are shuffled
    once when built, so every run and seed holds out the same sentences and trains on the rest.
    `max_train_samples` (the smoke profile's cap) caps each language's sentences too."""
    train, held_out, counts = [], [], {}
    n, cap = int(P.generic_held_out), P.get("max_train_samples")
    for lang in generic_langs(P):
        sentences = load_generic_text(lang, P.get("generic_text_dir"), P.get("data_dir"))[:cap]
        if len(sentences) <= n:
            raise ValueError(f"{len(sentences)} generic {lang} sentences leave none to train on after "
                             f"generic_held_out={n}")
        held_out += sentences[:n]
        train += sentences[n:]
        counts[lang] = len(sentences) - n
    return tokenize_text(train, tokenizer, P.max_length), tokenize_text(held_out, tokenizer, P.max_length), counts


def steps_config(P: Params, steps: int, sentences: int, **overrides: float) -> TrainConfig:
    """Training settings for exactly `steps` optimizer steps of `batch_size` sentences over
    `sentences` (as a fraction or multiple of one pass), the profile's otherwise."""
    processes = PartialState().num_processes
    per_pass = math.ceil(math.ceil(sentences / int(P.batch_size)) / processes)
    cfg = common.train_config(P, epochs=steps / per_pass, **overrides)
    while total_steps(sentences, cfg, processes) > steps:  # the division rounded up
        cfg.epochs = math.nextafter(cfg.epochs, 0)
    return cfg


def stage_config(P: Params, sentences: int) -> TrainConfig:
    """The stage's training settings: exactly `generic_steps` steps at `generic_lr`, with the
    profile's warm-up, schedule, precision and frozen word embeddings."""
    return steps_config(P, int(P.generic_steps), sentences, lr=float(P.generic_lr))


def stage_curve(points: list[dict], losses: list[float]) -> list[dict]:
    """The stage's loss curve: at each held-out point, the mean training loss over the optimizer
    steps since the previous point (None at step 0) beside the held-out loss and its parts."""
    curve, previous = [], 0
    for point in points:
        window = losses[previous:point["step"]]
        curve.append({"step": point["step"], "train": sum(window) / len(window) if window else None,
                      "held_out": point["total"], "held_out_hidden": point["hidden"],
                      "held_out_attention": point["attention"]})
        previous = point["step"]
    return curve


def task_agnostic_student(P: Params, student: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, keep: list[int]
                          ) -> tuple[PreTrainedModel, dict]:
    """(student, the stage's metadata): the layer-dropped `student` (encoder layers `keep`) after
    the task-agnostic stage, which teaches it to reproduce the pretrained encoder on the generic
    text of `generic_langs`, from the cache when this exact stage ran before. The metadata holds
    its key, languages, sentences, steps, wall time and loss curve (train and held-out)."""
    if P.get("student_model"):
        raise ValueError("generic_langs needs a student made from the model's layers (the teacher is the model's "
                         "whole encoder): leave student_model unset")
    train, held_out, counts = generic_text(P, tokenizer)
    cfg = stage_config(P, len(train))
    loss = TaskAgnosticConfig()
    about = {"stage": "task-agnostic", "langs": generic_langs(P), "per_language": counts, "sentences": len(train),
             "held_out_per_language": int(P.generic_held_out), "held_out_fingerprint": fingerprint(held_out),
             "eval_every": int(P.generic_eval_every), "student": student_config(P).to_dict() | {"kept": keep},
             "layer_map": dict(enumerate(keep)), "loss": loss.to_dict()}
    processes = PartialState().num_processes
    extra = about | ({"processes": processes} if processes > 1 else {})
    key = cache_key(P.model_spec(), train, cfg, P.max_length, extra, kind="distil")
    final = cache_root(P.get("cache_dir")) / "checkpoints" / key
    if not (final / "mmakit.json").exists():
        train_stage(P, student, tokenizer, (train, held_out), cfg, final, about | {"key": key})
    return AutoModelForTokenClassification.from_pretrained(final).eval(), load_meta(final) | {"checkpoint": str(final)}


def train_stage(P: Params, student: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, text: tuple[Dataset, Dataset],
                cfg: TrainConfig, final: Path, about: dict) -> None:
    """Run the stage and save the student at `final` with `about` and what the run did. Its
    encoder alone trains (the head stays as drawn), against the pretrained encoder run on the fly
    (`TaskAgnosticHook`); the held-out text is scored (under the run's precision) before the
    first step and every `generic_eval_every` steps, when the run is also checkpointed beside
    `final`, so an interrupted stage resumes with its curve."""
    train, held_out = text
    teacher, _ = common.fresh_model(P, seed=P.seed)  # the whole pretrained encoder (its head never runs)
    hook = TaskAgnosticHook(teacher, about["layer_map"], TaskAgnosticConfig(**about["loss"]))
    partial = final.with_name(final.name + ".partial")
    state, every = PartialState(), int(P.generic_eval_every)
    total = total_steps(len(train), cfg, state.num_processes)
    curve = HeldOutCurve(hook, held_out, tokenizer.pad_token_id, every, total,
                         partial / "held_out.json" if state.is_main_process else None, precision=cfg.precision)
    freeze_outside_encoder(student)
    if not curve.scored(0):
        curve.score(0, student)
    log = fine_tune(student, train, cfg, tokenizer.pad_token_id, hooks=[hook, curve], checkpoint_dir=partial,
                    checkpoint_every=every, device=P.get("device") or "auto",
                    desc=f"task-agnostic L{len(about['layer_map'])} {','.join(about['langs'])} seed {P.seed}")
    meta = about | {"train": cfg.to_dict(), "steps": log.steps, "passes": round(log.sentences / len(train), 3),
                    "wall_s": round(log.seconds, 1), "sentences_per_s": round(log.sentences_per_s, 1),
                    "precision": log.precision, "device": log.device, "processes": log.processes,
                    "curve": stage_curve(curve.points, log.losses), "provenance": provenance.run_environment()}
    if state.is_main_process:
        save_atomically(student, tokenizer, final, meta)
        shutil.rmtree(partial, ignore_errors=True)
    state.wait_for_everyone()


def run_name(P: Params, keep: list[int]) -> str:
    """`run_name`, else <model>-L<layers kept>[-<choice>][-generic_<langs>]-<kd|kd-hid|ce>[-unlab_<langs>][-stage<n>][-steps<n>]-s<seed>,
    e.g. me5-small-L6-kd-s42 or me5-small-L6-generic_en_es_nl_de_fr-kd-s42 (generic: after the
    task-agnostic stage on those languages' generic text; kd-hid: with intermediate-layer
    matching; unlab: with unlabelled sentences; stage: a stage of n steps, not the profile's),
    or <student_model>-<kd|ce>-s<seed> for a hub student."""
    if P.get("run_name"):
        return P.run_name
    kd = ("kd-hid" if P.get("intermediate") else "kd") if P.teacher else "ce"
    kd += "-unlab_" + "_".join(P.unlabelled_langs) if P.get("unlabelled_langs") else ""
    if P.get("student_model"):
        return f"{P.student_model}-{kd}-s{P.seed}"
    cfg = student_config(P)
    how = "" if cfg.layers is None and cfg.choice == "alternate" else (
        f"-{cfg.choice}" if cfg.layers is None else "-layers" + "_".join(map(str, keep)))
    stage = "-generic_" + "_".join(generic_langs(P)) if generic_langs(P) else ""
    longer = (f"-stage{int(P.generic_steps)}" if generic_langs(P) and P.generic_steps != profile_value(P, "generic_steps")
              else "")
    steps = f"-steps{int(P.student_steps)}" if P.get("student_steps") else ""
    return f"{P.model}-L{len(keep)}{how}{stage}-{kd}{longer}{steps}-s{P.seed}"


def distil(P: Params) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(student, tokenizer, meta): the run's student, after the task-agnostic stage when
    `generic_langs` asks for it, fine-tuned on English with or without the teacher, loaded from
    the cache when this exact run was done before. `meta` is the cache's metadata plus the
    student's layers, the teacher's key, the teacher-logit bookkeeping and the stage's metadata
    (`task_agnostic`, None without a stage)."""
    kd = kd_config(P)
    student, tokenizer, keep = make_run_student(P)
    stage = None
    if generic_langs(P):
        student, stage = task_agnostic_student(P, student, tokenizer, keep)
    sentences = training_sentences(P)
    train = tokenize_dataset(sentences, tokenizer, P.max_length)
    cfg = steps_config(P, int(P.student_steps), len(train)) if P.get("student_steps") else common.train_config(P)
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
    if stage:
        extra["task_agnostic"] = stage["key"]
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
            "checkpoint": str(folder), "task_agnostic": stage}
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
            "generic_langs": generic_langs(P),
            "teacher_model": (P.get("teacher_model") or P.model) if P.teacher else None,
            "hardness": kd.hardness if P.teacher else None, "temperature": kd.temperature if P.teacher else None,
            "intermediate": kd.intermediate_weight or None, "student_steps": P.get("student_steps"),
            "seed": P.seed}


def seed_run(name: str) -> str:
    """The name of the seed aggregate a run's record belongs to (its name without -s<seed>)."""
    return name.rsplit("-s", 1)[0]


def run(P: Params) -> dict:
    """Distil (or load) the run's student, score it on all six sets, time it beside the dense
    baseline and write its record under 04_distillation/<run name> (with the task-agnostic
    stage's metadata and loss curve as `task_agnostic`); unless `run_name` names it, the seed
    aggregate <run name without -s<seed>> is refreshed."""
    clock = common.RunClock()
    model, tokenizer, meta = distil(P)
    stage = meta.pop("task_agnostic")
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
        dense_layers=dense.config.num_hidden_layers, task_agnostic=stage,
    ))
    if not P.get("run_name"):
        common.write_seed_aggregate(P, seed_run(name))
    return record
