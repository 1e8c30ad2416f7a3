"""Multiplicative masks on attention heads and FFN neurons, and importance as their gradient.

transformers 5 dropped the `head_mask` argument, so the mask xi_h of Michel et al. is applied
by a forward pre-hook on the attention-output projection: its input is the heads' contexts
side by side, reshaped here to [..., heads, head_size] and scaled per head. FFN neurons get
the same treatment on the input of the FFN output Linear.

Importance of a unit is E_batches |dL/dxi| at xi = 1 (Michel et al.). Because xi scales the
input of a Linear, dL/dxi equals sum(grad * W) over that unit's columns of the Linear, so the
same number is the first-order Taylor score |sum grad * W| used by TextPruner-style pruning.
"""
from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from transformers import PreTrainedModel

from mmakit.techniques.heads.anatomy import Block, blocks


class UnitMasks:
    """Masks of every head and FFN neuron of `model`, active inside a `with` block.

    `heads[l]` and `neurons[l]` are leaf tensors of ones (shape [heads] and [ffn size]) that
    require grad; set entries to 0 to mask units, read `.grad` after a backward pass.
    """

    def __init__(self, model: PreTrainedModel):
        self.blocks = blocks(model)
        self.heads = [torch.ones(b.n_heads, requires_grad=True) for b in self.blocks]
        self.neurons = [torch.ones(b.ffn_size, requires_grad=True) for b in self.blocks]
        self._handles: list[torch.utils.hooks.RemovableHandle] = []

    def __enter__(self) -> UnitMasks:
        for block, head_mask, neuron_mask in zip(self.blocks, self.heads, self.neurons):
            self._handles.append(block.attention_output.register_forward_pre_hook(_scale_heads(block, head_mask)))
            self._handles.append(block.ffn_out.register_forward_pre_hook(_scale_neurons(neuron_mask)))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()


def _scale_heads(block: Block, mask: torch.Tensor):
    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        x = args[0]
        per_head = x.reshape(*x.shape[:-1], -1, block.head_size) * mask[:, None].to(x.dtype)
        return (per_head.reshape(x.shape), *args[1:])

    return hook


def _scale_neurons(mask: torch.Tensor):
    def hook(module: torch.nn.Module, args: tuple) -> tuple:
        return (args[0] * mask.to(args[0].dtype), *args[1:])

    return hook


@dataclass
class Importance:
    """Mean |dL/dxi| per layer for heads and FFN neurons, in the model's current numbering."""

    heads: list[torch.Tensor]
    neurons: list[torch.Tensor]
    batches: int


def importance(model: PreTrainedModel, batches: Iterable[dict[str, torch.Tensor]]) -> Importance:
    """Mean absolute gradient of the loss with respect to every head and neuron mask.

    Batches carry `labels`; the model runs in eval mode (no dropout) with its weights frozen
    for the duration, so backward computes only what the mask gradients need.
    """
    was_training = model.training
    model.eval()
    flags = [(p, p.requires_grad) for p in model.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    masks = UnitMasks(model)
    head_sum = [torch.zeros_like(m) for m in masks.heads]
    neuron_sum = [torch.zeros_like(m) for m in masks.neurons]
    n = 0
    try:
        with masks:
            for batch in batches:
                loss = model(**batch).loss
                grads = torch.autograd.grad(loss, masks.heads + masks.neurons)
                for acc, g in zip(head_sum + neuron_sum, grads):
                    acc += g.abs()
                n += 1
    finally:
        for p, flag in flags:
            p.requires_grad_(flag)
        model.train(was_training)
    if n == 0:
        raise ValueError("importance needs at least one batch")
    return Importance([s / n for s in head_sum], [s / n for s in neuron_sum], n)
