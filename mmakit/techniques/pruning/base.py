"""The interface every pruning method implements, so the gradual driver and one-shot pruning
treat magnitude, movement and OBS alike."""
from __future__ import annotations

from torch import nn

from mmakit.techniques.pruning.masks import Masks


class Pruner:
    """Scores the prunable weights and prunes them to a target global sparsity."""

    method = "base"

    def observe(self, masks: Masks) -> None:
        """Called after every training backward, gradients in `.grad` (movement accumulates here)."""

    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        """Extend `masks` to `sparsity`, update and zero the weights; return statistics of the step."""
        raise NotImplementedError
