"""Which weights unstructured pruning touches: the encoder's Linear weights (Q, K, V, attention
output, intermediate, output). Embeddings, the classifier, the pooler, biases and LayerNorm
stay dense, as in the MMA and oBERT setups; the pattern is a parameter for other choices."""
from __future__ import annotations

import re

from torch import nn

# Linear modules inside a transformer layer: BERT/XLM-R `encoder.layer.N.*`, DistilBERT `transformer.layer.N.*`.
DEFAULT_SCOPE = r"(encoder|transformer)\.layer\.\d+\."
LAYER_INDEX = re.compile(r"\.layer\.(\d+)\.")


def prunable_weights(model: nn.Module, scope: str = DEFAULT_SCOPE) -> dict[str, nn.Parameter]:
    """Weight matrices of the nn.Linear modules whose qualified name matches `scope`, by module name."""
    pattern = re.compile(scope)
    found = {name: m.weight for name, m in model.named_modules() if isinstance(m, nn.Linear) and pattern.search(name)}
    if not found:
        raise ValueError(f"no nn.Linear module of {type(model).__name__} matches the pruning scope {scope!r}")
    return found


def layer_of(name: str) -> str:
    """The transformer layer a module belongs to ("3"), or the name itself outside numbered layers."""
    match = LAYER_INDEX.search(f".{name}.")
    return match.group(1) if match else name
