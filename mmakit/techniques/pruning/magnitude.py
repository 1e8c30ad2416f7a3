"""Gradual magnitude pruning (GMP): keep the weights (or 4-blocks, by L2 norm) of largest magnitude."""
from __future__ import annotations

import torch
from torch import nn

from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.masks import Masks


class MagnitudePruner(Pruner):
    method = "magnitude"

    @torch.no_grad()
    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        g = masks.group_size
        scores = {n: w.reshape(-1, g).pow(2).sum(1) for n, w in masks.weights.items()}
        new = masks.select(scores, sparsity)
        masks.apply()
        return {"newly_pruned_groups": new}
