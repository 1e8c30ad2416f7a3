"""Hard movement pruning (Sanh et al. 2020): keep the weights moving away from zero, in two
variants (`PruningConfig.movement_scores`).

"trained" (`TrainedMovementPruner`): the method as Sanh et al. define it and run it, and as
nn_pruning implements it. Scores S are parameters trained with the weights through a
straight-through mask W * TopK(S) (straight_through.py): dL/dS = dL/dW' * W, so with a plain
optimizer S = -sum over steps of lr * update(dL/dW' * W). The masks are recomputed from S at
every pruning event (`selection: per_tensor` as the paper does: Sanh et al.'s Top_v keeps the
top v% of each matrix, in their code as in nn_pruning; a global ranking is left as a variant),
a pruned weight keeps its value and comes back if its score rises, and the last event fixes the
masks for the final fine-tuning. It was designed for pruning while fine-tuning the pre-trained
encoder from 0% sparsity (`prune_start: pretrained`). The scores start at 0 and move by the
weights' AdamW updates: TopK is the same whatever their learning rate (each update scales with
it, no weight decay on them), so they share the weights' learning rate and schedule rather than
Sanh et al.'s separate 1e-2.

"accumulated" (`MovementPruner`): SparseML's MovementPruningModifier. S = -sum over training
steps of dL/dW * W, summed over the whole run (never reset at a pruning step), pruned weights
zeroed and never revived. From a converged fine-tuned model these sums are noise in sign: see
diagnostics.py. If a pruning step comes before any training step (no warm-up), the scores start
from the gradient source instead: a first-order -g * w estimate on fresh mini-batches.
"""
from __future__ import annotations

import torch
from torch import nn

from mmakit.techniques.pruning import straight_through
from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks

SCORES = ("accumulated", "trained")


class MovementPruner(Pruner):
    """Accumulated scores (SparseML's variant), pruned weights zeroed for good."""

    method = "movement"

    def __init__(self, source: GradientSource):
        self.source = source
        self.scores: dict[str, torch.Tensor] = {}
        self.steps = 0

    def _accumulate(self, masks: Masks, grads: list[torch.Tensor]) -> None:
        for (name, w), g in zip(masks.weights.items(), grads):
            move = -(g * w.detach())
            self.scores[name] = self.scores[name] + move if name in self.scores else move
        self.steps += 1

    @torch.no_grad()
    def observe(self, masks: Masks) -> None:
        grads = [w.grad if w.grad is not None else torch.zeros_like(w) for w in masks.weights.values()]
        self._accumulate(masks, grads)

    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        source = "training steps"
        if self.steps == 0:
            self.source.each(model, masks, round_index, lambda grads: self._accumulate(masks, grads))
            source = "gradient mini-batches"
        g = masks.group_size
        new = masks.select({n: s.reshape(-1, g).sum(1) for n, s in self.scores.items()}, sparsity)
        masks.apply()
        return {"newly_pruned_groups": new, "score_steps": self.steps, "score_source": source}


class TrainedMovementPruner(Pruner):
    """Trained scores (Sanh et al.'s variant): masks recomputed from the scores at every one of
    `events` pruning events, weights free to come back until the last event fixes them."""

    method = "movement"

    def __init__(self, events: int):
        self.events = events
        self.attached: dict[str, straight_through.ScoredMask] = {}
        self.fixed = False

    def start(self, model: nn.Module, masks: Masks) -> None:
        self.attached = straight_through.attach(model, masks)

    @property
    def zeroes_pruned(self) -> bool:
        return self.fixed

    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        if not self.attached:
            raise RuntimeError("trained movement scores learn while training: prune gradually (start() first)")
        scores = {n: s.to(masks.keep[n].device) for n, s in straight_through.scores(self.attached).items()}
        new, back = masks.reselect(scores, sparsity)
        straight_through.set_masks(self.attached, masks)
        if round_index == self.events - 1:
            straight_through.fix(model, masks)
            self.fixed = True
        flat = torch.cat([s.reshape(-1) for s in scores.values()])
        return {"newly_pruned_groups": new, "revived_groups": back, "masks_fixed": self.fixed,
                "score_mean": float(flat.mean()), "score_std": float(flat.std())}
