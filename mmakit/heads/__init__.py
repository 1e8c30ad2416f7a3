"""Structured pruning of attention heads (and FFN neurons): masks and importance, the two
strategies of the study, physical removal, and the 02_heads experiment."""
from .anatomy import blocks, load_pruned, remove_heads, remove_neurons, shape
from .masks import UnitMasks, importance
from .pruner import HeadPruner, PruningConfig

__all__ = ["blocks", "load_pruned", "remove_heads", "remove_neurons", "shape", "UnitMasks", "importance",
           "HeadPruner", "PruningConfig"]
