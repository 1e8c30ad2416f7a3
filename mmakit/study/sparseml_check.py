"""Cross-check of our OBS (oBERT) pruning against SparseML's OBSPruningModifier, the reference
implementation of oBERT, on a tiny BERT token classifier both environments build identically.

The model (2 layers, hidden 64) starts from weights drawn from its own seeded numpy generator
(not torch's global one, nor a transformers version's init order) and is fine-tuned for 450
seeded steps on a synthetic tagging task whose labels depend on the previous token, so
attention matters. Then, from the same dense weights, it is pruned one-shot at each damp to
each sparsity twice, with the same m, B, damp and the same gradient mini-batches:
  - ours: `fisher_inverse` over a `GradientSource` (its batches are recorded as they are used),
    then `obs_prune`;
  - SparseML: the recorded batches fed to its GradSampler, through a recipe with one
    OBSPruningModifier, applied one-shot in the sparseml venv (runtime/sparseml_worker.py).
Both apply the OBS weight update. The record gives, per (damp, sparsity), the overlap of the
pruned sets (|pruned by both| / |pruned by ours|, globally and per tensor), the held-out loss of
the dense model and of both pruned ones, and how far apart the two weight updates are.

Damps relative to the Fisher: an absolute damp means nothing across models, since the Fisher's
scale follows where training lands (its mean diagonal is 0.9-9e-6 for seeds 0-5 here, and
falls 9-450 fold with 150 more steps), and a fixed damp that suits one run drowns the Fisher
of another (with the former fixed damps, 1e-7 and 1e-9, other seeds read degeneracies of
0.98-1.0). So each damp is a multiple of the Fisher's mean diagonal (`fisher_scale`, from the
same m mini-batches), and the one absolute number it gives goes to both sides (the record
keeps both). Why two: the check says something about the Fisher only where the damp does not
dominate it. At 0.1 x the mean diagonal this model's degeneracy (median of damp * [F^-1]_jj)
is 0.91-0.98 for seeds 0-5 and OBS differs from magnitude pruning in 0.7-2.2% of the pruned
set; at 1e-4 it is 0.40-0.80 and OBS differs from magnitude in 2.6-11%. The gradients are
computed afresh for each damp's Fisher, from the same mini-batches (checked).

What was matched by reading SparseML 1.8.0's source (modifier_pruning_obs.py, mask_creator.py,
mask_params.py, utils/sparsification.py) is listed in CONVENTIONS and goes into the record.
"""
from __future__ import annotations

import random
import tempfile
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TypeVar

import numpy as np
import torch
from datasets import Dataset
from torch import nn
from transformers import BertConfig, BertForTokenClassification

from mmakit.core.alignment import IGNORE
from mmakit.core.batching import iterate, length_grouped_batches, sorted_batches
from mmakit.core.paths import write_json_atomic
from mmakit.runtime import sparseml_env
from mmakit.study.records import now, results_root
from mmakit.techniques.pruning import Masks, fisher_inverse, obs_prune, prunable_weights
from mmakit.techniques.pruning.gradients import GradientSource

RECORD = Path("bench") / "sparseml_obs_check.json"
PAD = 0
T = TypeVar("T")
DAMP_FORMAT = ".6e"  # how a recipe writes the damp; the absolute damp is rounded to it, so both sides get one number

CONVENTIONS = {
    "fisher": "same: F = damp I + (1/m) sum_i g_i g_i^T, F^-1 from I / damp by per-gradient Sherman-Morrison with "
              "denominator m + g^T F^-1 g (SparseML scales F^-1 g by 1/sqrt(that) and subtracts the outer product; "
              "ours batches 8 gradients per pass), float32, blocks of B consecutive weights of one flattened tensor, "
              "last block zero-padded",
    "gradients": "same: one gradient per mini-batch of the model's mean token loss (not summed over batches), "
                 "model in eval mode, each gradient multiplied by the current mask before it enters F^-1; "
                 "SparseML backpropagates into every parameter, ours only into the pruned ones (same values)",
    "saliency": "SparseML: w^2 / (2 [F^-1]_jj + eps), ours w^2 / (2 [F^-1]_jj), eps = float32 eps = 1.19e-7 "
                "(negligible against [F^-1]_jj)",
    "selection": "same with global_sparsity: true: exactly round(s * N) weights of the whole scope with the lowest "
                 "saliency (SparseML: kthvalue threshold, ties resolved in flattened order), already pruned ones at "
                 "-inf",
    "update": "same: dw = - F^-1 (w * 1_P / [F^-1]_jj) over the newly pruned set P of each block, then pruned "
              "weights set to exactly 0; SparseML divides by [F^-1]_jj + eps",
    "scope": "same tensors: the recipe's params name our prunable_weights exactly (encoder Linear weights)",
}


@dataclass(frozen=True)
class CheckConfig:
    """The tiny model, its synthetic task and training, and the OBS settings shared by both runs."""

    vocab: int = 96
    labels: int = 5
    hidden: int = 64
    layers: int = 2
    heads: int = 4
    ffn: int = 128
    min_len: int = 8
    max_len: int = 24
    train_sentences: int = 2048
    heldout_sentences: int = 256
    init_std: float = 0.02  # BERT's initializer_range
    train_steps: int = 450
    train_batch: int = 16
    lr: float = 3e-3
    num_grads: int = 64  # m
    grad_batch: int = 8
    block_size: int = 50  # B
    relative_damps: tuple[float, ...] = (1e-1, 1e-4)  # multiples of the Fisher's mean diagonal (fisher_scale)
    sparsities: tuple[float, ...] = (0.5, 0.7)
    chunk_blocks: int = 2048
    seed: int = 0


def bert_config(cfg: CheckConfig) -> dict:
    """BertConfig fields of the tiny model, as sent to the worker (no dropout: one-shot pruning
    and the losses are then deterministic in train and eval mode alike)."""
    return {"vocab_size": cfg.vocab, "hidden_size": cfg.hidden, "num_hidden_layers": cfg.layers,
            "num_attention_heads": cfg.heads, "intermediate_size": cfg.ffn, "max_position_embeddings": cfg.max_len + 8,
            "num_labels": cfg.labels, "hidden_dropout_prob": 0.0, "attention_probs_dropout_prob": 0.0,
            "pad_token_id": PAD, "attn_implementation": "eager"}


def synthetic_task(cfg: CheckConfig, count: int, seed: int) -> Dataset:
    """Random sentences whose tag is (class of the token + class of the previous token) mod the
    number of labels, with a fixed random class per token: no tag can be read off the token's
    own embedding, so the model must attend to its neighbour and the pruned weights matter."""
    table = random.Random(cfg.seed)  # the task itself: the same for every split
    classes = [table.randrange(cfg.labels) for _ in range(cfg.vocab)]
    rng = random.Random(seed)
    rows: dict[str, list] = {"input_ids": [], "attention_mask": [], "labels": []}
    for _ in range(count):
        ids = [rng.randrange(1, cfg.vocab) for _ in range(rng.randint(cfg.min_len, cfg.max_len))]
        rows["input_ids"].append(ids)
        rows["attention_mask"].append([1] * len(ids))
        rows["labels"].append([(classes[t] + (classes[ids[i - 1]] if i else 0)) % cfg.labels for i, t in enumerate(ids)])
    return Dataset.from_dict(rows)


def initial_value(name: str, shape: torch.Size, rng: np.random.Generator, std: float) -> torch.Tensor:
    """BERT's initialisation of parameter `name`, drawn from `rng`: LayerNorm weights 1, biases 0,
    every other weight (embeddings, linear layers) N(0, std^2)."""
    if name.endswith("LayerNorm.weight"):
        return torch.ones(shape)
    if name.endswith(".bias"):
        return torch.zeros(shape)
    return torch.from_numpy(rng.normal(0.0, std, tuple(shape)).astype(np.float32))


def tiny_model(cfg: CheckConfig) -> BertForTokenClassification:
    """The tiny BERT with every parameter set from numpy's generator seeded with `cfg.seed`, drawn in
    sorted-name order: the starting weights do not depend on torch's global generator, nor on the
    order or the scheme in which a transformers version initialises its modules."""
    model = BertForTokenClassification(BertConfig(**bert_config(cfg)))
    rng = np.random.default_rng(cfg.seed)
    parameters = dict(model.named_parameters())
    with torch.no_grad():
        for name in sorted(parameters):
            parameters[name].copy_(initial_value(name, parameters[name].shape, rng, cfg.init_std))
    return model


def fine_tune(model: nn.Module, train: Dataset, cfg: CheckConfig) -> list[float]:
    """`cfg.train_steps` AdamW steps on length-grouped batches (seeded; nothing else is drawn: no
    dropout); the loss of every step.

    450 steps: the task is learned suddenly, by step 241-351 for seeds 0-5 (first step where the
    mean loss of the last 20 falls below 0.1; chance is ln 5 = 1.61), so 450 leaves each seed
    100 steps or more past it (held-out loss 0.002-0.09) while the gradients still carry weight:
    the Fisher's mean diagonal is 0.9-9e-6 at step 450 but 0.2-1.9e-7 at 600, where the model is
    so sure of every tag that few weights carry all the gradient."""
    optimizer = torch.optim.AdamW(model.parameters(), lr=cfg.lr)
    lengths = [len(x) for x in train["input_ids"]]
    batches: list[list[int]] = []
    epoch = 0
    while len(batches) < cfg.train_steps:
        batches += length_grouped_batches(lengths, cfg.train_batch, cfg.seed + epoch)
        epoch += 1
    model.train()
    losses = []
    for batch in iterate(train, batches[: cfg.train_steps], PAD):
        loss = model(**batch).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad()
        losses.append(loss.item())
    model.eval()
    return losses


@torch.no_grad()
def token_loss(model: nn.Module, batches: list[dict[str, torch.Tensor]]) -> float:
    """Mean cross-entropy over every labelled token of `batches` (not a mean of batch means)."""
    total, count = 0.0, 0
    for batch in batches:
        logits = model(**{k: v for k, v in batch.items() if k != "labels"}).logits
        total += float(nn.functional.cross_entropy(logits.flatten(0, 1), batch["labels"].flatten(),
                                                   ignore_index=IGNORE, reduction="sum"))
        count += int((batch["labels"] != IGNORE).sum())
    return total / count


def obs_recipe(params: list[str], sparsity: float, damp: float, cfg: CheckConfig) -> str:
    """A SparseML recipe pruning exactly `params` one-shot to `sparsity` with OBS at `damp` (global
    selection, unstructured, one Fisher computation: num_recomputations 1)."""
    names = ", ".join(f'"{p}"' for p in params)
    return "\n".join([
        "version: 1.1.0",
        "modifiers:",
        "  - !OBSPruningModifier",
        f"    params: [{names}]",
        f"    init_sparsity: {sparsity}",
        f"    final_sparsity: {sparsity}",
        "    start_epoch: 0.0",
        "    end_epoch: 1.0",
        "    update_frequency: 1.0",
        "    inter_func: linear",
        "    global_sparsity: true",
        "    leave_enabled: true",
        "    mask_type: unstructured",
        f"    num_grads: {cfg.num_grads}",
        f"    damp: {damp:{DAMP_FORMAT}}",
        f"    fisher_block_size: {cfg.block_size}",
        "    num_recomputations: 1",
        "",
    ])


def key(relative_damp: float, sparsity: float) -> str:
    """The name of one (relative damp, sparsity) run: its recipe's and SparseML's seconds' key, e.g. "0.0001/0.5"."""
    return f"{relative_damp:g}/{sparsity:g}"


def _same_batches(a: list[dict[str, torch.Tensor]], b: list[dict[str, torch.Tensor]]) -> bool:
    return len(a) == len(b) and all(x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
                                    for x, y in zip(a, b))


def recorded(model: nn.Module, run: Callable[[], T], cfg: CheckConfig) -> tuple[T, list[dict[str, torch.Tensor]]]:
    """What `run()` returns, and the keyword inputs of every forward of `model` while it computes
    the m gradients, in order."""
    used: list[dict[str, torch.Tensor]] = []

    def record(_module: nn.Module, _args: tuple, kwargs: dict) -> None:
        used.append({k: v.detach().clone() for k, v in kwargs.items()})

    hook = model.register_forward_pre_hook(record, with_kwargs=True)
    try:
        result = run()
    finally:
        hook.remove()
    if len(used) != cfg.num_grads:
        raise RuntimeError(f"recorded {len(used)} gradient mini-batches, expected m = {cfg.num_grads}")
    return result, used


def gradient_source(train: Dataset, cfg: CheckConfig) -> GradientSource:
    return GradientSource(train, PAD, cfg.num_grads, cfg.grad_batch, cfg.seed)


def fisher_scale(model: nn.Module, train: Dataset, cfg: CheckConfig) -> tuple[float, list[dict[str, torch.Tensor]]]:
    """The mean diagonal of the (undampened) empirical Fisher, (1/m) sum_i g_i^2 averaged over
    every pruned weight, from the m gradient mini-batches the Fisher itself is built from; and
    those batches, in order. The damps are set as multiples of it, so that what a damp means
    (how much of F it drowns) does not depend on how far training drove the gradients down."""
    masks = Masks(prunable_weights(model))
    total = torch.zeros((), dtype=torch.float64)

    def add(grads: list[torch.Tensor]) -> None:
        total.add_(sum(g.double().pow(2).sum() for g in grads))

    _, batches = recorded(model, lambda: gradient_source(train, cfg).each(model, masks, 0, add), cfg)
    return float(total) / (cfg.num_grads * sum(w.numel() for w in masks.weights.values())), batches


def absolute_damps(relative: tuple[float, ...], scale: float) -> dict[float, float]:
    """Each relative damp's absolute one, relative * scale rounded to the digits a recipe writes
    (DAMP_FORMAT), so that our OBS and SparseML's get exactly the same number."""
    return {r: float(format(r * scale, DAMP_FORMAT)) for r in relative}


def ours(model: nn.Module, dense: dict[str, torch.Tensor], train: Dataset, damps: dict[float, float],
         batches: list[dict[str, torch.Tensor]], cfg: CheckConfig
         ) -> tuple[dict[str, dict[str, torch.Tensor]], dict[float, float]]:
    """Our one-shot OBS at each damp (relative: absolute) to each sparsity from the dense weights:
    the pruned weights per `key(relative damp, sparsity)` and the Fisher's degeneracy per
    relative damp. Each Fisher's gradients are computed afresh; their mini-batches must be
    `batches` (checked)."""
    pruned, degeneracy = {}, {}
    for relative, damp in damps.items():
        model.load_state_dict(dense, strict=False)
        masks = Masks(prunable_weights(model))
        fisher, used = recorded(model, lambda: fisher_inverse(model, masks, gradient_source(train, cfg), 0,
                                                              cfg.block_size, damp, cfg.chunk_blocks), cfg)
        if not _same_batches(used, batches):
            raise RuntimeError(f"the gradient mini-batches at damp {relative:g} differ from the Fisher scale's")
        degeneracy[relative] = fisher.degeneracy()
        for sparsity in cfg.sparsities:
            model.load_state_dict(dense, strict=False)
            masks = Masks(prunable_weights(model))
            obs_prune(fisher, masks, sparsity)
            pruned[key(relative, sparsity)] = {n: w.detach().clone() for n, w in masks.weights.items()}
    model.load_state_dict(dense, strict=False)
    return pruned, degeneracy


def sparseml_prune(dense: dict[str, torch.Tensor], batches: list[dict[str, torch.Tensor]], names: list[str],
                   damps: dict[float, float], cfg: CheckConfig
                   ) -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict[str, str]]:
    """SparseML's one-shot OBS at each damp (relative: absolute; the recipe gets the absolute one)
    to each sparsity in its venv: the pruned weights of `names` per `key(relative damp, sparsity)`,
    the worker's answer, and the recipes (same keys)."""
    recipes = {key(r, s): obs_recipe([f"{n}.weight" for n in names], s, d, cfg)
               for r, d in damps.items() for s in cfg.sparsities}
    with tempfile.TemporaryDirectory(prefix="mmakit-sparseml-") as folder:
        tensors, output = Path(folder) / "tensors.pt", Path(folder) / "pruned.pt"
        torch.save({"state_dict": dense, "batches": batches}, tensors)
        answer = sparseml_env.run_worker({"tensors": str(tensors), "output": str(output), "config": bert_config(cfg),
                                          "recipes": recipes, "threads": 1})
        states = torch.load(output, weights_only=True)
    return {k: {n: states[k][f"{n}.weight"] for n in names} for k in recipes}, answer, recipes


def compare(ours_w: dict[str, torch.Tensor], sml_w: dict[str, torch.Tensor], dense: dict[str, torch.Tensor]) -> dict:
    """Overlap of the pruned sets (|both| / |ours|), each side's sparsity, globally and per tensor,
    and the relative difference of the two weight updates over the weights both kept."""
    per_tensor, both_total, ours_total, diff, norm = {}, 0, 0, 0.0, 0.0
    for name, w_ours in ours_w.items():
        p_ours, p_sml = w_ours == 0, sml_w[name] == 0
        both, mine = int((p_ours & p_sml).sum()), int(p_ours.sum())
        per_tensor[name] = {"overlap": both / max(mine, 1), "sparsity_ours": mine / w_ours.numel(),
                            "sparsity_sparseml": int(p_sml.sum()) / w_ours.numel()}
        both_total, ours_total = both_total + both, ours_total + mine
        kept = ~p_ours & ~p_sml
        start = dense[f"{name}.weight"][kept]
        diff += float(((sml_w[name][kept] - start) - (w_ours[kept] - start)).pow(2).sum())
        norm += float((w_ours[kept] - start).pow(2).sum())
    return {"overlap": both_total / ours_total, "pruned_ours": ours_total,
            "update_rel_diff": (diff / norm) ** 0.5 if norm else 0.0, "per_tensor": per_tensor}


def magnitude(dense: dict[str, torch.Tensor], names: list[str], sparsity: float) -> dict[str, torch.Tensor]:
    """Global magnitude pruning of the dense weights (no update): the reference that shows how far
    OBS's choice is from the trivial one, i.e. how much an agreement between two OBS runs says."""
    weights = {n: nn.Parameter(dense[f"{n}.weight"].clone()) for n in names}
    masks = Masks(weights)
    masks.select({n: w.detach().abs() for n, w in weights.items()}, sparsity)
    masks.apply()
    return {n: w.detach() for n, w in weights.items()}


def _with_weights(model: nn.Module, dense: dict[str, torch.Tensor], weights: dict[str, torch.Tensor]) -> nn.Module:
    model.load_state_dict(dense | {f"{n}.weight": w for n, w in weights.items()}, strict=False)
    return model


def run_check(cfg: CheckConfig | None = None, out: str | Path | None = None) -> dict:
    """Run the cross-check (default settings unless `cfg`), write its record (RESULTS_DIR/bench/
    sparseml_obs_check.json unless `out` names a file) and return it. Raises
    sparseml_env.WorkerFailed without the sparseml venv or when SparseML fails."""
    cfg = cfg or CheckConfig()
    started, start = now(), time.perf_counter()
    train = synthetic_task(cfg, cfg.train_sentences, cfg.seed + 1)
    heldout = synthetic_task(cfg, cfg.heldout_sentences, cfg.seed + 2)
    held = list(iterate(heldout, sorted_batches([len(x) for x in heldout["input_ids"]], 32), PAD))
    model = tiny_model(cfg)
    train_losses = fine_tune(model, train, cfg)
    dense = {k: v.detach().clone() for k, v in model.named_parameters()}
    names = list(prunable_weights(model))
    scale, batches = fisher_scale(model, train, cfg)
    damps = absolute_damps(cfg.relative_damps, scale)
    ours_w, degeneracy = ours(model, dense, train, damps, batches, cfg)
    sml_w, answer, recipes = sparseml_prune(dense, batches, names, damps, cfg)
    with torch.no_grad():
        main_losses = [float(model(**b).loss) for b in batches]
    mags = {s: magnitude(dense, names, s) for s in cfg.sparsities}
    loss_mag = {s: token_loss(_with_weights(model, dense, mags[s]), held) for s in cfg.sparsities}
    results = []
    for r, d in damps.items():
        for s in cfg.sparsities:
            k = key(r, s)
            results.append({"damp_relative": r, "damp": d, "fisher_degeneracy": degeneracy[r], "sparsity": s,
                            **compare(ours_w[k], sml_w[k], dense),
                            "loss_ours": token_loss(_with_weights(model, dense, ours_w[k]), held),
                            "loss_sparseml": token_loss(_with_weights(model, dense, sml_w[k]), held),
                            "loss_magnitude": loss_mag[s],
                            "overlap_ours_magnitude": compare(ours_w[k], mags[s], dense)["overlap"]})
    model.load_state_dict(dense, strict=False)
    record = {
        "check": "sparseml_obs", "started": started, "config": asdict(cfg), "bert_config": bert_config(cfg),
        "versions": {k: answer[k] for k in ("sparseml", "transformers", "torch")},
        "train_loss_last20": sum(train_losses[-20:]) / 20, "loss_dense": token_loss(model, held),
        "heldout_tokens": sum(int((b["labels"] != IGNORE).sum()) for b in held),
        "fisher_scale": scale, "damps": {f"{r:g}": d for r, d in damps.items()},
        "fisher_degeneracy": {f"{r:g}": degeneracy[r] for r in damps},
        "model_parity": max(abs(a - b) for a, b in zip(main_losses, answer["dense_losses"])),
        "results": results, "recipes": recipes, "conventions": CONVENTIONS,
        "sparseml_seconds": answer["seconds"], "seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(record, Path(out) if out else results_root() / RECORD)
    return record
