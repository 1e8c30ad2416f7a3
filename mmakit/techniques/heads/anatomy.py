"""Where the heads and FFN neurons of an encoder live, and cutting them out of the weights.

transformers 5 has no `prune_heads` and no `pruned_heads` config any more, so slicing is done
here: a head is `head_size` consecutive rows of Q, K and V and the same columns of the
attention-output projection; an FFN neuron is one row of the intermediate Linear and one
column of the FFN output Linear. The attention modules reshape with `-1` heads, so a layer
runs with any number of heads once its weights are sliced, and layers may differ.
`from_pretrained` cannot rebuild such a model (the config has one head count for all layers),
so `load_pruned` rebuilds the layers from the saved weight shapes.
"""
from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors.torch import load_file
from torch import nn
from transformers import AutoConfig, AutoModelForTokenClassification, PreTrainedModel


@dataclass
class Block:
    """The prunable Linear layers of one transformer layer, by role."""

    attention: nn.Module  # the self-attention module (keeps head-count attributes)
    query: nn.Linear
    key: nn.Linear
    value: nn.Linear
    attention_output: nn.Linear  # its input is the heads' contexts side by side
    ffn_in: nn.Linear
    ffn_out: nn.Linear  # its input is the FFN neurons' activations
    head_size: int

    @property
    def n_heads(self) -> int:
        return self.query.out_features // self.head_size

    @property
    def ffn_size(self) -> int:
        return self.ffn_in.out_features


def blocks(model: PreTrainedModel) -> list[Block]:
    """The layers of a BERT, XLM-R or DistilBERT encoder (any task head) as Blocks."""
    kind = model.config.model_type
    base = model.base_model
    if kind in ("bert", "xlm-roberta"):
        return [
            Block(layer.attention.self, layer.attention.self.query, layer.attention.self.key,
                  layer.attention.self.value, layer.attention.output.dense, layer.intermediate.dense,
                  layer.output.dense, layer.attention.self.attention_head_size)
            for layer in base.encoder.layer
        ]
    if kind == "distilbert":
        return [
            Block(layer.attention, layer.attention.q_lin, layer.attention.k_lin, layer.attention.v_lin,
                  layer.attention.out_lin, layer.ffn.lin1, layer.ffn.lin2, layer.attention.attention_head_size)
            for layer in base.transformer.layer
        ]
    raise ValueError(f"head pruning supports bert, xlm-roberta and distilbert, not {kind!r}")


def shape(model: PreTrainedModel) -> dict[str, list[int]]:
    """Heads and FFN neurons per layer."""
    bs = blocks(model)
    return {"heads": [b.n_heads for b in bs], "intermediate": [b.ffn_size for b in bs]}


def _keep(linear: nn.Linear, index: torch.Tensor, dim: int) -> None:
    """Keep the rows (dim 0, with the bias) or columns (dim 1) of `linear` at `index`, in place."""
    weight = linear.weight
    linear.weight = nn.Parameter(weight.data.index_select(dim, index).clone(), requires_grad=weight.requires_grad)
    if dim == 0:
        if linear.bias is not None:
            linear.bias = nn.Parameter(linear.bias.data[index].clone(), requires_grad=linear.bias.requires_grad)
        linear.out_features = len(index)
    else:
        linear.in_features = len(index)


def remove_heads(block: Block, heads: Sequence[int]) -> None:
    """Cut the heads at positions `heads` (in the block's current numbering) out of its weights."""
    if not heads:
        return
    keep = [h for h in range(block.n_heads) if h not in set(heads)]
    if not keep:
        raise ValueError("a layer must keep at least one head")
    d = block.head_size
    index = torch.tensor([h * d + i for h in keep for i in range(d)])
    for linear in (block.query, block.key, block.value):
        _keep(linear, index, 0)
    _keep(block.attention_output, index, 1)
    for name in ("num_attention_heads", "n_heads"):
        if hasattr(block.attention, name):
            setattr(block.attention, name, len(keep))
    if hasattr(block.attention, "all_head_size"):
        block.attention.all_head_size = len(keep) * d


def remove_neurons(block: Block, neurons: Sequence[int]) -> None:
    """Cut the FFN neurons at positions `neurons` out of the intermediate and output Linears."""
    if not neurons:
        return
    keep = torch.tensor([n for n in range(block.ffn_size) if n not in set(neurons)])
    if len(keep) == 0:
        raise ValueError("a layer must keep at least one FFN neuron")
    _keep(block.ffn_in, keep, 0)
    _keep(block.ffn_out, keep, 1)


def _saved_state(folder: Path) -> dict[str, torch.Tensor]:
    files = sorted(folder.glob("*.safetensors"))
    if not files:
        raise FileNotFoundError(f"no .safetensors weights in {folder}")
    state: dict[str, torch.Tensor] = {}
    for f in files:
        state |= load_file(f)
    return state


def load_pruned(folder: str | Path) -> PreTrainedModel:
    """A token classifier saved with `save_pretrained` after head/neuron pruning, rebuilt from
    the shapes of its saved weights (an unpruned model loads too)."""
    folder = Path(folder)
    config = AutoConfig.from_pretrained(folder)
    model = AutoModelForTokenClassification.from_config(config)
    state = _saved_state(folder)
    names = {id(module): name for name, module in model.named_modules()}
    for block in blocks(model):
        heads = state[f"{names[id(block.query)]}.weight"].shape[0] // block.head_size
        neurons = state[f"{names[id(block.ffn_in)]}.weight"].shape[0]
        remove_heads(block, range(heads, block.n_heads))
        remove_neurons(block, range(neurons, block.ffn_size))
    model.load_state_dict(state, strict=True)
    return model.eval()
