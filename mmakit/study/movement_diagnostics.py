"""Why movement pruning fails, measured where 03 runs it: from the converged fine-tuned baseline
(`diagnose`: the movement scores accumulated over English mini-batches there, as SparseML's
modifier and 03's `movement_scores: accumulated` gather them) and in Sanh et al.'s regime
(`diagnose_trained`: scores trained through the straight-through mask while the pre-trained
encoder learns the task, before any cut). For each: the scores' sign and size against each
weight's importance, and what one per-tensor cut by them and by their controls removes and costs
(dev F1 without retraining). benchmarks/movement_diagnostics.py writes the result for the 03
report.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

import torch
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.data import LANGUAGES
from mmakit.core.evaluation import torch_logits
from mmakit.core.train import fine_tune
from mmakit.study import common
from mmakit.study.params import Params
from mmakit.study.records import results_root
from mmakit.techniques.pruning import diagnostics, straight_through
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.schedule import epochs_for_steps
from mmakit.techniques.pruning.scope import prunable_weights

IMPORTANCE_ROUND = 1  # the gradient batches of the importance: others than the scores' (round 0)
RESULT = Path("bench") / "movement_diagnostics.json"
COMMAND = "MMAKIT_DATA_DIR=../shared/data .venv/bin/python benchmarks/movement_diagnostics.py --profile {profile}"


def load(profile: str, results_dir: str | Path | None = None) -> dict | None:
    """The benchmark's result for `profile` under the results folder, or None before it ran."""
    path = results_root(results_dir) / RESULT
    found = json.loads(path.read_text()) if path.exists() else None
    return found if found and found.get("profile") == profile else None


def diagnose(P: Params, batches: int, sparsity: float = 0.1, top: float = 0.01) -> dict:
    """Movement scores from `batches` mini-batches of `grad_batch` English training sentences at
    the fine-tuned baseline; importance w^2 E[g^2] from as many other mini-batches; for movement
    and each control (diagnostics.control_scores): the share of the `top` most important weights
    a per-tensor cut to `sparsity` removes, and dev F1 per language on the curve's dev subsets
    after that cut, without retraining."""
    dense, tokenizer, base = common.fine_tuned(P)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    masks = Masks(prunable_weights(dense, P.prune_scope), selection="per_tensor")
    source = GradientSource(train, tokenizer.pad_token_id, batches, int(P.grad_batch), P.seed)
    found = diagnostics.moments(dense, masks, source)
    importance = diagnostics.moments(dense, masks, source, IMPORTANCE_ROUND).importance(masks.weights)
    cuts = _cuts(P, dense, tokenizer, found.move, importance, sparsity, top)
    return {"profile": P.profile, "model": P.model, "baseline": base["key"], "batches": found.n,
            "grad_batch": int(P.grad_batch), "sparsity": sparsity, "top": top,
            "eval_samples": P.get("curve_eval_samples") or P.get("max_eval_samples"),
            "scores": diagnostics.score_signs(found.move, importance, found.snr()), **cuts}


def diagnose_trained(P: Params, steps: int, batches: int, sparsity: float = 0.1, top: float = 0.01) -> dict:
    """Sanh et al.'s regime before its first cut: the pre-trained encoder with a new head (the
    run's seed) fine-tuned on English for `steps` optimizer steps (the profile's lr, warm-up and
    linear decay over those steps) with movement scores trained through the straight-through
    mask and nothing pruned; then, as `diagnose` does, the scores' sign and size against
    importance (from `batches` mini-batches) and one per-tensor cut by them and their controls."""
    model, tokenizer = common.fresh_model(P, seed=P.seed)
    train = tokenize_dataset(common.english_train(P), tokenizer, P.max_length)
    masks = Masks(prunable_weights(model, P.prune_scope), selection="per_tensor")
    attached = straight_through.attach(model, masks)
    cfg = common.train_config(P, epochs=epochs_for_steps(steps, len(train), int(P.batch_size)))
    trained = fine_tune(model, train, cfg, tokenizer.pad_token_id, desc="train with movement scores")
    scores = {n: s.view_as(masks.weights[n]) for n, s in straight_through.scores(attached).items()}
    straight_through.fix(model, masks)  # nothing pruned yet: the plain model (same parameters), scores kept above
    source = GradientSource(train, tokenizer.pad_token_id, batches, int(P.grad_batch), P.seed)
    importance = diagnostics.moments(model, masks, source, IMPORTANCE_ROUND).importance(masks.weights)
    cuts = _cuts(P, model.eval(), tokenizer, scores, importance, sparsity, top)
    return {"steps": trained.steps, "lr": cfg.lr, "batch_size": cfg.batch_size, "batches": batches,
            "scores": diagnostics.score_signs(scores, importance), **cuts}


def _cuts(P: Params, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, scores: dict[str, torch.Tensor],
          importance: dict[str, torch.Tensor], sparsity: float, top: float) -> dict:
    """Dev F1 of `model` uncut ("dense_f1") and, per criterion of diagnostics.control_scores, after
    one per-tensor cut of a copy to `sparsity`: F1, the share of the `top` most important weights
    removed and the share of rows and columns cut more than twice as deep ("criteria")."""
    suite = common.curve_suite(P, tokenizer, seed=P.get("baseline_seed") or P.seed)
    keys = [(lang, "dev") for lang in LANGUAGES]

    def dev_f1(m: PreTrainedModel) -> dict:
        return {lang: s["dev"] for lang, s in suite.evaluate(torch_logits(m), keys)["f1"].items()}

    criteria = {}
    for name, ranking in diagnostics.control_scores(scores, prunable_weights(model, P.prune_scope), P.seed).items():
        copied = copy.deepcopy(model)
        pruned = diagnostics.cut(prunable_weights(copied, P.prune_scope), ranking, sparsity)
        pruned.apply()
        criteria[name] = {"top_removed": diagnostics.top_removed(pruned, importance, top),
                          "lines_over_2x": diagnostics.lines_over(pruned, sparsity), "f1": dev_f1(copied)}
    return {"dense_f1": dev_f1(model), "criteria": criteria}
