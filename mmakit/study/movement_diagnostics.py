"""Why movement pruning fails from 03's converged fine-tuned baseline, measured on it: the
movement scores accumulated over English mini-batches at the baseline (the scores SparseML's
modifier, and 03's `movement_scores: accumulated`, gather there), their sign against each
weight's importance, and what one per-tensor cut by them and by their controls removes and
costs (dev F1 without retraining). benchmarks/movement_diagnostics.py writes the result for the
03 report.
"""
from __future__ import annotations

import copy
import json
from pathlib import Path

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.data import LANGUAGES
from mmakit.core.evaluation import torch_logits
from mmakit.study import common
from mmakit.study.params import Params
from mmakit.study.records import results_root
from mmakit.techniques.pruning import diagnostics
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks
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
    weights = prunable_weights(dense, P.prune_scope)
    masks = Masks(weights, selection="per_tensor")
    source = GradientSource(train, tokenizer.pad_token_id, batches, int(P.grad_batch), P.seed)
    found = diagnostics.moments(dense, masks, source)
    importance = diagnostics.moments(dense, masks, source, IMPORTANCE_ROUND).importance(weights)
    suite = common.curve_suite(P, tokenizer, seed=P.get("baseline_seed") or P.seed)
    keys = [(lang, "dev") for lang in LANGUAGES]

    def dev_f1(model) -> dict:
        return {lang: s["dev"] for lang, s in suite.evaluate(torch_logits(model), keys)["f1"].items()}

    criteria = {}
    for name, scores in diagnostics.control_scores(found.move, weights, P.seed).items():
        model = copy.deepcopy(dense)
        pruned = diagnostics.cut(prunable_weights(model, P.prune_scope), scores, sparsity)
        pruned.apply()
        criteria[name] = {"top_removed": diagnostics.top_removed(pruned, importance, top), "f1": dev_f1(model)}
    return {"profile": P.profile, "model": P.model, "baseline": base["key"], "batches": found.n,
            "grad_batch": int(P.grad_batch), "sparsity": sparsity, "top": top, "dense_f1": dev_f1(dense),
            "eval_samples": P.get("curve_eval_samples") or P.get("max_eval_samples"),
            "scores": diagnostics.score_signs(found.move, importance, found.snr()), "criteria": criteria}
