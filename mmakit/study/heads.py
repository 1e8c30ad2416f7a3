"""The 02_heads experiment: prune the fine-tuned baseline head by head, score every iteration
on English, Spanish and Dutch dev, export and time the physically pruned graphs, and write
one result record whose `curve` holds a point per iteration.

Dev F1 along the curve uses a seeded random subset of each dev set (`curve_eval_samples`
sentences) to fit the CPU budget; the final model is scored on the full dev and test sets.
Graphs of every `bench_every`-th iteration (and the first and last) are timed at the end,
a few at a time beside the unpruned graph, so every speed ratio comes from one interleaved run.
"""
from __future__ import annotations

import tempfile
import time
from pathlib import Path

import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import sample
from mmakit.core import paper
from mmakit.core.evaluation import EvalSuite, mls, torch_logits
from mmakit.core.models import count_parameters
from mmakit.core.train import fine_tune
from mmakit.runtime import bench, export
from mmakit.study import common, speed
from mmakit.study.params import Params
from mmakit.techniques.heads.anatomy import shape
from mmakit.techniques.heads.pruner import HeadPruner, HeadPruningConfig

NOTEBOOK = "02_heads"


def pruning_config(P: Params) -> HeadPruningConfig:
    """The pruning settings of the run's parameters."""
    return HeadPruningConfig(strategy=P.strategy, heads_per_iteration=int(P.heads_per_iteration),
                         ffn_step=P.get("ffn_step"))


def run_name(P: Params) -> str:
    """The record's name: the `run_name` parameter, else <model>-<strategy>[-retrain]."""
    return P.get("run_name") or f"{P.model}-{P.strategy}" + ("-retrain" if P.get("retrain") else "")


def importance_batches(P: Params, tokenizer: PreTrainedTokenizerBase) -> list[dict[str, torch.Tensor]]:
    """Labelled English training batches for the importance scores (`importance_samples` sentences)."""
    data = tokenize_dataset(sample(common.english_train(P), P.importance_samples, P.seed), tokenizer, P.max_length)
    order = sorted_batches([len(x) for x in data["input_ids"]], P.batch_size)
    return list(iterate(data, order, tokenizer.pad_token_id))


def graph_name(iteration: int) -> str:
    """The benchmark's model name for the graph of `iteration`."""
    return f"iter-{iteration:02d}"


def _point(pruner: HeadPruner, model: PreTrainedModel, suite: EvalSuite) -> dict:
    """Shape, parameters and dev F1 per language of the model as it stands."""
    start = time.perf_counter()
    f1 = suite.evaluate(torch_logits(model))["f1"]
    return {
        "iteration": pruner.iteration, "heads_removed": pruner.heads_removed,
        "fraction_removed": round(pruner.fraction_removed, 4), "heads_per_layer": pruner.heads_per_layer,
        "kept_heads": [list(k) for k in pruner.kept], "intermediate": shape(model)["intermediate"],
        "params": count_parameters(model)["params"], "f1": {lang: s["dev"] for lang, s in f1.items()},
        "seconds": {"eval": round(time.perf_counter() - start, 2)},
    }


def _retrain(P: Params, model: PreTrainedModel, data: Dataset, pad_id: int, iteration: int) -> dict:
    """`retrain` epochs of English fine-tuning of the pruned model (the profile's settings otherwise)."""
    log = fine_tune(model, data, common.train_config(P, epochs=float(P.retrain)), pad_id,
                    desc=f"retrain after iteration {iteration}")
    return {"steps": log.steps, "seconds": round(log.seconds, 2), "final_loss": log.losses[-1]}


def _export(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, path: Path, probe: dict, point: dict) -> Path:
    """Export the model as it stands and note in `point` how faithful and how large the graph is."""
    start = time.perf_counter()
    export.export_onnx(model, tokenizer, path)
    point["onnx"] = {"max_abs_diff": export.parity(model, path, [probe]), "sizes": export.model_sizes(model, path)}
    point["seconds"]["export"] = round(time.perf_counter() - start, 2)
    return path


def run(P: Params) -> dict:
    """Prune `P.model`'s fine-tuned baseline for `P.iterations` iterations (fewer if only one
    head per layer is left) and write the record."""
    clock = common.RunClock()
    if float(P.get("retrain") or 0) < 0:
        raise ValueError(f"retrain={P.retrain!r} must be 0 (no retraining) or a positive number of epochs")
    model, tokenizer, meta = common.fine_tuned(P)
    pruner = HeadPruner(model, pruning_config(P))
    batches, suite = importance_batches(P, tokenizer), common.curve_suite(P, tokenizer)
    retrain_data = tokenize_dataset(common.english_train(P), tokenizer, P.max_length) if P.get("retrain") else None
    with tempfile.TemporaryDirectory(prefix="02_heads-") as tmp:
        curve = [_point(pruner, model, suite)]
        graphs = {graph_name(0): _export(model, tokenizer, Path(tmp) / "iter-00.onnx", batches[0], curve[0])}
        for i in tqdm(range(1, P.iterations + 1), desc=f"{P.strategy} head pruning", unit="iteration"):
            if not pruner.can_step():
                break
            start = time.perf_counter()
            step = pruner.step(batches)
            prune_seconds = round(time.perf_counter() - start, 2)
            if retrain_data is not None:
                step["retrain"] = _retrain(P, model, retrain_data, tokenizer.pad_token_id, i)
            curve.append(_point(pruner, model, suite) | step)
            curve[-1]["seconds"]["prune"] = prune_seconds
            if i % int(P.bench_every) == 0 or i == P.iterations or not pruner.can_step():
                path = Path(tmp) / f"{graph_name(i)}.onnx"
                graphs[graph_name(i)] = _export(model, tokenizer, path, batches[0], curve[-1])
        throughput = _tag(benchmark(graphs, tokenizer, P), curve)
        suite_full = common.eval_suite(P, tokenizer)
        chosen = chosen_point(P, curve, graphs, suite_full)
    final = common.score(P, suite_full, torch_logits(model))
    technique = {"method": f"heads-{P.strategy}", **pruner.cfg.to_dict(), "ffn_step": pruner.ffn_step,
                 "iterations": pruner.iteration, "retrain_epochs": float(P.get("retrain") or 0),
                 "importance_samples": P.importance_samples}
    return common.finish(P, common.result_record(
        P, run_name(P), technique, final, clock, curve=curve, throughput=throughput, sizes=curve[-1]["onnx"]["sizes"],
        heads_per_layer=pruner.heads_per_layer, baseline=meta, chosen=chosen,
    ))


def chosen_point(P: Params, curve: list[dict], graphs: dict[str, Path], suite: EvalSuite) -> dict | None:
    """The point a user would deploy: the most pruned timed iteration whose dev mls (on the
    curve's dev subsets) still reaches the paper's quality line, scored on the full dev and test
    sets from its graph; None when no timed pruned iteration reaches it. Chosen on dev, so the
    test score stays honest."""
    _, ref = common.reference_f1(P)
    line = paper.quality_line()
    over = [p for p in curve if p["iteration"] > 0 and graph_name(p["iteration"]) in graphs
            and mls({lang: {"dev": f1} for lang, f1 in p["f1"].items()}, ref).get("dev", float("-inf")) >= line]
    if not over:
        return None
    point = over[-1]
    scored = suite.evaluate(export.onnx_logits(graphs[graph_name(point["iteration"])], P.get("threads")))
    return {"iteration": point["iteration"], "heads_removed": point["heads_removed"], "graph": graph_name(point["iteration"]),
            "f1": scored["f1"], "mls": mls(scored["f1"], ref), "rule": f"most pruned timed iteration with dev mls >= {line}"}


def benchmark(graphs: dict[str, Path], tokenizer: PreTrainedTokenizerBase, P: Params) -> list[dict]:
    """Time the graphs in benchmark runs of the unpruned graph (the first) plus `bench_group`
    pruned ones: a run loads all its graphs at once (about 3 GB per me5-small graph with
    deepsparse), and every ratio is taken within one run. Rows carry their `bench_run` and
    their speedup over the unpruned graph in onnxruntime of the same run."""
    dense, *pruned = graphs
    size = int(P.bench_group)
    rows = []
    for run, start in enumerate(range(0, max(1, len(pruned)), size)):
        chunk = {name: graphs[name] for name in (dense, *pruned[start : start + size])}
        rows += [r | {"bench_run": run} for r in bench.speedups(speed.benchmark(chunk, tokenizer, P), dense)]
    return rows


def _tag(rows: list[dict], curve: list[dict]) -> list[dict]:
    """Benchmark rows with the iteration, heads removed and fraction removed of their graph."""
    by_name = {graph_name(p["iteration"]): p for p in curve}
    return [r | {k: by_name[r["model"]][k] for k in ("iteration", "heads_removed", "fraction_removed")} for r in rows]
