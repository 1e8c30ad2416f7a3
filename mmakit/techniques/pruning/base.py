"""The interface every pruning method implements, so the gradual driver and one-shot pruning
treat magnitude, movement and OBS alike."""
from __future__ import annotations

from torch import nn

from mmakit.techniques.pruning.masks import Masks


class Pruner:
    """Scores the prunable weights and prunes them to a target global sparsity."""

    method = "base"

    def start(self, model: nn.Module, masks: Masks) -> None:
        """Called once before training and the first pruning step (trained movement scores attach here)."""

    @property
    def zeroes_pruned(self) -> bool:
        """Whether masked weights are held at exactly zero after every optimizer step. False
        while a method masks them in the forward only, so that they keep their values and can
        come back (trained movement scores until the masks are fixed)."""
        return True

    def observe(self, masks: Masks) -> None:
        """Called after every training backward, gradients in `.grad` (movement accumulates here)."""

    def prune(self, model: nn.Module, masks: Masks, sparsity: float, round_index: int) -> dict:
        """Extend `masks` to `sparsity`, update and zero the weights; return statistics of the step."""
        raise NotImplementedError
