"""Students made from a pretrained encoder by keeping some of its transformer layers (DistilBERT
was initialised from every other layer of BERT): a copy of the model whose encoder holds only
the chosen layers, in their order, with the config updated so it saves and loads as is."""
from __future__ import annotations

import copy
from dataclasses import asdict, dataclass

from torch import nn
from transformers import PreTrainedModel

# how the kept layers are picked when no explicit list is given
LAYER_CHOICES = ("alternate", "bottom", "top")


@dataclass(frozen=True)
class StudentConfig:
    """Which layers of the teacher-sized encoder a student keeps: `layers` (explicit indices),
    else `size` layers picked by `choice`: "alternate" spreads them evenly and always keeps the
    top layer (12 -> 6: 1,3,5,7,9,11 as DistilBERT; 12 -> 3: 3,7,11), "bottom" the first
    `size`, "top" the last `size`."""

    size: int = 6
    choice: str = "alternate"
    layers: tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        if self.choice not in LAYER_CHOICES:
            raise ValueError(f"choice={self.choice!r} is not valid; choose from {', '.join(LAYER_CHOICES)}")
        if self.layers is None and self.size < 1:
            raise ValueError("a student keeps at least one layer")

    def keep(self, total: int) -> list[int]:
        """The layer indices kept out of `total`, ascending."""
        if self.layers is not None:
            keep = sorted({int(i) for i in self.layers})
            bad = [i for i in keep if not 0 <= i < total]
            if bad or not keep:
                raise ValueError(f"layers {list(self.layers)} are not a non-empty set of indices in 0..{total - 1}")
            return keep
        if self.size > total:
            raise ValueError(f"a student of {self.size} layers from an encoder of {total}")
        if self.choice == "bottom":
            return list(range(self.size))
        if self.choice == "top":
            return list(range(total - self.size, total))
        return [round((i + 1) * total / self.size) - 1 for i in range(self.size)]

    def to_dict(self) -> dict:
        return asdict(self) | {"layers": list(self.layers) if self.layers is not None else None}


def encoder_layers(model: PreTrainedModel) -> nn.ModuleList:
    """The transformer layers of a BERT, XLM-R (encoder.layer) or DistilBERT (transformer.layer) model."""
    base = model.base_model
    for path in (("encoder", "layer"), ("transformer", "layer")):
        module = base
        for name in path:
            module = getattr(module, name, None)
        if isinstance(module, nn.ModuleList):
            return module
    raise TypeError(f"{type(model).__name__}: no encoder.layer or transformer.layer ModuleList")


def _set_layers(model: PreTrainedModel, layers: nn.ModuleList) -> None:
    base = model.base_model
    holder = base.encoder if hasattr(base, "encoder") else base.transformer
    holder.layer = layers
    for attr in ("num_hidden_layers", "n_layers"):  # BERT/XLM-R, DistilBERT
        if hasattr(model.config, attr):
            setattr(model.config, attr, len(layers))


def drop_layers(model: PreTrainedModel, keep: list[int]) -> PreTrainedModel:
    """A copy of `model` whose encoder holds only the layers `keep` (ascending), renumbered 0..n-1."""
    layers = encoder_layers(model)
    keep = sorted(keep)
    if not keep or keep[0] < 0 or keep[-1] >= len(layers):
        raise ValueError(f"layers {keep} are not indices of an encoder of {len(layers)} layers")
    student = copy.deepcopy(model)
    kept = nn.ModuleList(copy.deepcopy(layers[i]) for i in keep)
    for new_index, layer in enumerate(kept):
        for module in layer.modules():
            if hasattr(module, "layer_idx"):  # key/value caches are indexed by it
                module.layer_idx = new_index
    _set_layers(student, kept)
    return student


def make_student(model: PreTrainedModel, config: StudentConfig) -> tuple[PreTrainedModel, list[int]]:
    """(student, kept layer indices) of `model` by `config`."""
    keep = config.keep(len(encoder_layers(model)))
    return drop_layers(model, keep), keep
