"""Keep-masks over the prunable weights: global selection of the lowest scores to an exact
count, masks applied as exact zeros, and sparsity reported per tensor, per layer and globally.

Weights are pruned in groups of `group_size` consecutive entries of the flattened tensor
(1: unstructured; 4: the 4-block pattern that sparse int8 kernels like); a group is pruned
or kept as a whole.
"""
from __future__ import annotations

from collections import defaultdict

import torch
from torch import nn

from mmakit.techniques.pruning.scope import layer_of
from mmakit.techniques.selection import lowest


class Masks:
    """One boolean keep-mask per prunable weight; `apply` writes exact zeros where it is False."""

    def __init__(self, weights: dict[str, nn.Parameter], group_size: int = 1):
        bad = [n for n, w in weights.items() if w.numel() % group_size]
        if group_size < 1 or bad:
            raise ValueError(f"group_size {group_size} must be positive and divide every pruned tensor; not: {bad}")
        self.weights = weights
        self.group_size = group_size
        self.keep = {n: torch.ones_like(w, dtype=torch.bool) for n, w in weights.items()}

    @property
    def total(self) -> int:
        return sum(w.numel() for w in self.weights.values())

    def pruned(self) -> int:
        return sum(int((~k).sum()) for k in self.keep.values())

    def sparsity(self) -> float:
        """Fraction of pruned weights over the whole scope."""
        return self.pruned() / self.total

    def groups(self, name: str) -> torch.Tensor:
        """The keep-mask of `name` as (groups, group_size): a group is pruned when its row is all False."""
        return self.keep[name].reshape(-1, self.group_size)

    @torch.no_grad()
    def apply(self) -> None:
        """Set every masked weight to exactly 0."""
        for name, w in self.weights.items():
            w.masked_fill_(~self.keep[name], 0.0)

    @torch.no_grad()
    def mask_grads(self) -> None:
        """Zero the gradients of masked weights, so optimizer moments do not move them."""
        for name, w in self.weights.items():
            if w.grad is not None:
                w.grad.masked_fill_(~self.keep[name], 0.0)

    def groups_to_prune(self, sparsity: float) -> int:
        """How many groups are pruned at `sparsity` of the scope (rounded to one group)."""
        return round(sparsity * self.total / self.group_size)

    def select(self, scores: dict[str, torch.Tensor], sparsity: float) -> int:
        """Prune the globally lowest-scoring groups until `sparsity` is reached; return how many were new.

        `scores[name]` holds one score per group of `name` (higher = keep); groups pruned
        before count as -inf, so pruning never revives a weight.
        """
        names = list(self.weights)
        flat = torch.cat([scores[n].reshape(-1).float() for n in names])
        already = torch.cat([~self.groups(n).any(dim=1) for n in names])
        if flat.numel() != already.numel():
            raise ValueError("scores must hold one value per group of every pruned tensor")
        target = self.groups_to_prune(sparsity)
        before = int(already.sum())
        if target < before:
            raise ValueError(f"sparsity {sparsity} is below the {before * self.group_size / self.total:.4f} already reached")
        if torch.isnan(flat).any():
            raise ValueError("pruning scores contain NaN")
        chosen = lowest(flat.masked_fill(already, float("-inf")), target)
        start = 0
        for n in names:
            count = self.groups(n).shape[0]
            self.groups(n)[chosen[start : start + count]] = False
            start += count
        return target - before

    def report(self) -> dict:
        """Sparsity globally, per transformer layer and per tensor (fractions of pruned weights)."""
        per_layer: dict[str, list[int]] = defaultdict(lambda: [0, 0])
        per_tensor = {}
        for name, keep in self.keep.items():
            pruned = int((~keep).sum())
            per_tensor[name] = pruned / keep.numel()
            per_layer[layer_of(name)][0] += pruned
            per_layer[layer_of(name)][1] += keep.numel()
        return {
            "global": self.sparsity(), "pruned": self.pruned(), "total": self.total, "group_size": self.group_size,
            "per_layer": {k: p / t for k, (p, t) in per_layer.items()}, "per_tensor": per_tensor,
        }
