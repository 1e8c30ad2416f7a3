"""Cross-check of our OBS (oBERT) pruning against SparseML's OBSPruningModifier, the reference
implementation of oBERT, on a tiny BERT token classifier both environments build identically.

The model (2 layers, hidden 64) is fine-tuned here for a few hundred seeded steps on a synthetic
tagging task whose labels depend on the previous token, so attention matters. Then, from the
same dense weights, it is pruned one-shot at each damp to each sparsity twice, with the same m,
B, damp and the same gradient mini-batches:
  - ours: `fisher_inverse` over a `GradientSource` (its batches are recorded as they are used),
    then `obs_prune`;
  - SparseML: the recorded batches fed to its GradSampler, through a recipe with one
    OBSPruningModifier, applied one-shot in the sparseml venv (runtime/sparseml_worker.py).
Both apply the OBS weight update. The record gives, per (damp, sparsity), the overlap of the
pruned sets (|pruned by both| / |pruned by ours|, globally and per tensor), the held-out loss of
the dense model and of both pruned ones, and how far apart the two weight updates are.

Why several damps: the check says something about the Fisher only where the damp does not
dominate it. At 1e-7 this model's degeneracy (median of damp * [F^-1]_jj) is 0.83 and OBS
differs from magnitude pruning in only 3-3.5% of the pruned set; at the low default damp, 1e-9
(the study's own; its real model reads 0.64-0.71 there), it is 0.47 and OBS differs from
magnitude in 7-9%. The gradients are computed afresh for each damp's Fisher, from the same
mini-batches (checked).

What was matched by reading SparseML 1.8.0's source (modifier_pruning_obs.py, mask_creator.py,
mask_params.py, utils/sparsification.py) is listed in CONVENTIONS and goes into the record.
"""
from __future__ import annotations

import random
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

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
# The low damp: this model's degeneracy with our code is 0.83 at 1e-7, 0.66 at 1e-8, 0.47 at 1e-9,
# 0.27 at 1e-10; 1e-9 is the highest of these below 0.5, and the study's own damp.
DAMP_LOW = 1e-9

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
    train_steps: int = 600
    train_batch: int = 16
    lr: float = 3e-3
    num_grads: int = 64  # m
    grad_batch: int = 8
    block_size: int = 50  # B
    damps: tuple[float, ...] = (1e-7, DAMP_LOW)
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


def tiny_model(cfg: CheckConfig) -> BertForTokenClassification:
    torch.manual_seed(cfg.seed)
    return BertForTokenClassification(BertConfig(**bert_config(cfg)))


def fine_tune(model: nn.Module, train: Dataset, cfg: CheckConfig) -> list[float]:
    """`cfg.train_steps` AdamW steps on length-grouped batches; the loss of every step."""
    torch.manual_seed(cfg.seed)
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
        f"    damp: {damp:.6e}",
        f"    fisher_block_size: {cfg.block_size}",
        "    num_recomputations: 1",
        "",
    ])


def key(damp: float, sparsity: float) -> str:
    """The name of one (damp, sparsity) run: its recipe's and SparseML's seconds' key, e.g. "1e-07/0.5"."""
    return f"{damp:g}/{sparsity:g}"


def ours(model: nn.Module, dense: dict[str, torch.Tensor], train: Dataset, cfg: CheckConfig
         ) -> tuple[dict[str, dict[str, torch.Tensor]], list[dict[str, torch.Tensor]], dict[float, float]]:
    """Our one-shot OBS at each damp to each sparsity from the dense weights: the pruned weights
    per `key(damp, sparsity)`, the gradient mini-batches our GradientSource used (in order; the
    same at every damp, checked), and the Fisher's degeneracy per damp."""
    used_first: list[dict[str, torch.Tensor]] | None = None
    pruned, degeneracy = {}, {}
    for damp in cfg.damps:
        source = GradientSource(train, PAD, cfg.num_grads, cfg.grad_batch, cfg.seed)
        used: list[dict[str, torch.Tensor]] = []

        def record(_module: nn.Module, _args: tuple, kwargs: dict, used=used) -> None:
            used.append({k: v.detach().clone() for k, v in kwargs.items()})

        model.load_state_dict(dense, strict=False)
        hook = model.register_forward_pre_hook(record, with_kwargs=True)
        try:
            fisher = fisher_inverse(model, Masks(prunable_weights(model)), source, 0, cfg.block_size, damp,
                                    cfg.chunk_blocks)
        finally:
            hook.remove()
        if len(used) != cfg.num_grads:
            raise RuntimeError(f"recorded {len(used)} gradient mini-batches, expected m = {cfg.num_grads}")
        if used_first is None:
            used_first = used
        elif any(a.keys() != b.keys() or any(not torch.equal(a[k], b[k]) for k in a) for a, b in zip(used_first, used)):
            raise RuntimeError(f"the gradient mini-batches at damp {damp:g} differ from the first damp's")
        degeneracy[damp] = fisher.degeneracy()
        for sparsity in cfg.sparsities:
            model.load_state_dict(dense, strict=False)
            masks = Masks(prunable_weights(model))
            obs_prune(fisher, masks, sparsity)
            pruned[key(damp, sparsity)] = {n: w.detach().clone() for n, w in masks.weights.items()}
    model.load_state_dict(dense, strict=False)
    return pruned, used_first or [], degeneracy


def sparseml_prune(dense: dict[str, torch.Tensor], batches: list[dict[str, torch.Tensor]], names: list[str],
                   cfg: CheckConfig) -> tuple[dict[str, dict[str, torch.Tensor]], dict, dict[str, str]]:
    """SparseML's one-shot OBS at each damp to each sparsity in its venv: the pruned weights of
    `names` per `key(damp, sparsity)`, the worker's answer, and the recipes (same keys)."""
    recipes = {key(d, s): obs_recipe([f"{n}.weight" for n in names], s, d, cfg)
               for d in cfg.damps for s in cfg.sparsities}
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
    ours_w, batches, degeneracy = ours(model, dense, train, cfg)
    sml_w, answer, recipes = sparseml_prune(dense, batches, names, cfg)
    with torch.no_grad():
        main_losses = [float(model(**b).loss) for b in batches]
    mags = {s: magnitude(dense, names, s) for s in cfg.sparsities}
    loss_mag = {s: token_loss(_with_weights(model, dense, mags[s]), held) for s in cfg.sparsities}
    results = []
    for d in cfg.damps:
        for s in cfg.sparsities:
            k = key(d, s)
            results.append({"damp": d, "fisher_degeneracy": degeneracy[d], "sparsity": s,
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
        "fisher_degeneracy": {f"{d:g}": degeneracy[d] for d in cfg.damps},
        "model_parity": max(abs(a - b) for a, b in zip(main_losses, answer["dense_losses"])),
        "results": results, "recipes": recipes, "conventions": CONVENTIONS,
        "sparseml_seconds": answer["seconds"], "seconds": round(time.perf_counter() - start, 2),
    }
    write_json_atomic(record, Path(out) if out else results_root() / RECORD)
    return record
