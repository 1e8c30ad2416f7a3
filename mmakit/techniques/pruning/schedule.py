"""When to prune and to what sparsity: the three-stage layout (fine-tune, gradual pruning,
fine-tune with fixed masks) and the cubic (Zhu & Gupta) or linear sparsity curve.

Pruning happens at `events` steps t0, t0 + dt, ..., t0 + (events - 1) dt, with
t0 = `warmup_steps` and dt = `interval`; with n = events - 1 intervals the target is
    cubic:  s_t = s_f + (s_i - s_f) * (1 - (t - t0) / (n dt))^3
    linear: s_t = s_i + (s_f - s_i) * (t - t0) / (n dt)
so the first event prunes to s_i and the last to s_f. The learning rate is rewound to its
initial value after every event (a cyclic schedule through TrainConfig.restarts).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

SCHEDULES = ("cubic", "linear")


def sparsity_at(fraction: float, initial: float, final: float, kind: str) -> float:
    """Target sparsity a `fraction` (0..1) of the way through the pruning stage."""
    if kind == "cubic":
        return final + (initial - final) * (1.0 - fraction) ** 3
    if kind == "linear":
        return initial + (final - initial) * fraction
    raise ValueError(f"unknown sparsity schedule {kind!r}; choose from {', '.join(SCHEDULES)}")


def sparsity_schedule(initial: float, final: float, events: int, kind: str) -> list[float]:
    """Target sparsity at each pruning event; a single event prunes straight to `final`."""
    if events < 1:
        raise ValueError("pruning needs at least one pruning step")
    if events == 1:
        return [final]
    return [sparsity_at(k / (events - 1), initial, final, kind) for k in range(events)]


@dataclass(frozen=True)
class PruningPlan:
    """Optimizer-step layout of the three stages."""

    warmup_steps: int
    interval: int
    events: int
    final_steps: int

    def __post_init__(self) -> None:
        if min(self.warmup_steps, self.interval, self.final_steps) < 0 or self.events < 1:
            raise ValueError("stage lengths must be non-negative and pruning steps at least 1")
        if self.events > 1 and self.interval < 1:
            raise ValueError("several pruning steps need an interval of at least one optimizer step")

    @property
    def event_steps(self) -> list[int]:
        """Optimizer steps after which the model is pruned (0: before training starts)."""
        return [self.warmup_steps + k * self.interval for k in range(self.events)]

    @property
    def total_steps(self) -> int:
        return self.event_steps[-1] + self.final_steps

    @property
    def restarts(self) -> list[int]:
        """Steps where the cyclic learning rate rewinds: right after each pruning event."""
        return [t for t in self.event_steps if 0 < t < self.total_steps]


def epochs_for_steps(steps: int, n_samples: int, batch_size: int) -> float:
    """The `TrainConfig.epochs` that makes `train.total_steps` come out at exactly `steps`."""
    per_epoch = math.ceil(n_samples / batch_size)
    return (steps - 0.5) / per_epoch
