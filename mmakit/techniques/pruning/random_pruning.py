"""Random pruning: the control every criterion is read against. Scores are uniform noise drawn
afresh (seeded by run seed and pruning step) at every pruning step; groups pruned before stay
pruned, so the same schedule and global sparsity apply as for the real criteria."""
from __future__ import annotations

import torch
from torch import nn

from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.masks import Masks


class RandomPruner(Pruner):
    method = "random"

    def __init__(self, seed: int):
        self.seed = seed

    @torch.no_grad()
    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        rng = torch.Generator().manual_seed(self.seed * 1000 + round_index)
        scores = {n: torch.rand(w.numel() // masks.group_size, generator=rng) for n, w in masks.weights.items()}
        new = masks.select(scores, sparsity)
        masks.apply()
        return {"newly_pruned_groups": new}
