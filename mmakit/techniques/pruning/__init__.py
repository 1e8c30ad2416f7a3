"""Unstructured pruning of the encoder's Linear weights: magnitude, movement (Sanh et al.'s
trained scores or SparseML's accumulated ones) and OBS (oBERT), gradual (three stages, cubic or
linear sparsity curve) or one-shot, with exact global or per-tensor sparsity."""
from mmakit.techniques.pruning.config import METHODS, PruningConfig, make_pruner
from mmakit.techniques.pruning.fisher import BlockFisherInverse
from mmakit.techniques.pruning.gradual import (
    PruningHook,
    PruningLog,
    gradual_prune,
    one_shot,
)
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.obs import fisher_inverse, obs_prune
from mmakit.techniques.pruning.schedule import PruningPlan, sparsity_schedule
from mmakit.techniques.pruning.scope import DEFAULT_SCOPE, prunable_weights

__all__ = [
    "METHODS", "PruningConfig", "make_pruner", "BlockFisherInverse", "PruningHook", "PruningLog", "gradual_prune",
    "one_shot", "Masks", "fisher_inverse", "obs_prune", "PruningPlan", "sparsity_schedule", "DEFAULT_SCOPE",
    "prunable_weights",
]
