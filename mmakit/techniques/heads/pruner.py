"""Iterative structured pruning of one model, in place: score, choose, cut.

Each iteration recomputes importance on the current model, so heads removed earlier are out
of every later ranking, and cuts the chosen heads (and FFN neurons) out of the weights at
once: the model stays physically small between iterations (evaluated, exported and optionally
retrained as is). A masked model gives the same logits, which the tests check.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

import torch
from transformers import PreTrainedModel

from mmakit.techniques.heads.anatomy import blocks, remove_heads, remove_neurons, shape
from mmakit.techniques.heads.masks import importance
from mmakit.techniques.heads.strategy import (
    STRATEGIES,
    importance_plan,
    neuron_plan,
    uniform_plan,
)


@dataclass
class HeadPruningConfig:
    """How heads go: strategy, heads removed per iteration (over the whole model), and the
    fraction of each layer's original FFN size removed per iteration.

    `ffn_step=None` means: match the heads (uniform: the per-layer fraction of heads removed
    per iteration, as TextPruner shrinks both together; importance: leave the FFN alone).
    """

    strategy: str = "importance"
    heads_per_iteration: int = 12
    ffn_step: float | None = None

    def __post_init__(self) -> None:
        if self.strategy not in STRATEGIES:
            raise ValueError(f"strategy={self.strategy!r}; choose from {', '.join(STRATEGIES)}")
        if self.heads_per_iteration < 1:
            raise ValueError("heads_per_iteration must be at least 1")
        if self.ffn_step is not None and not 0 <= self.ffn_step < 1:
            raise ValueError(f"ffn_step={self.ffn_step!r} must lie in [0, 1)")

    def to_dict(self) -> dict:
        return asdict(self)


class HeadPruner:
    """Prunes `model` step by step and remembers which original heads survive in each layer."""

    def __init__(self, model: PreTrainedModel, cfg: HeadPruningConfig):
        self.model, self.cfg = model, cfg
        self.original = shape(model)
        self.kept: list[list[int]] = [list(range(h)) for h in self.original["heads"]]
        self.iteration = 0
        layers = len(self.kept)
        if cfg.strategy == "uniform" and cfg.heads_per_iteration % layers:
            raise ValueError(f"uniform pruning removes the same number of heads from each of the {layers} "
                             f"layers: heads_per_iteration={cfg.heads_per_iteration} is not a multiple of {layers}")

    @property
    def heads_per_layer(self) -> list[int]:
        return [len(k) for k in self.kept]

    @property
    def heads_removed(self) -> int:
        return sum(self.original["heads"]) - sum(self.heads_per_layer)

    @property
    def fraction_removed(self) -> float:
        return self.heads_removed / sum(self.original["heads"])

    @property
    def ffn_step(self) -> float:
        """The FFN fraction removed per iteration that this run actually uses."""
        if self.cfg.ffn_step is not None:
            return self.cfg.ffn_step
        if self.cfg.strategy == "uniform":
            return self.cfg.heads_per_iteration / sum(self.original["heads"])
        return 0.0

    def ffn_targets(self, iteration: int) -> list[int]:
        """Each layer's FFN size after `iteration` steps: original * (1 - iteration * ffn_step), at least 1."""
        return [max(1, round(n * (1 - iteration * self.ffn_step))) for n in self.original["intermediate"]]

    def can_step(self) -> bool:
        """Whether another iteration can remove heads and still keep one per layer."""
        if self.cfg.strategy == "uniform":
            return min(self.heads_per_layer) > self.cfg.heads_per_iteration // len(self.kept)
        return max(self.heads_per_layer) > 1

    def step(self, batches: Sequence[dict[str, torch.Tensor]]) -> dict:
        """One iteration: importance on `batches`, then cut the chosen heads and neurons.

        Returns, in original head numbering, the heads removed per layer and every head's
        importance before the cut (None for heads removed earlier), for the record.
        """
        if not self.can_step():
            raise ValueError(f"no head left to remove after {self.iteration} iterations (one per layer must stay)")
        scores = importance(self.model, batches)
        if self.cfg.strategy == "uniform":
            plan = uniform_plan(scores.heads, self.cfg.heads_per_iteration // len(self.kept))
        else:
            plan = importance_plan(scores.heads, self.cfg.heads_per_iteration)
        neurons = neuron_plan(scores.neurons, self.ffn_targets(self.iteration + 1))
        removed = [[self.kept[layer][h] for h in p] for layer, p in enumerate(plan)]
        scored = [[None] * n for n in self.original["heads"]]
        for layer, (kept, s) in enumerate(zip(self.kept, scores.heads)):
            for h, value in zip(kept, s.tolist()):
                scored[layer][h] = value
        for block, heads, cut in zip(blocks(self.model), plan, neurons):
            remove_heads(block, heads)
            remove_neurons(block, cut)
        self.kept = [[h for h in kept if h not in gone] for kept, gone in zip(self.kept, removed)]
        self.iteration += 1
        return {"removed": removed, "importance": scored}
