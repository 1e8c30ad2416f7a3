"""Keep-masks over the prunable weights: selection of the lowest scores to an exact count,
globally (one threshold over all tensors: oBERT's OBS and magnitude) or per tensor (each tensor
to the target: movement as Sanh et al. and SparseML prune), masks applied as exact zeros, and
sparsity reported per tensor, per layer and globally.

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

SELECTIONS = ("global", "per_tensor")


class Masks:
    """One boolean keep-mask per prunable weight; `apply` writes exact zeros where it is False."""

    def __init__(self, weights: dict[str, nn.Parameter], group_size: int = 1, selection: str = "global"):
        bad = [n for n, w in weights.items() if w.numel() % group_size]
        if group_size < 1 or bad:
            raise ValueError(f"group_size {group_size} must be positive and divide every pruned tensor; not: {bad}")
        if selection not in SELECTIONS:
            raise ValueError(f"unknown selection {selection!r}; choose from {', '.join(SELECTIONS)}")
        self.weights = weights
        self.group_size = group_size
        self.selection = selection
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

    def select(self, scores: dict[str, torch.Tensor], sparsity: float) -> int:
        """Prune the lowest-scoring groups, over all tensors or within each (`selection`), until
        `sparsity` is reached; return how many were new.

        `scores[name]` holds one score per group of `name` (higher = keep); groups pruned
        before count as -inf, so pruning never revives a weight (`reselect` does).
        """
        names = list(self.weights)
        if any(scores[n].numel() != self.groups(n).shape[0] for n in names):
            raise ValueError("scores must hold one value per group of every pruned tensor")
        if any(torch.isnan(scores[n]).any() for n in names):
            raise ValueError("pruning scores contain NaN")
        if self.selection == "per_tensor":
            return sum(self._select_lowest([n], scores, sparsity) for n in names)
        return self._select_lowest(names, scores, sparsity)

    def reselect(self, scores: dict[str, torch.Tensor], sparsity: float) -> tuple[int, int]:
        """Prune exactly the lowest-scoring groups to `sparsity`, forgetting earlier choices, so
        a group pruned before comes back when its score has risen (trained movement scores,
        Sanh et al. 2020); (groups newly pruned, groups brought back)."""
        before = {n: self.groups(n).any(dim=1) for n in self.keep}
        for keep in self.keep.values():
            keep.fill_(True)
        self.select(scores, sparsity)
        after = {n: self.groups(n).any(dim=1) for n in self.keep}
        new = sum(int((before[n] & ~after[n]).sum()) for n in self.keep)
        back = sum(int((~before[n] & after[n]).sum()) for n in self.keep)
        return new, back

    def _select_lowest(self, names: list[str], scores: dict[str, torch.Tensor], sparsity: float) -> int:
        """Prune the lowest groups of `names` taken together to `sparsity` of their weights."""
        flat = torch.cat([scores[n].reshape(-1).float() for n in names])
        already = torch.cat([~self.groups(n).any(dim=1) for n in names])
        target = round(sparsity * flat.numel())
        before = int(already.sum())
        if target < before:
            raise ValueError(f"sparsity {sparsity} is below the {before / flat.numel():.4f} already reached")
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
