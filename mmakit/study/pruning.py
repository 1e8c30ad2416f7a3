"""The 03_obs experiment: prune the cached fine-tuned baseline gradually (magnitude, movement or
OBS) or one-shot, score it, export the dense and the sparse graph and time them together in
both runtimes, and write the result records.

A gradual run is cached like a baseline (key: baseline, training data, training and pruning
settings), so re-running the notebook to redraw tables and figures does not prune again.
"""
from __future__ import annotations

import copy
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import onnx
import torch
from onnx import numpy_helper
from transformers import (
    AutoModelForTokenClassification,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.alignment import IGNORE, tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import LANGUAGES, load_split
from mmakit.core.evaluation import mls, torch_logits
from mmakit.core.paths import cache_root
from mmakit.runtime import bench, export
from mmakit.study import common, provenance, speed
from mmakit.study.cache import cache_key, load_meta, save_atomically
from mmakit.study.params import Params
from mmakit.study.records import make_record, now, write_record
from mmakit.techniques.pruning.config import PruningConfig, make_pruner
from mmakit.techniques.pruning.gradual import CurveFn, gradual_prune, one_shot

NOTEBOOK = "03_obs"
DENSE = "dense"
LOSS_SENTENCES = 256  # English dev sentences of the one-shot loss


def pruning_config(P: Params) -> PruningConfig:
    """The run's pruning settings from its parameters."""
    return PruningConfig(
        method=P.method, sparsity=float(P.sparsity), initial_sparsity=float(P.initial_sparsity), schedule=P.schedule,
        pruning_steps=int(P.pruning_steps), warmup_steps=int(P.warmup_steps), prune_interval=int(P.prune_interval),
        final_steps=int(P.final_steps), group_size=int(P.group_size), scope=P.prune_scope, num_grads=int(P.num_grads),
        grad_batch=int(P.grad_batch), obs_block_size=int(P.obs_block_size), obs_damp=float(P.obs_damp),
        obs_chunk_blocks=int(P.obs_chunk_blocks),
    )


def run_name(P: Params) -> str:
    """The record's name: `run_name`, else <model>-<method>-<percent>-<schedule>[-4block][-kd]."""
    if P.get("run_name"):
        return P.run_name
    name = f"{P.model}-{P.method}-{round(100 * P.sparsity)}-{P.schedule}"
    return name + ("-4block" if int(P.group_size) == 4 else "") + ("-kd" if P.get("kd") else "")


def curve_function(P: Params, tokenizer: PreTrainedTokenizerBase) -> CurveFn:
    """Dev F1 per language on `curve_eval_samples` sentences per language."""
    suite = common.curve_suite(P, tokenizer)
    return lambda model: {lang: s["dev"] for lang, s in suite.evaluate(torch_logits(model))["f1"].items()}


def prune(P: Params) -> tuple[PreTrainedModel, PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """(pruned, dense, tokenizer, meta): the fine-tuned baseline pruned by the run's settings,
    loaded from the cache when this exact run was done before. `meta` holds the curve, the
    per-step statistics (OBS seconds and memory), the sparsity report and the training log."""
    dense, tokenizer, base = common.fine_tuned(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    cfg = pruning_config(P)
    # the learning rate restarts at every pruning step (cyclic), so no warm-up ramp on top
    train_cfg = common.train_config(P, lr=float(P.get("prune_lr") or P.lr), warmup_ratio=0.0)
    kd = {"temperature": float(P.temperature), "hardness": float(P.hardness)} if P.get("kd") else None
    extra = {"pruning": cfg.to_dict(), "baseline": base["key"], "kd": kd, "curve_eval_samples": P.get("curve_eval_samples")}
    key = cache_key(P.model_spec(), train, train_cfg, P.max_length, extra, kind="prune")
    folder = cache_root(P.get("cache_dir")) / "pruned" / key
    if not (folder / "mmakit.json").exists():
        model = copy.deepcopy(dense)
        log = gradual_prune(model, train, tokenizer.pad_token_id, train_cfg, cfg, teacher=dense if kd else None,
                            **(kd or {}), curve_fn=curve_function(P, tokenizer))
        meta = {"key": key, "baseline": base, "pruning": cfg.to_dict(), "kd": kd, "curve": log.curve,
                "steps": log.steps, "sparsity": log.sparsity, "training": log.training,
                "provenance": provenance.run_environment()}
        save_atomically(model, tokenizer, folder, meta)
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    return model, dense, tokenizer, load_meta(folder)


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


def technique(P: Params, mode: str, method: str, sparsity: float) -> dict:
    out = {"method": method, "sparsity": sparsity, "mode": mode, "group_size": int(P.group_size)}
    if mode == "gradual":
        out |= {"schedule": P.schedule, "initial_sparsity": float(P.initial_sparsity),
                "pruning_steps": int(P.pruning_steps), "kd": bool(P.get("kd"))}
    return out


def run_gradual(P: Params) -> dict:
    """Gradual pruning to `sparsity`: score all six sets, time dense vs pruned, write the record."""
    clock = common.RunClock()
    model, dense, tokenizer, meta = prune(P)
    scored = common.score(P, common.eval_suite(P, tokenizer), torch_logits(model))
    dense_graph = Path(meta["baseline"]["checkpoint"]) / "model.onnx"  # written by 01_baselines, if it ran
    speed = deployed(P, {DENSE: dense, "pruned": model}, tokenizer, {DENSE: dense_graph})
    return common.finish(P, common.result_record(
        P, run_name(P), technique(P, "gradual", P.method, float(P.sparsity)), scored, clock,
        throughput=speed["throughput"], sizes=speed["sizes"]["pruned"], dense_sizes=speed["sizes"][DENSE],
        onnx_zeros=speed["onnx_zeros"], curve=meta["curve"], sparsity=meta["sparsity"], pruning_steps=meta["steps"],
        training=meta["training"], baseline=meta["baseline"], cache_key=meta["key"],
    ))


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


def run_one_shot(P: Params) -> list[dict]:
    """Prune the dense baseline once to each of `one_shot_sparsities` by each of
    `one_shot_methods`, without retraining; dev F1 per language and English loss; one record each."""
    dense, tokenizer, base = common.fine_tuned(P)
    suite = common.eval_suite(P, tokenizer)
    keys = [(lang, "dev") for lang in LANGUAGES]
    dense_f1 = suite.evaluate(torch_logits(dense), keys)["f1"]
    dense_loss = english_loss(dense, tokenizer, P)
    ref_name, ref = common.reference_f1(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    records = []
    for method in P.one_shot_methods:
        for sparsity in P.one_shot_sparsities:
            started, t0 = now(), time.perf_counter()
            cfg = replace(pruning_config(P), method=method, sparsity=float(sparsity), initial_sparsity=float(sparsity))
            model = copy.deepcopy(dense)
            masks, stats = one_shot(model, make_pruner(cfg, train, tokenizer.pad_token_id, P.seed), cfg.sparsity, cfg.scope, cfg.group_size)
            f1 = suite.evaluate(torch_logits(model), keys)["f1"]
            record = make_record(
                notebook=NOTEBOOK, run=f"{P.get('run_name') or P.model}-oneshot-{method}-{round(100 * cfg.sparsity)}",
                profile=P.profile, model=P.model_spec().source, technique=technique(P, "one_shot", method, cfg.sparsity),
                params=dict(P), f1=f1, mls=mls(f1, ref), mls_reference=ref_name, loss=english_loss(model, tokenizer, P),
                dense_f1=dense_f1, dense_loss=dense_loss, sparsity=masks.report(), pruning_steps=[stats],
                baseline=base, started=started, seconds=time.perf_counter() - t0,
            )
            write_record(record, P.get("results_dir"))
            records.append(record)
    return records


def run(P: Params) -> list[dict]:
    """The run the parameters ask for: gradual pruning (one record) or the one-shot comparison."""
    return run_one_shot(P) if P.prune_mode == "one_shot" else [run_gradual(P)]
