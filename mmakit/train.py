"""Fine-tuning loop shared by every technique: AdamW, linear or cyclic LR, gradient clipping,
length-grouped batches, hooks for masks and distillation, and resumable checkpoints.

Techniques plug in through `TrainHooks` instead of copying the loop: pruning applies masks
in `after_step` and gathers gradients in `after_backward`; distillation replaces the loss.
"""
from __future__ import annotations

import math
import os
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from .batching import iterate, length_grouped_batches
from .models import freeze_word_embeddings

SCHEDULES = ("linear", "constant")


@dataclass
class TrainConfig:
    """Everything that determines a fine-tuning run (and so its cache key)."""

    epochs: float = 3.0
    lr: float = 5e-5
    batch_size: int = 16
    seed: int = 42
    weight_decay: float = 0.0
    warmup_ratio: float = 0.0
    max_grad_norm: float = 1.0
    schedule: str = "linear"
    freeze_word_embeddings: bool = False
    restarts: list[int] = field(default_factory=list)  # steps where a cyclic LR rewinds to `lr`

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if self.epochs <= 0 or self.lr <= 0 or self.batch_size < 1:
            raise ValueError("epochs and lr must be positive and batch_size at least 1")

    def to_dict(self) -> dict:
        return asdict(self)


class TrainHooks:
    """Extension points of the loop; subclass and override what a technique needs."""

    def compute_loss(self, model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor | None:
        """Return a loss to use instead of the model's cross-entropy, or None."""
        return None

    def after_backward(self, step: int, model: PreTrainedModel) -> None:
        """Gradients are in `.grad`, before clipping and the optimizer step."""

    def after_step(self, step: int, model: PreTrainedModel) -> None:
        """Called after every optimizer step (step counts from 1)."""


@dataclass
class TrainLog:
    steps: int
    seconds: float
    sentences: int
    losses: list[float]

    @property
    def sentences_per_s(self) -> float:
        return self.sentences / self.seconds if self.seconds else 0.0


def lr_factor(step: int, total: int, warmup: int, restarts: Sequence[int], schedule: str) -> float:
    """LR multiplier at `step`: warm-up, then linear decay to 0 within each cycle between restarts."""
    if step < warmup:
        return (step + 1) / warmup
    if schedule == "constant":
        return 1.0
    bounds = [warmup, *sorted(r for r in restarts if warmup < r < total), total]
    for start, end in zip(bounds, bounds[1:]):
        if start <= step < end:
            return max(0.0, (end - step) / (end - start))
    return 0.0


def total_steps(n_samples: int, cfg: TrainConfig) -> int:
    return max(1, math.ceil(cfg.epochs * math.ceil(n_samples / cfg.batch_size)))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _atomic_save(obj: object, path: Path) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    torch.save(obj, tmp)
    os.replace(tmp, path)


def _optimizer(model: PreTrainedModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _batches_for_epoch(ds: Dataset, cfg: TrainConfig, epoch: int) -> list[list[int]]:
    lengths = [len(x) for x in ds["input_ids"]]
    return length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed * 1000 + epoch)


def fine_tune(
    model: PreTrainedModel,
    train: Dataset,
    cfg: TrainConfig,
    pad_id: int,
    hooks: Sequence[TrainHooks] = (),
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 200,
    desc: str = "fine-tune",
) -> TrainLog:
    """Train `model` in place on a tokenized dataset; resumes from `checkpoint_dir` if a run was cut."""
    _seed_everything(cfg.seed)
    if cfg.freeze_word_embeddings:
        freeze_word_embeddings(model)
    model.train()
    optimizer = _optimizer(model, cfg)
    steps_per_epoch = math.ceil(len(train) / cfg.batch_size)
    total = total_steps(len(train), cfg)
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.restarts, cfg.schedule)
    )
    step, losses = 0, []
    progress_file = Path(checkpoint_dir) / "progress.pt" if checkpoint_dir else None
    if progress_file and progress_file.exists():
        state = torch.load(progress_file, weights_only=False)
        model.load_state_dict(state["model"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        step, losses = state["step"], state["losses"]
        torch.set_rng_state(state["rng"])
    start, sentences = time.perf_counter(), 0
    bar = tqdm(total=total, initial=step, desc=desc, unit="step")
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        data = _batches_for_epoch(train, cfg, epoch)[offset:]
        for batch in iterate(train, data, pad_id):
            loss = _train_step(model, batch, optimizer, scheduler, cfg, hooks, step + 1)
            step += 1
            sentences += len(batch["input_ids"])
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if progress_file and step % checkpoint_every == 0 and step < total:
                progress_file.parent.mkdir(parents=True, exist_ok=True)
                _atomic_save(
                    {"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                     "scheduler": scheduler.state_dict(), "step": step, "losses": losses,
                     "rng": torch.get_rng_state()},
                    progress_file,
                )
            if step >= total:
                break
    bar.close()
    model.eval()
    return TrainLog(steps=step, seconds=time.perf_counter() - start, sentences=sentences, losses=losses)


def _train_step(
    model: PreTrainedModel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    hooks: Sequence[TrainHooks],
    step: int,
) -> float:
    loss = next((x for h in hooks if (x := h.compute_loss(model, batch)) is not None), None)
    if loss is None:
        loss = model(**batch).loss
    loss.backward()
    for h in hooks:
        h.after_backward(step, model)
    if cfg.max_grad_norm:
        torch.nn.utils.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    for h in hooks:
        h.after_step(step, model)
    return float(loss.detach())
