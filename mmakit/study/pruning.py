"""The 03_obs experiment: prune the cached fine-tuned baseline gradually (magnitude, movement,
OBS, or random as the control) with distillation from the dense baseline, or one-shot; score it,
export the dense and the sparse graph and time them together in both runtimes, and write the
result records (per seed, and the seed aggregate).

`prune_start: pretrained` runs Sanh et al.'s regime instead: the pre-trained encoder with a new
head learns the task (KD from the dense baseline) while it is pruned, under the learning-rate
schedule of a fine-tuning run (warm-up, linear decay, no rewinds); with `movement_scores:
trained` movement learns its scores as Sanh et al. define them, and magnitude and random run
in exactly that regime as its controls.

A gradual run is cached like a baseline (key: baseline, training data, training and pruning
settings, KD), so re-running the notebook to redraw tables and figures does not prune again.
One-shot mode builds one Fisher per damp from the dense model and prunes a copy to every
sparsity with it: the damp sweep and the one-shot curve of the schedule come from one run.
"""
from __future__ import annotations

import copy
import tempfile
import time
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path

import onnx
import torch
from datasets import Dataset
from onnx import numpy_helper
from transformers import (
    AutoModelForTokenClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.alignment import IGNORE, tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import LANGUAGES, load_split
from mmakit.core.evaluation import EvalSuite, mls, torch_logits
from mmakit.core.paths import cache_root
from mmakit.runtime import bench, export
from mmakit.study import common, provenance, speed
from mmakit.study.cache import cache_key, load_meta, save_atomically
from mmakit.study.params import Params
from mmakit.study.records import make_record, now, read_records, write_record
from mmakit.study.teacher import teacher_logits
from mmakit.techniques.distillation import KDConfig, WordKDHook
from mmakit.techniques.pruning.config import PruningConfig, make_pruner
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.gradual import CurveFn, gradual_prune, one_shot
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.obs import fisher_inverse, fisher_stats, obs_prune
from mmakit.techniques.pruning.scope import prunable_weights

NOTEBOOK = "03_obs"
DENSE = "dense"
LOSS_SENTENCES = 256  # English dev sentences of the one-shot loss
# pruning settings left out of the cache key at these values, so runs made before they were
# settings keep their keys
KEY_NEUTRAL = {"selection": "global", "movement_scores": "accumulated", "lr_rewind": True}


def pruning_config(P: Params) -> PruningConfig:
    """The run's pruning settings from its parameters."""
    return PruningConfig(
        method=P.method, sparsity=float(P.sparsity), initial_sparsity=float(P.initial_sparsity), schedule=P.schedule,
        pruning_steps=int(P.pruning_steps), warmup_steps=int(P.warmup_steps), prune_interval=int(P.prune_interval),
        final_steps=int(P.final_steps), group_size=int(P.group_size), selection=P.get("selection") or "global",
        scope=P.prune_scope, num_grads=int(P.num_grads),
        grad_batch=int(P.grad_batch), obs_block_size=int(P.obs_block_size), obs_damp=float(P.obs_damp),
        obs_chunk_blocks=int(P.obs_chunk_blocks), obs_build=P.get("obs_build") or "sherman-morrison",
        movement_scores=movement_scores(P), lr_rewind=not from_pretrained(P),
    )


def movement_scores(P: Params) -> str:
    """Movement's variant (`movement_scores`): "accumulated" (SparseML's, the default) or
    "trained" (Sanh et al.'s)."""
    return P.get("movement_scores") or "accumulated"


def key_settings(cfg: PruningConfig) -> dict:
    """`cfg`'s settings as the cache key holds them: those at their KEY_NEUTRAL value left out."""
    return {k: v for k, v in cfg.to_dict().items() if k not in KEY_NEUTRAL or KEY_NEUTRAL[k] != v}


def kd_config(P: Params) -> KDConfig | None:
    """Distillation from the dense baseline while pruning (`kd`), or None."""
    return KDConfig(hardness=float(P.hardness), temperature=float(P.temperature)) if P.get("kd") else None


def selection_suffix(P: Params) -> str:
    """"-pertensor" for runs that prune each tensor to the target on its own, else ""."""
    return "-pertensor" if P.get("selection") == "per_tensor" else ""


def from_pretrained(P: Params) -> bool:
    """Whether the run prunes while fine-tuning the pre-trained encoder (`prune_start: pretrained`):
    Sanh et al.'s regime, a fine-tuning run (one warm-up, linear decay, no rewinds) that prunes."""
    return P.get("prune_start") == "pretrained"


def trained_scores(P: Params) -> bool:
    """Whether the run is movement with Sanh et al.'s trained scores."""
    return P.method == "movement" and movement_scores(P) == "trained"


def aggregate_name(P: Params) -> str:
    """<model>-<method>-<percent>-<schedule>[-pertensor][-4block][-nokd][-pretrained][-trained][-<variant>]:
    the seed aggregate's name (`trained`: movement's trained scores; `variant` labels runs that
    change other settings, e.g. the schedule)."""
    name = f"{P.model}-{P.method}-{round(100 * P.sparsity)}-{P.schedule}{selection_suffix(P)}"
    name += ("-4block" if int(P.group_size) == 4 else "") + ("" if P.get("kd") else "-nokd")
    name += ("-pretrained" if from_pretrained(P) else "") + ("-trained" if trained_scores(P) else "")
    return name + (f"-{P.variant}" if P.get("variant") else "")


def run_name(P: Params) -> str:
    """The record's name: `run_name`, else the aggregate's name with -s<seed>, e.g. me5-small-obs-80-cubic-s42."""
    return P.get("run_name") or f"{aggregate_name(P)}-s{P.seed}"


def curve_suite(P: Params, tokenizer: PreTrainedTokenizerBase) -> EvalSuite:
    """The dev subsets of every curve point and one-shot score: drawn with the baseline's seed,
    so runs of every pruning seed are scored on the same sentences."""
    return common.curve_suite(P, tokenizer, seed=P.get("baseline_seed") or P.seed)


def curve_function(P: Params, tokenizer: PreTrainedTokenizerBase) -> CurveFn:
    """Dev F1 per language on `curve_eval_samples` sentences per language."""
    suite = curve_suite(P, tokenizer)
    return lambda model: {lang: s["dev"] for lang, s in suite.evaluate(torch_logits(model))["f1"].items()}


def prune(P: Params, start: tuple[PreTrainedModel, dict] | None = None
          ) -> tuple[PreTrainedModel, PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(pruned, dense, tokenizer, meta): the fine-tuned baseline, or `start` (a model with the
    baseline's tokenizer and the cache metadata that names it, e.g. a distilled student for
    06), pruned by the run's settings with KD from the dense baseline; loaded from the cache
    when this exact run was done before. `meta` holds the curve, the per-step statistics (OBS
    seconds and memory), the sparsity report and the training log."""
    dense, tokenizer, base = common.fine_tuned(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    cfg = pruning_config(P)
    # a cyclic learning rate restarts at every pruning step, so no warm-up ramp on top; without
    # rewinds the run warms up as the baseline's fine-tuning does
    warmup = 0.0 if cfg.lr_rewind else float(P.warmup_ratio)
    train_cfg = common.train_config(P, lr=float(P.get("prune_lr") or P.lr), warmup_ratio=warmup)
    kd = kd_config(P)
    kd_meta = kd.to_dict() if kd else None
    extra = {"pruning": key_settings(cfg), "baseline": base["key"], "kd": kd_meta,
             "curve_eval_samples": P.get("curve_eval_samples")}
    if start is not None:  # only then, so the keys of 03's runs from the baseline stay as they were
        extra["start"] = start[1]["key"]
    key = cache_key(P.model_spec(), train, train_cfg, P.max_length, extra, kind="prune")
    folder = cache_root(P.get("cache_dir")) / "pruned" / key
    if not (folder / "mmakit.json").exists():
        model = copy.deepcopy(dense if start is None else start[0])
        hooks, logits_meta = [], None
        if kd:  # the dense baseline's word-level logits, computed once per teacher and shared with 04
            words, logits_meta = teacher_logits(P, common.english_train(P), dense, tokenizer, base["key"],
                                                kd.teacher_batch)
            hooks = [WordKDHook(words, train, kd)]
        log = gradual_prune(model, train, tokenizer.pad_token_id, train_cfg, cfg, hooks=hooks,
                            curve_fn=curve_function(P, tokenizer))
        meta = {"key": key, "baseline": base, "start": start[1] if start else None, "pruning": cfg.to_dict(),
                "kd": kd_meta, "teacher_logits": logits_meta, "curve": log.curve, "steps": log.steps,
                "sparsity": log.sparsity, "training": log.training, "provenance": provenance.run_environment()}
        save_atomically(model, tokenizer, folder, meta)
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    return model, dense, tokenizer, load_meta(folder)


def start_model(P: Params) -> tuple[PreTrainedModel, dict] | None:
    """What a gradual run prunes: None for the fine-tuned baseline (03's default, as MMA and
    oBERT prune), or for `prune_start: pretrained` the pre-trained encoder with a new head drawn
    with the run's seed, pruned while it learns the task (as Sanh et al. prune with movement)."""
    if not from_pretrained(P):
        return None
    model, _ = common.fresh_model(P, seed=P.seed)
    return model, {"key": "pretrained", "source": P.model_spec().source}


def onnx_zeros(path: str | Path) -> int:
    """Exact zeros among the float initializers of an ONNX graph: pruned weights survive export."""
    graph = onnx.load(str(path)).graph
    return sum(int((numpy_helper.to_array(t) == 0).sum()) for t in graph.initializer if t.data_type == onnx.TensorProto.FLOAT)


def deployed(P: Params, models: dict[str, PreTrainedModel], tokenizer: PreTrainedTokenizerBase,
             exported: dict[str, Path] | None = None) -> dict:
    """Export every model (or take its graph from `exported` where that file exists), time all
    graphs together (interleaved) in the run's runtimes, with speedups over the dense graph in
    onnxruntime: {"throughput", "sizes", "onnx_zeros"}."""
    with tempfile.TemporaryDirectory(prefix="03_obs-") as tmp:
        paths = {name: p for name, p in (exported or {}).items() if Path(p).exists()}
        paths |= {name: export.export_onnx(m, tokenizer, Path(tmp) / f"{name}.onnx") for name, m in models.items()
                  if name not in paths}
        rows = bench.speedups(speed.benchmark(paths, tokenizer, P), DENSE)
        sizes = {name: export.model_sizes(models[name], p) for name, p in paths.items()}
        zeros = {name: onnx_zeros(p) for name, p in paths.items()}
    return {"throughput": rows, "sizes": sizes, "onnx_zeros": zeros}


def technique(P: Params, mode: str, method: str, sparsity: float, damp: float | None = None) -> dict:
    """What was done: method, sparsity, mode, group size, selection and seed; movement's scores
    (accumulated or trained); the schedule, KD, start and learning-rate rewinds of a gradual run;
    m, B and the damp wherever OBS ran."""
    out = {"method": method, "sparsity": sparsity, "mode": mode, "group_size": int(P.group_size),
           "selection": P.get("selection") or "global", "seed": P.seed}
    if method == "movement":
        out["scores"] = movement_scores(P)
    if method == "obs":
        out |= {"num_grads": int(P.num_grads), "block_size": int(P.obs_block_size),
                "damp": float(P.obs_damp) if damp is None else damp}
    if mode == "gradual":
        out |= {"schedule": P.schedule, "initial_sparsity": float(P.initial_sparsity),
                "pruning_steps": int(P.pruning_steps), "kd": bool(P.get("kd")),
                "start": "pretrained" if from_pretrained(P) else "baseline",
                "lr_rewind": not from_pretrained(P)}
    if P.get("variant"):
        out["variant"] = P.variant
    return out


def run_gradual(P: Params) -> dict:
    """Gradual pruning to `sparsity`: score all six sets, time dense vs pruned, write the record."""
    clock = common.RunClock()
    model, dense, tokenizer, meta = prune(P, start_model(P))
    scored = common.score(P, common.eval_suite(P, tokenizer), torch_logits(model))
    dense_graph = Path(meta["baseline"]["checkpoint"]) / "model.onnx"  # written by 01_baselines, if it ran
    speed = deployed(P, {DENSE: dense, "pruned": model}, tokenizer, {DENSE: dense_graph})
    record = common.finish(P, common.result_record(
        P, run_name(P), technique(P, "gradual", P.method, float(P.sparsity)), scored, clock,
        throughput=speed["throughput"], sizes=speed["sizes"]["pruned"], dense_sizes=speed["sizes"][DENSE],
        onnx_zeros=speed["onnx_zeros"], curve=meta["curve"], sparsity=meta["sparsity"], pruning_steps=meta["steps"],
        training=meta["training"], teacher_logits=meta.get("teacher_logits"), baseline=meta["baseline"],
        cache_key=meta["key"],
    ))
    if not P.get("run_name"):
        common.write_seed_aggregate(P, aggregate_name(P))
    return record


def english_loss(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, P: Params) -> float:
    """Mean cross-entropy per labelled word on the first English dev sentences: the loss that
    one-shot pruning perturbs and OBS's quadratic model approximates."""
    data = tokenize_dataset(load_split("en", "dev", P.get("data_dir"), LOSS_SENTENCES), tokenizer, P.max_length)
    total, words = 0.0, 0
    with torch.inference_mode():
        for batch in iterate(data, sorted_batches([len(x) for x in data["input_ids"]], 32), tokenizer.pad_token_id):
            n = int((batch["labels"] != IGNORE).sum())
            total += float(model(**batch).loss) * n
            words += n
    return total / words


def one_shot_models(P: Params, dense: PreTrainedModel, train: Dataset, pad_id: int, method: str,
                    damp: float | None) -> Iterator[tuple[float, PreTrainedModel, Masks, dict]]:
    """Yield (sparsity, pruned copy of `dense`, its masks, step statistics) for every `one_shot_sparsities`;
    OBS builds its Fisher once (damp `damp`) from the dense model and prunes every copy with it."""
    cfg = replace(pruning_config(P), method=method)
    if method != "obs":
        for sparsity in P.one_shot_sparsities:
            model = copy.deepcopy(dense)
            masks, stats = one_shot(model, make_pruner(cfg, train, pad_id, P.seed), float(sparsity), cfg.scope,
                                    cfg.group_size, cfg.selection)
            yield float(sparsity), model, masks, stats
        return
    t0 = time.perf_counter()
    source = GradientSource(train, pad_id, cfg.num_grads, cfg.grad_batch, P.seed)
    dense_masks = Masks(prunable_weights(dense, cfg.scope), cfg.group_size, cfg.selection)
    fisher = fisher_inverse(dense, dense_masks, source, 0, cfg.obs_block_size, damp, cfg.obs_chunk_blocks, cfg.obs_build)
    shared = fisher_stats(fisher, dense_masks) | {"fisher_seconds": time.perf_counter() - t0, "grad_batch": cfg.grad_batch}
    for sparsity in P.one_shot_sparsities:
        model, t1 = copy.deepcopy(dense), time.perf_counter()
        masks = Masks(prunable_weights(model, cfg.scope), cfg.group_size, cfg.selection)
        new = obs_prune(fisher, masks, float(sparsity))
        yield float(sparsity), model, masks, shared | {"newly_pruned_groups": new, "prune_seconds": time.perf_counter() - t1}


def one_shot_name(P: Params, method: str, sparsity: float, damp: float | None) -> str:
    """e.g. me5-small-oneshot-obs-70-damp1e-06-s42 or me5-small-oneshot-magnitude-70-s42."""
    name = f"{P.get('run_name') or P.model}-oneshot-{method}-{round(100 * sparsity)}{selection_suffix(P)}"
    return name + (f"-damp{damp:g}" if damp is not None else "") + f"-s{P.seed}"


def run_one_shot(P: Params) -> list[dict]:
    """Prune the dense baseline once to each of `one_shot_sparsities` by each of
    `one_shot_methods` (OBS at each of `one_shot_damps`), without retraining; dev F1 per
    language (on the curve's dev subsets of `curve_eval_samples` sentences) and English loss;
    one record each."""
    dense, tokenizer, base = common.fine_tuned(P)
    suite = curve_suite(P, tokenizer)
    keys = [(lang, "dev") for lang in LANGUAGES]
    dense_f1 = suite.evaluate(torch_logits(dense), keys)["f1"]
    dense_loss = english_loss(dense, tokenizer, P)
    ref_name, ref = common.reference_f1(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    records = []
    for method in P.one_shot_methods:
        damps = [float(d) for d in (P.get("one_shot_damps") or [P.obs_damp])] if method == "obs" else [None]
        for damp in damps:
            started, t0 = now(), time.perf_counter()
            for sparsity, model, masks, stats in one_shot_models(P, dense, train, tokenizer.pad_token_id, method, damp):
                f1 = suite.evaluate(torch_logits(model), keys)["f1"]
                record = make_record(
                    notebook=NOTEBOOK, run=one_shot_name(P, method, sparsity, damp), profile=P.profile,
                    model=P.model_spec().source, technique=technique(P, "one_shot", method, sparsity, damp),
                    params=dict(P), f1=f1, mls=mls(f1, ref), mls_reference=ref_name,
                    loss=english_loss(model, tokenizer, P), dense_f1=dense_f1, dense_loss=dense_loss,
                    eval_samples=P.get("curve_eval_samples"),
                    sparsity=masks.report(), pruning_steps=[stats],
                    baseline=base, started=started, seconds=time.perf_counter() - t0,
                )
                write_record(record, P.get("results_dir"))
                records.append(record)
                started, t0 = now(), time.perf_counter()
    return records


def dense_f1(P: Params) -> dict | None:
    """F1 of the dense baseline the runs prune: 01_baselines' record of `baseline_seed` (None before it ran)."""
    name = f"{P.model}-s{P.get('baseline_seed') or P.seed}"
    found = [r for r in read_records(P.get("results_dir"), "01_baselines") if r["run"] == name]
    return found[0]["f1"] if found else None


def run(P: Params) -> list[dict]:
    """The run the parameters ask for: gradual pruning (one record) or the one-shot comparison."""
    return run_one_shot(P) if P.prune_mode == "one_shot" else [run_gradual(P)]
