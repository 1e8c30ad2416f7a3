"""Hard movement pruning (Sanh et al. 2020): score S = -sum over training steps of dL/dw * w,
accumulated over the whole run, as Sanh et al. and SparseML do (never reset at a pruning step:
a few dozen steps of a converged model are noise); the weights moving towards zero are pruned
first. Pruned weights are exactly zero, so their scores stop moving.

If a pruning step comes before any training step (no warm-up), the scores start from the
gradient source instead: a first-order -g * w estimate on fresh mini-batches.
"""
from __future__ import annotations

import torch
from torch import nn

from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.masks import Masks


class MovementPruner(Pruner):
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
