"""Quantization-aware training: fine-tune with int8 fake-quantization on the layers that the
exported graph will run in int8, so the weights learn to live with the rounding.

The fake-quantization mirrors onnxruntime's static QOperator arithmetic exactly, so nothing
is lost between training and deployment except what onnxruntime itself changes:
- a Linear becomes y = q_out(q_in(x) @ q_w(W)^T) + b, as QLinearMatMul followed by a float
  bias Add: weights int8 symmetric (scale = max|W| / 127, per tensor or per output row),
  input and pre-bias output uint8 asymmetric over a tracked (min, max) range;
- an embedding lookup returns rows of the table quantized uint8 asymmetric over the table's
  own (min, max), as onnxruntime's quantized Gather does;
- softmax, LayerNorm, GELU, residual Adds and the attention-score products stay in float.
Activation ranges are exponential moving averages of each batch's min and max (like
PyTorch's MovingAverageMinMaxObserver), frozen after a fraction of the steps so the last
steps train against fixed ranges (the oBERT recipe freezes observers half way). They are not
learned by gradient. `train_qat` returns them per module; the pipeline writes them into the
int8 graph in place of a calibration. Exact zeros of a sparse model stay zero throughout.
"""
from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from datasets import Dataset
from torch import nn
from transformers import PreTrainedModel

from mmakit.core.train import TrainConfig, TrainHooks, TrainLog, fine_tune, total_steps
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.scope import prunable_weights

MIN_SPARSITY = 0.05  # encoder Linear weights at least this sparse count as a pruned model
MOMENTUM = 0.01      # weight of the newest batch in the moving min/max


def fake_quant_weight(w: torch.Tensor, per_channel: bool) -> torch.Tensor:
    """int8 symmetric fake-quantization in [-127, 127], as onnxruntime quantizes weights."""
    if per_channel:
        scale = (w.detach().abs().amax(dim=1) / 127).clamp_min(1e-12)
        return torch.fake_quantize_per_channel_affine(w, scale, torch.zeros_like(scale, dtype=torch.int32), 0, -127, 127)
    scale = float(w.detach().abs().max()) / 127 or 1.0
    return torch.fake_quantize_per_tensor_affine(w, scale, 0, -127, 127)


def fake_quant_uint8(x: torch.Tensor, low: float, high: float) -> torch.Tensor:
    """uint8 asymmetric fake-quantization over [low, high] widened to include 0 (onnxruntime's rule)."""
    low, high = min(low, 0.0), max(high, 0.0)
    scale = (high - low) / 255 or 1.0
    return torch.fake_quantize_per_tensor_affine(x, scale, int(round(-low / scale)), 0, 255)


class ActivationRange(nn.Module):
    """Tracks a tensor's (min, max) while observing and fake-quantizes it to uint8 over that range."""

    def __init__(self) -> None:
        super().__init__()
        self.observing = True
        self.register_buffer("low", torch.tensor(float("inf")))
        self.register_buffer("high", torch.tensor(float("-inf")))

    @property
    def seen(self) -> bool:
        return bool(torch.isfinite(self.low))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.observing and self.training:
            low, high = torch.aminmax(x.detach())
            if self.seen:
                low, high = torch.lerp(self.low, low, MOMENTUM), torch.lerp(self.high, high, MOMENTUM)
            self.low.copy_(low)
            self.high.copy_(high)
        return fake_quant_uint8(x, float(self.low), float(self.high)) if self.seen else x

    def range(self) -> tuple[float, float]:
        return float(self.low), float(self.high)


class QuantLinear(nn.Module):
    """A Linear trained as QLinearMatMul + float bias: input, weight and pre-bias output fake-quantized."""

    def __init__(self, linear: nn.Linear, per_channel: bool):
        super().__init__()
        self.linear, self.per_channel = linear, per_channel
        self.input_range, self.output_range = ActivationRange(), ActivationRange()

    @property
    def weight(self) -> nn.Parameter:
        return self.linear.weight

    @property
    def bias(self) -> nn.Parameter | None:
        return self.linear.bias

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = self.output_range(F.linear(self.input_range(x), fake_quant_weight(self.linear.weight, self.per_channel)))
        return y if self.linear.bias is None else y + self.linear.bias


class QuantEmbedding(nn.Module):
    """An embedding whose looked-up rows are fake-quantized over the whole table's range."""

    def __init__(self, embedding: nn.Embedding):
        super().__init__()
        self.embedding = embedding
        self._frozen_range: tuple[float, float] | None = None

    @property
    def weight(self) -> nn.Parameter:
        return self.embedding.weight

    def table_range(self) -> tuple[float, float]:
        """(min, max) of the table; computed once while the table is frozen."""
        if self.weight.requires_grad or self._frozen_range is None:
            low, high = torch.aminmax(self.weight.detach())
            self._frozen_range = (float(low), float(high))
        return self._frozen_range

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return fake_quant_uint8(self.embedding(ids), *self.table_range())


def _swap(model: nn.Module, name: str, new: nn.Module) -> None:
    parent, _, child = name.rpartition(".")
    setattr(model.get_submodule(parent) if parent else model, child, new)


def prepare(model: nn.Module, linears: Iterable[str], embeddings: Iterable[str],
            per_channel: bool = False) -> dict[str, nn.Module]:
    """Wrap the named Linear and Embedding modules in place; return the wrappers by module name."""
    wrappers: dict[str, nn.Module] = {}
    for name in linears:
        wrappers[name] = QuantLinear(model.get_submodule(name), per_channel)
    for name in embeddings:
        wrappers[name] = QuantEmbedding(model.get_submodule(name))
    for name, wrapper in wrappers.items():
        _swap(model, name, wrapper)
    return wrappers


def strip(model: nn.Module, wrappers: dict[str, nn.Module]) -> dict[str, dict[str, tuple[float, float]]]:
    """Put the original modules back (with their trained weights); return each Linear's ranges."""
    ranges = {}
    for name, wrapper in wrappers.items():
        if isinstance(wrapper, QuantLinear):
            ranges[name] = {"input": wrapper.input_range.range(), "output": wrapper.output_range.range()}
            _swap(model, name, wrapper.linear)
        else:
            _swap(model, name, wrapper.embedding)
    return ranges


def sparsity_masks(model: nn.Module) -> Masks | None:
    """Keep-masks of the encoder's exact zeros when the model is pruned (at least MIN_SPARSITY), else None."""
    masks = Masks(prunable_weights(model))
    masks.keep = {name: w.detach() != 0 for name, w in masks.weights.items()}
    return masks if masks.sparsity() >= MIN_SPARSITY else None


class QATHooks(TrainHooks):
    """Freezes the activation ranges after `freeze_step` steps and keeps pruned weights at zero."""

    def __init__(self, ranges: Sequence[ActivationRange], freeze_step: int, masks: Masks | None):
        self.ranges, self.freeze_step, self.masks = ranges, freeze_step, masks

    def after_backward(self, step: int, model: PreTrainedModel) -> None:
        if self.masks:
            self.masks.mask_grads()

    def after_step(self, step: int, model: PreTrainedModel) -> None:
        if self.masks:
            self.masks.apply()
        if step >= self.freeze_step:
            for r in self.ranges:
                r.observing = False


@dataclass
class QATResult:
    """Per-Linear activation ranges at the end of training, the training log, and what was kept sparse."""

    ranges: dict[str, dict[str, tuple[float, float]]]
    log: TrainLog
    freeze_step: int
    sparsity: float | None

    def summary(self) -> dict:
        return {"steps": self.log.steps, "seconds": round(self.log.seconds, 1), "freeze_ranges_step": self.freeze_step,
                "final_loss": sum(self.log.losses[-50:]) / max(1, len(self.log.losses[-50:])),
                "kept_sparsity": self.sparsity, "quantized_linears": len(self.ranges)}


def train_qat(
    model: PreTrainedModel,
    train: Dataset,
    cfg: TrainConfig,
    pad_id: int,
    linears: Iterable[str],
    embeddings: Iterable[str] = (),
    per_channel: bool = False,
    freeze_fraction: float = 0.5,
    hooks: Sequence[TrainHooks] = (),
) -> QATResult:
    """Fine-tune `model` in place with the named modules fake-quantized; leave it as a plain fp32 model.

    `train` is a tokenized dataset; `hooks` run beside QAT's own (e.g. a distillation loss).
    """
    if not 0 <= freeze_fraction <= 1:
        raise ValueError(f"freeze_fraction={freeze_fraction} must lie in [0, 1]")
    masks = sparsity_masks(model)
    wrappers = prepare(model, linears, embeddings, per_channel)
    observers = [r for w in wrappers.values() if isinstance(w, QuantLinear) for r in (w.input_range, w.output_range)]
    freeze_step = round(freeze_fraction * total_steps(len(train), cfg))
    try:
        log = fine_tune(model, train, cfg, pad_id, hooks=[QATHooks(observers, freeze_step, masks), *hooks], desc="QAT")
    finally:
        ranges = strip(model, wrappers)
    return QATResult(ranges, log, freeze_step, masks.sparsity() if masks else None)
