"""Unstructured pruning of the encoder's Linear weights: magnitude, movement and OBS (oBERT),
gradual (three stages, cubic or linear sparsity curve) or one-shot, with exact global sparsity."""
from .config import METHODS, PruningConfig, make_pruner
from .fisher import BlockFisherInverse
from .gradual import PruningHook, PruningLog, gradual_prune, one_shot
from .masks import Masks
from .obs import fisher_inverse, obs_prune
from .schedule import PruningPlan, sparsity_schedule
from .scope import DEFAULT_SCOPE, prunable_weights

__all__ = [
    "METHODS", "PruningConfig", "make_pruner", "BlockFisherInverse", "PruningHook", "PruningLog", "gradual_prune",
    "one_shot", "Masks", "fisher_inverse", "obs_prune", "PruningPlan", "sparsity_schedule", "DEFAULT_SCOPE",
    "prunable_weights",
]
