"""Which heads and FFN neurons go at one pruning iteration, given their importance.

- importance (Michel et al.): scores normalised by their L2 norm within each layer, then the
  N lowest over the whole model, never the last head of a layer;
- uniform (TextPruner style): the same number of lowest-scoring heads in every layer.
FFN neurons are cut per layer down to a target size, lowest scores first.
Plans are lists (one per layer) of positions in the model's current numbering.
"""
from __future__ import annotations

from collections.abc import Sequence

import torch

from mmakit.techniques.selection import lowest

STRATEGIES = ("importance", "uniform")


def normalize_per_layer(scores: Sequence[torch.Tensor]) -> list[torch.Tensor]:
    """Each layer's scores divided by their L2 norm (Michel et al.'s per-layer normalisation)."""
    return [s / (s.norm(p=2) + 1e-20) for s in scores]


def _lowest_positions(scores: torch.Tensor, k: int) -> list[int]:
    """Positions of the k lowest scores (ties broken by position), ascending."""
    return torch.nonzero(lowest(scores, k)).flatten().tolist()


def importance_plan(scores: Sequence[torch.Tensor], n: int) -> list[list[int]]:
    """The n globally least important heads after per-layer normalisation, keeping >= 1 head
    per layer; fewer than n when only one head per layer is left."""
    normed = normalize_per_layer(scores)
    ranked = sorted((float(s[h]), layer, h) for layer, s in enumerate(normed) for h in range(len(s)))
    left = [len(s) for s in scores]
    plan: list[list[int]] = [[] for _ in scores]
    for _, layer, h in ranked:
        if sum(map(len, plan)) == n:
            break
        if left[layer] > 1:
            plan[layer].append(h)
            left[layer] -= 1
    return [sorted(p) for p in plan]


def uniform_plan(scores: Sequence[torch.Tensor], per_layer: int) -> list[list[int]]:
    """The `per_layer` least important heads of every layer; each layer must keep one."""
    if any(len(s) <= per_layer for s in scores):
        raise ValueError(f"cannot remove {per_layer} heads from every layer: some layer has only "
                         f"{min(len(s) for s in scores)} left and must keep one")
    return [_lowest_positions(s, per_layer) for s in scores]


def neuron_plan(scores: Sequence[torch.Tensor], targets: Sequence[int]) -> list[list[int]]:
    """The lowest-scoring neurons of each layer, enough to bring it down to its target size."""
    return [_lowest_positions(s, max(0, len(s) - t)) for s, t in zip(scores, targets)]
