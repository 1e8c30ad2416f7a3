"""Gradients of the pruned weights on English training mini-batches, one per mini-batch: the
samples of the empirical Fisher (OBS) and of first-order scores when no training step has
accumulated movement yet. Taken in eval mode (no dropout) and multiplied by the current mask."""
from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass

import torch
from datasets import Dataset
from torch import nn

from mmakit.core.batching import iterate
from mmakit.techniques.pruning.masks import Masks


def sample_batches(lengths: list[int], count: int, batch_size: int, seed: int) -> list[list[int]]:
    """`count` mini-batches of sentence indices drawn at random (repeating only after every sentence
    was drawn), grouped by length so that little of each batch is padding."""
    rng = random.Random(seed)
    order: list[int] = []
    while len(order) < count * batch_size:
        chunk = list(range(len(lengths)))
        rng.shuffle(chunk)
        order += chunk
    drawn = sorted(order[: count * batch_size], key=lambda i: lengths[i])
    return [drawn[i * batch_size : (i + 1) * batch_size] for i in range(count)]


@torch.enable_grad()
def for_each_gradient(model: nn.Module, masks: Masks, train: Dataset, pad_id: int, count: int,
                      batch_size: int, seed: int, consume: Callable[[list[torch.Tensor]], None]) -> None:
    """Call `consume` with the masked gradients of `masks.weights` on each of `count` mini-batches.

    Only the pruned weights get gradients (the rest are frozen for the pass), which keeps the
    backward cheap; the model's training mode and requires_grad flags are restored afterwards.
    """
    was_training = model.training
    flags = {p: p.requires_grad for p in model.parameters()}
    weights = list(masks.weights.items())
    model.eval()
    for p in model.parameters():
        p.requires_grad_(False)
    for _, w in weights:
        w.requires_grad_(True)
        w.grad = None
    try:
        lengths = [len(x) for x in train["input_ids"]]
        for batch in iterate(train, sample_batches(lengths, count, batch_size, seed), pad_id):
            model(**batch).loss.backward()
            consume([w.grad.mul_(masks.keep[name]) for name, w in weights])
            for _, w in weights:
                w.grad = None
    finally:
        for p, flag in flags.items():
            p.requires_grad_(flag)
            p.grad = None
        model.train(was_training)


@dataclass
class GradientSource:
    """Where pruning gradients come from: `count` mini-batches of `batch_size` English training
    sentences, drawn afresh (seeded) at every pruning step."""

    train: Dataset
    pad_id: int
    count: int
    batch_size: int
    seed: int

    def each(self, model: nn.Module, masks: Masks, round_index: int, consume: Callable[[list[torch.Tensor]], None]) -> None:
        """Feed the masked gradients of pruning step `round_index` to `consume`."""
        for_each_gradient(model, masks, self.train, self.pad_id, self.count, self.batch_size,
                          self.seed * 1000 + round_index, consume)
