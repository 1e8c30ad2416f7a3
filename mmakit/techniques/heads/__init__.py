"""Structured pruning of attention heads (and FFN neurons): masks and importance, the two
strategies of the study, physical removal, and the 02_heads experiment."""
from mmakit.techniques.heads.anatomy import (
           blocks,
           load_pruned,
           remove_heads,
           remove_neurons,
           shape,
)
from mmakit.techniques.heads.masks import UnitMasks, importance
from mmakit.techniques.heads.pruner import HeadPruner, HeadPruningConfig

__all__ = ["blocks", "load_pruned", "remove_heads", "remove_neurons", "shape", "UnitMasks", "importance",
           "HeadPruner", "HeadPruningConfig"]
