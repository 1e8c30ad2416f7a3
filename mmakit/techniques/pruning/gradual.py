"""Gradual pruning in three stages (fine-tune, prune every `prune_interval` steps along the
sparsity curve, fine-tune with fixed masks) inside one run of the shared training loop, with a
cyclic learning rate rewound after each pruning step (or, without `lr_rewind`, one warm-up and
decay over the whole run) and optional extra training hooks (the driver passes distillation from
the dense model this way). Dev F1 per language is measured just before and after the pruning
steps (at most CURVE_EVENTS of them, evenly spread, when masks are updated every few steps): the
curve.
"""
from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

from datasets import Dataset
from transformers import PreTrainedModel

from mmakit.core.train import TrainConfig, TrainHooks, fine_tune
from mmakit.techniques.pruning.base import Pruner
from mmakit.techniques.pruning.config import PruningConfig, make_pruner
from mmakit.techniques.pruning.masks import Masks
from mmakit.techniques.pruning.schedule import epochs_for_steps
from mmakit.techniques.pruning.scope import prunable_weights

CurveFn = Callable[[PreTrainedModel], dict[str, float]]  # model -> dev F1 per language
CURVE_EVENTS = 12  # pruning events with curve points, at most (the first and last among them)


def curve_events(events: int, most: int = CURVE_EVENTS) -> set[int]:
    """Indices of the pruning events that get curve points: all of them up to `most`, else
    `most` evenly spread from the first to the last."""
    if events <= most:
        return set(range(events))
    return {round(k * (events - 1) / (most - 1)) for k in range(most)}


@dataclass
class PruningLog:
    """What a pruning run did: curve points, per-step statistics, final sparsity, and a training
    summary whose loop seconds include the pruning and curve seconds it also lists."""

    curve: list[dict] = field(default_factory=list)
    steps: list[dict] = field(default_factory=list)
    sparsity: dict = field(default_factory=dict)
    training: dict = field(default_factory=dict)


class PruningHook(TrainHooks):
    """Masks gradients and weights at every step (weights only while the pruner holds pruned
    weights at zero) and prunes at the planned steps."""

    def __init__(self, pruner: Pruner, masks: Masks, cfg: PruningConfig, curve_fn: CurveFn | None = None):
        self.pruner, self.masks, self.curve_fn = pruner, masks, curve_fn
        self.events = {step: (i, s) for i, (step, s) in enumerate(zip(cfg.plan.event_steps, cfg.targets))}
        self.curve_events = curve_events(len(self.events))
        self.log = PruningLog()
        self.started = time.perf_counter()
        self.seconds = {"pruning": 0.0, "curve": 0.0}  # time inside the hook, not training

    def after_backward(self, step: int, model: PreTrainedModel) -> None:
        self.masks.mask_grads()
        self.pruner.observe(self.masks)

    def after_step(self, step: int, model: PreTrainedModel) -> None:
        if self.pruner.zeroes_pruned:
            self.masks.apply()
        if step in self.events:
            self.prune(step, model)

    def point(self, model: PreTrainedModel, step: int, phase: str, index: int | None, target: float | None) -> None:
        """Add a curve point (dev F1 per language now) if a curve function was given."""
        if self.curve_fn is None or (index is not None and index not in self.curve_events):
            return
        was_training, start = model.training, time.perf_counter()
        f1 = self.curve_fn(model)
        model.train(was_training)
        self.seconds["curve"] += time.perf_counter() - start
        self.log.curve.append({
            "step": step, "phase": phase, "pruning_step": index, "target_sparsity": target,
            "sparsity": self.masks.sparsity(), "f1": f1, "elapsed_s": round(time.perf_counter() - self.started, 1),
        })

    def prune(self, step: int, model: PreTrainedModel) -> None:
        index, target = self.events[step]
        self.point(model, step, "before", index, target)
        start = time.perf_counter()
        stats = self.pruner.prune(model, self.masks, target, index)
        seconds = time.perf_counter() - start
        self.seconds["pruning"] += seconds
        self.log.steps.append({"pruning_step": index, "step": step, "target_sparsity": target,
                               "sparsity": self.masks.sparsity(), "seconds": seconds, **stats})
        self.point(model, step, "after", index, target)

    def finish(self, model: PreTrainedModel, step: int) -> PruningLog:
        self.masks.apply()
        self.point(model, step, "end", None, None)
        self.log.sparsity = self.masks.report()
        return self.log


def gradual_prune(model: PreTrainedModel, train: Dataset, pad_id: int, train_cfg: TrainConfig, cfg: PruningConfig,
                  hooks: Sequence[TrainHooks] = (), curve_fn: CurveFn | None = None) -> PruningLog:
    """Prune `model` in place to `cfg.sparsity` along `cfg`'s schedule while fine-tuning on `train`.

    `train_cfg` gives lr, batch size, seed and the rest; its epochs and restarts are replaced
    by the plan's step count and `cfg.restarts`. `hooks` join the pruning hook in the
    training loop (e.g. a distillation loss).
    """
    masks = Masks(prunable_weights(model, cfg.scope), cfg.group_size, cfg.selection)
    pruner = make_pruner(cfg, train, pad_id, train_cfg.seed)
    pruner.start(model, masks)
    hook = PruningHook(pruner, masks, cfg, curve_fn)
    hooks = [hook, *hooks]
    plan = cfg.plan
    if 0 in hook.events:
        hook.prune(0, model)
    if plan.total_steps > 0:
        run_cfg = replace(train_cfg, epochs=epochs_for_steps(plan.total_steps, len(train), train_cfg.batch_size),
                          restarts=cfg.restarts)
        trained = fine_tune(model, train, run_cfg, pad_id, hooks=hooks, desc=f"prune {cfg.method} to {cfg.sparsity:.0%}")
        hook.log.training = {"steps": trained.steps, "loop_seconds": trained.seconds, "sentences": trained.sentences,
                             "final_loss": sum(trained.losses[-20:]) / max(1, len(trained.losses[-20:])),
                             "train": run_cfg.to_dict()}
    model.eval()
    log = hook.finish(model, plan.total_steps)
    log.training |= {f"{k}_seconds": round(v, 2) for k, v in hook.seconds.items()}
    return log


def one_shot(model: PreTrainedModel, pruner: Pruner, sparsity: float, scope: str, group_size: int = 1,
             selection: str = "global") -> tuple[Masks, dict]:
    """Prune `model` in place to `sparsity` in a single step, without retraining; the masks and
    the step's statistics."""
    masks = Masks(prunable_weights(model, scope), group_size, selection)
    start = time.perf_counter()
    stats = pruner.prune(model, masks, sparsity, 0)
    return masks, {"seconds": time.perf_counter() - start, **stats}
