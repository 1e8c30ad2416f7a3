"""Fine-tuning loop shared by every technique: AdamW, linear or cyclic LR, gradient clipping,
length-grouped batches, hooks for masks and distillation, and resumable checkpoints.

Techniques plug in through `TrainHooks` instead of copying the loop: pruning applies masks
in `after_step` and gathers gradients in `after_backward`; distillation replaces the loss.
Devices, mixed precision (bf16 autocast with fp32 master weights and optimizer state) and
several processes (`accelerate launch`) come from Hugging Face accelerate, so the same loop
runs on a laptop CPU, a GPU or several machines.
"""
from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch
from accelerate import Accelerator, PartialState
from accelerate.state import AcceleratorState
from datasets import Dataset
from tqdm.auto import tqdm
from transformers import PreTrainedModel

from mmakit.core.batching import iterate, length_grouped_batches
from mmakit.core.hardware import PRECISIONS, resolve_device, resolve_precision
from mmakit.core.models import freeze_word_embeddings
from mmakit.core.paths import atomic_path

SCHEDULES = ("linear", "constant")
RUN_PRECISIONS = tuple(p for p in PRECISIONS if p != "auto")
_MIXED = {"fp32": "no", "bf16": "bf16", "fp16": "fp16"}


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
    precision: str = "fp32"  # autocast dtype of forward and backward; weights and optimizer stay fp32

    def __post_init__(self) -> None:
        if self.schedule not in SCHEDULES:
            raise ValueError(f"unknown schedule {self.schedule!r}; choose from {', '.join(SCHEDULES)}")
        if self.precision not in RUN_PRECISIONS:
            raise ValueError(f"precision={self.precision!r} is not a run precision; choose from "
                             f"{', '.join(RUN_PRECISIONS)} (resolve 'auto' with hardware.resolve_precision)")
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
    """What a run did: optimizer steps, wall time, sentences seen (all processes), losses."""

    steps: int
    seconds: float
    sentences: int
    losses: list[float]
    precision: str = "fp32"
    device: str = "cpu"
    processes: int = 1

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


def total_steps(n_samples: int, cfg: TrainConfig, processes: int = 1) -> int:
    """Optimizer steps of a run; with several processes each step takes one batch per process."""
    return max(1, math.ceil(cfg.epochs * math.ceil(math.ceil(n_samples / cfg.batch_size) / processes)))


def _seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def _optimizer(model: PreTrainedModel, cfg: TrainConfig) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    decay = [p for p in params if p.dim() >= 2]
    no_decay = [p for p in params if p.dim() < 2]
    groups = [{"params": decay, "weight_decay": cfg.weight_decay}, {"params": no_decay, "weight_decay": 0.0}]
    return torch.optim.AdamW(groups, lr=cfg.lr)


def _batches_for_epoch(ds: Dataset, cfg: TrainConfig, epoch: int, rank: int = 0, processes: int = 1) -> list[list[int]]:
    """This process's share of an epoch's length-grouped batches (every process draws the same
    order; the last share is padded as DistributedSampler does, or the processes fall out of step)."""
    lengths = [len(x) for x in ds["input_ids"]]
    batches = length_grouped_batches(lengths, cfg.batch_size, seed=cfg.seed * 1000 + epoch)
    short = -len(batches) % processes  # pad with the first batches so every process takes as many steps
    return (batches + batches[:short])[rank::processes]


def make_accelerator(precision: str, device: str = "auto") -> Accelerator:
    """An Accelerator for one run. accelerate keeps one mixed-precision setting per process; a
    single process may switch between runs (the fp32 vs bf16 probe), so its state is reset
    there. Under `accelerate launch` the launcher's processes keep theirs."""
    resolve_precision(precision, device)  # fails for a precision the device cannot run
    mixed, cpu = _MIXED[precision], resolve_device(device) == "cpu"
    state = AcceleratorState._shared_state
    if state and PartialState().num_processes == 1 and (
        state.get("_mixed_precision") != mixed or (cpu and PartialState().device.type != "cpu")
    ):
        AcceleratorState._reset_state(reset_partial_state=True)
    try:
        return Accelerator(mixed_precision=mixed, cpu=cpu)
    except ValueError as exc:
        raise ValueError(f"precision {precision} on device {device}: {exc}") from exc


def fine_tune(
    model: PreTrainedModel,
    train: Dataset,
    cfg: TrainConfig,
    pad_id: int,
    hooks: Sequence[TrainHooks] = (),
    checkpoint_dir: str | Path | None = None,
    checkpoint_every: int = 200,
    desc: str = "fine-tune",
    device: str = "auto",
) -> TrainLog:
    """Train `model` in place on a tokenized dataset; resumes from `checkpoint_dir` if a run was cut.

    The model comes back in fp32 on the CPU, in eval mode, whatever device and precision trained it.
    """
    acc = make_accelerator(cfg.precision, device)
    _seed_everything(cfg.seed)
    if cfg.freeze_word_embeddings:
        freeze_word_embeddings(model)
    model.train()
    optimizer = _optimizer(model, cfg)
    rank, processes = acc.process_index, acc.num_processes
    steps_per_epoch = math.ceil(math.ceil(len(train) / cfg.batch_size) / processes)
    total = total_steps(len(train), cfg, processes)
    warmup = int(cfg.warmup_ratio * total)
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer, lambda s: lr_factor(s, total, warmup, cfg.restarts, cfg.schedule)
    )
    progress_file = Path(checkpoint_dir) / "progress.pt" if checkpoint_dir else None
    step, losses, before = _resume(progress_file, model, optimizer, scheduler, rank, processes)
    wrapped, optimizer = acc.prepare(model, optimizer)  # the scheduler counts this process's steps itself
    if processes > 1 and step == 0:
        torch.manual_seed(cfg.seed * 1000 + rank)  # same initial weights everywhere, different dropout per process
    start, sentences = time.perf_counter() - before["seconds"], before["sentences"]
    bar = tqdm(total=total, initial=step, desc=desc, unit="step", disable=not acc.is_main_process)
    while step < total:
        epoch, offset = divmod(step, steps_per_epoch)
        data = _batches_for_epoch(train, cfg, epoch, rank, processes)[offset:]
        for batch in iterate(train, data, pad_id):
            batch = {k: v.to(acc.device) for k, v in batch.items()}
            loss = _train_step(acc, wrapped, model, batch, optimizer, scheduler, cfg, hooks, step + 1)
            step += 1
            sentences += len(batch["input_ids"]) * processes
            losses.append(loss)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses[-20:]):.3f}")
            if progress_file and step % checkpoint_every == 0 and step < total:
                _save_progress(acc, progress_file, model, optimizer, scheduler, step, losses,
                               {"seconds": time.perf_counter() - start, "sentences": sentences})
            if step >= total:
                break
    bar.close()
    seconds = time.perf_counter() - start
    acc.unwrap_model(wrapped, keep_fp32_wrapper=False)  # drops the autocast wrapper from `model`
    acc.free_memory()
    model.to("cpu").eval()
    return TrainLog(steps=step, seconds=seconds, sentences=sentences, losses=losses, precision=cfg.precision,
                    device=acc.device.type, processes=processes)


def _resume(progress_file: Path | None, model: PreTrainedModel, optimizer: torch.optim.Optimizer,
            scheduler: torch.optim.lr_scheduler.LRScheduler, rank: int = 0, processes: int = 1
            ) -> tuple[int, list[float], dict]:
    """Load an interrupted run's weights, optimizer, schedule and this process's random state:
    (step, losses, {"seconds", "sentences"} spent before the interruption)."""
    if not (progress_file and progress_file.exists()):
        return 0, [], {"seconds": 0.0, "sentences": 0}
    state = torch.load(progress_file, weights_only=False, map_location="cpu")
    if state["processes"] != processes:
        raise RuntimeError(f"{progress_file} was saved by {state['processes']} process(es), this run has {processes}: "
                           "resume with the same number or delete the folder to start over")
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    rng = torch.load(_rng_file(progress_file, rank), weights_only=False)
    torch.set_rng_state(rng["cpu"])
    if rng["cuda"] is not None and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(rng["cuda"])
    return state["step"], state["losses"], state["spent"]


def _rng_file(progress_file: Path, rank: int) -> Path:
    return progress_file.with_name(f"rng-{rank}.pt")


def _save_progress(acc: Accelerator, path: Path, model: PreTrainedModel, optimizer: torch.optim.Optimizer,
                   scheduler: torch.optim.lr_scheduler.LRScheduler, step: int, losses: list[float],
                   spent: dict) -> None:
    """The main process writes weights, optimizer and schedule; every process writes its own
    random state (CPU and CUDA: dropout draws differ per process); all wait until it is on disk."""
    if acc.is_main_process:
        with atomic_path(path) as tmp:
            torch.save({"model": model.state_dict(), "optimizer": optimizer.state_dict(),
                        "scheduler": scheduler.state_dict(), "step": step, "losses": losses, "spent": spent,
                        "processes": acc.num_processes}, tmp)
    with atomic_path(_rng_file(path, acc.process_index)) as tmp:
        torch.save({"cpu": torch.get_rng_state(),
                    "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}, tmp)
    acc.wait_for_everyone()


def _train_step(
    acc: Accelerator,
    wrapped: torch.nn.Module,
    model: PreTrainedModel,
    batch: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    cfg: TrainConfig,
    hooks: Sequence[TrainHooks],
    step: int,
) -> float:
    """One optimizer step. Loss hooks see the wrapped model (whose forward synchronises
    processes and autocasts); gradient and step hooks see the plain one."""
    with acc.autocast():
        loss = next((x for h in hooks if (x := h.compute_loss(wrapped, batch)) is not None), None)
        if loss is None:
            loss = wrapped(**batch).loss
    acc.backward(loss)
    for h in hooks:
        h.after_backward(step, model)
    if cfg.max_grad_norm:
        acc.clip_grad_norm_([p for p in model.parameters() if p.requires_grad], cfg.max_grad_norm)
    optimizer.step()
    scheduler.step()
    optimizer.zero_grad(set_to_none=True)
    for h in hooks:
        h.after_step(step, model)
    return float(loss.detach())
