"""Everything that determines a pruning run, and the pruner it asks for."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from datasets import Dataset

from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.fisher import BUILDS
from mmakit.techniques.pruning.gradients import GradientSource
from mmakit.techniques.pruning.magnitude import MagnitudePruner
from mmakit.techniques.pruning.movement import SCORES, MovementPruner, TrainedMovementPruner
from mmakit.techniques.pruning.obs import ObsPruner
from mmakit.techniques.pruning.random_pruning import RandomPruner
from mmakit.techniques.pruning.schedule import SCHEDULES, PruningPlan, sparsity_schedule
from mmakit.techniques.pruning.scope import DEFAULT_SCOPE

METHODS = ("obs", "magnitude", "movement", "random")  # random: the control
GROUP_SIZES = (1, 4)  # unstructured, or blocks of 4 consecutive weights
MODES = ("gradual", "one_shot")  # three stages with retraining, or one step from the dense model
STARTS = ("baseline", "pretrained")  # gradual pruning of the fine-tuned model, or while fine-tuning the pre-trained one


@dataclass(frozen=True)
class PruningConfig:
    """Method, sparsity schedule, stage lengths (optimizer steps) and OBS settings.

    `pruning_steps` counts pruning events, the first at `initial_sparsity` and the last at
    `sparsity`; `num_grads` mini-batches of `grad_batch` sentences feed OBS's Fisher (and
    movement's scores when no training step precedes a pruning step). `selection` ranks all
    tensors together ("global") or each on its own ("per_tensor"); `Masks` checks it.
    `movement_scores` picks movement's variant (movement.py): "accumulated" (SparseML's
    -sum g w) or "trained" (Sanh et al.'s scores learnt through a straight-through mask).
    `lr_rewind` rewinds the learning rate after every pruning event (the cyclic schedule oBERT
    and MMA use from a fine-tuned model); without it the run keeps one warm-up and linear
    decay, as a fine-tuning run from the pre-trained encoder does (Sanh et al.).
    """

    method: str = "obs"
    sparsity: float = 0.9
    initial_sparsity: float = 0.7
    schedule: str = "cubic"
    pruning_steps: int = 4
    warmup_steps: int = 0
    prune_interval: int = 30
    final_steps: int = 60
    group_size: int = 1
    selection: str = "global"
    scope: str = DEFAULT_SCOPE
    num_grads: int = 64
    grad_batch: int = 8
    obs_block_size: int = 32
    obs_damp: float = 1e-7
    obs_chunk_blocks: int = 2048
    obs_build: str = "sherman-morrison"
    movement_scores: str = "accumulated"
    lr_rewind: bool = True

    def __post_init__(self) -> None:
        if self.method not in METHODS:
            raise ValueError(f"unknown pruning method {self.method!r}; choose from {', '.join(METHODS)}")
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if not 0 <= self.initial_sparsity <= self.sparsity < 1:
            raise ValueError(f"need 0 <= initial_sparsity ({self.initial_sparsity}) <= sparsity ({self.sparsity}) < 1")
        if self.group_size not in GROUP_SIZES:
            raise ValueError(f"group_size must be 1 (unstructured) or 4 (4-block), not {self.group_size}")
        if self.obs_build not in BUILDS:
            raise ValueError(f"unknown obs_build {self.obs_build!r}; choose from {', '.join(BUILDS)}")
        if self.obs_block_size % self.group_size:
            raise ValueError(f"obs_block_size {self.obs_block_size} must be a multiple of group_size {self.group_size}")
        if self.movement_scores not in SCORES:
            raise ValueError(f"unknown movement_scores {self.movement_scores!r}; choose from {', '.join(SCORES)}")
        if self.movement_scores == "trained" and self.method != "movement":
            raise ValueError(f"movement_scores 'trained' applies to method movement, not {self.method!r}")
        if self.movement_scores == "trained" and self.warmup_steps == 0 and self.initial_sparsity > 0:
            raise ValueError("trained movement scores are all zero before the first step: start the schedule at "
                             "initial_sparsity 0 (Sanh et al.) or train first (warmup_steps > 0)")
        self.plan  # validates the stage lengths

    @property
    def plan(self) -> PruningPlan:
        return PruningPlan(self.warmup_steps, self.prune_interval, self.pruning_steps, self.final_steps)

    @property
    def restarts(self) -> list[int]:
        """Steps where the learning rate rewinds: after every pruning event with `lr_rewind`, else none."""
        return self.plan.restarts if self.lr_rewind else []

    @property
    def targets(self) -> list[float]:
        """Target sparsity at each pruning event."""
        return sparsity_schedule(self.initial_sparsity, self.sparsity, self.pruning_steps, self.schedule)

    def to_dict(self) -> dict:
        return asdict(self)


def make_pruner(cfg: PruningConfig, train: Dataset, pad_id: int, seed: int) -> Pruner:
    """The pruner of `cfg.method`, drawing its gradients from tokenized English `train`."""
    source = GradientSource(train, pad_id, cfg.num_grads, cfg.grad_batch, seed)
    if cfg.method == "obs":
        return ObsPruner(source, cfg.obs_block_size, cfg.obs_damp, cfg.obs_chunk_blocks, cfg.obs_build)
    if cfg.method == "movement":
        return TrainedMovementPruner(cfg.pruning_steps) if cfg.movement_scores == "trained" else MovementPruner(source)
    if cfg.method == "random":
        return RandomPruner(seed)
    return MagnitudePruner()
