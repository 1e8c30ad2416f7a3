"""Masks applied in the forward pass, with importance scores learnt through them: the mechanism
of movement pruning as Sanh et al. (2020) define it (and nn_pruning implements it).

Each pruned Linear's weight W is replaced in the forward by W' = W * M with M = TopK(S), a 0/1
mask of the highest scores S (one score per group of `group_size` weights). TopK has no useful
gradient, so the straight-through estimator passes the mask's gradient to the scores unchanged:

    dL/dS = dL/dW' * W        dL/dW = dL/dW' * M

(summed over a group's weights). The scores are parameters of the model, so the optimizer that
trains the weights trains them too. W is left untouched where M is 0: a pruned weight keeps its
value, its score still moves, and the weight comes back when its score climbs into the top
again. `fix` ends this: W becomes a plain parameter again and the pruned weights are zeroed.
"""
from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils import parametrize

from mmakit.techniques.pruning.masks import Masks


class ScoredMask(nn.Module):
    """The parametrization W -> W * M of one weight: M is the `keep` buffer (set from outside at
    every mask update), `scores` the trained importance, zero at the start as in Sanh et al."""

    def __init__(self, keep: torch.Tensor, group_size: int):
        super().__init__()
        self.group_size = group_size
        self.register_buffer("keep", keep.detach().clone())
        self.scores = nn.Parameter(torch.zeros(keep.numel() // group_size, device=keep.device))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        s = self.scores.repeat_interleave(self.group_size).view_as(weight)
        return weight * (self.keep + (s - s.detach()))  # value W * M; gradient to S: dL/dW' * W


def attach(model: nn.Module, masks: Masks) -> dict[str, ScoredMask]:
    """Put a `ScoredMask` on every weight of `masks` (the module names of `masks.weights`);
    `masks.weights` keep pointing at the same parameters, which now hold the unmasked values."""
    attached = {}
    for name in masks.weights:
        attached[name] = ScoredMask(masks.keep[name], masks.group_size)
        parametrize.register_parametrization(model.get_submodule(name), "weight", attached[name])
    return attached


@torch.no_grad()
def set_masks(attached: dict[str, ScoredMask], masks: Masks) -> None:
    """Copy the current keep-masks into the forward pass."""
    for name, scored in attached.items():
        scored.keep.copy_(masks.keep[name])


def scores(attached: dict[str, ScoredMask]) -> dict[str, torch.Tensor]:
    """The trained scores, one per group, detached."""
    return {name: scored.scores.detach() for name, scored in attached.items()}


def fix(model: nn.Module, masks: Masks) -> None:
    """Remove the parametrizations (each weight its original parameter again, so the optimizer
    keeps training it) and zero the pruned weights: the masks are fixed from now on."""
    for name in masks.weights:
        parametrize.remove_parametrizations(model.get_submodule(name), "weight", leave_parametrized=False)
    masks.apply()
