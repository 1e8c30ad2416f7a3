"""Task-agnostic distillation: before any task fine-tuning, a student made of some of the
pre-trained encoder's layers learns to reproduce that whole encoder on unlabelled generic text,
so that it keeps what the encoder knows of other languages. DistilBERT (Sanh et al.) and
Multilingual MiniLM (Wang et al.) were distilled on multilingual text before any fine-tuning;
a layer-dropped student fitted to English alone loses much of its Spanish and Dutch.

The loss of a batch, against the frozen pre-trained teacher run on the same batch (same
tokenizer, same width):
- hidden states (TinyBERT's hidden-state loss, TextBrewer's hidden MSE): the mean over mapped
  layers of the MSE between the output of student layer i and of the teacher layer it maps to
  (the one it was copied from), at real tokens (core.distillation.hidden_mse);
- self-attention relations of the student's last layer (MiniLM's deep self-attention
  distillation): KL(teacher || student) of the attention distributions softmax(Q K^T / sqrt(d))
  and of the value relations softmax(V V^T / sqrt(d)), per head, averaged over heads and real
  query positions, against the teacher layer that layer maps to (for a student that keeps the
  top layer, the teacher's last, as in MiniLM).
The relations are recomputed from the layer's input and its query, key and value projections,
so the forward pass keeps its fast attention kernel (sdpa returns no attention weights).

The loss replaces the training loop's (core.train, through `TaskAgnosticHook`), so the stage is
an ordinary resumable run; `HeldOutCurve` scores the student on held-out text along the way.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import MODEL_INPUTS
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.distillation import hidden_mse
from mmakit.core.paths import write_json_atomic
from mmakit.core.train import TrainHooks
from mmakit.techniques.heads.anatomy import Block, blocks

LOSSES = ("hidden", "attention")
AUTOCAST = {"bf16": torch.bfloat16, "fp16": torch.float16}  # run precisions other than fp32


@dataclass(frozen=True)
class TaskAgnosticConfig:
    """Weights of the hidden-state MSE and of the last layer's self-attention relations (KL of
    attention distributions plus KL of value relations); at least one is positive."""

    hidden_weight: float = 1.0
    attention_weight: float = 1.0

    def __post_init__(self) -> None:
        if self.hidden_weight < 0 or self.attention_weight < 0 or not (self.hidden_weight or self.attention_weight):
            raise ValueError(f"loss weights hidden={self.hidden_weight}, attention={self.attention_weight}: "
                             "both must be >= 0 and one of them positive")

    def to_dict(self) -> dict:
        return asdict(self)

    def weighted(self, parts: dict) -> torch.Tensor | float:
        """The loss from its parts {"hidden", "attention"} (tensors or numbers)."""
        return self.hidden_weight * parts["hidden"] + self.attention_weight * parts["attention"]


def tokenize_text(sentences: list[str], tokenizer: PreTrainedTokenizerBase, max_length: int = 128) -> Dataset:
    """Raw sentences as a Dataset of the model's inputs (truncated to `max_length` sub-tokens)."""
    return Dataset.from_dict(dict(tokenizer(sentences, truncation=True, max_length=max_length)))


def attention_relations(block: Block, hidden: torch.Tensor, mask: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Log-probabilities of the attention distributions and of the value relations of the layer
    `block` whose input is `hidden` (batch, length, width): (batch, heads, length, length) each,
    float32, padding keys (`mask` 0) given no weight."""
    batch, length, _ = hidden.shape
    size = block.head_size

    def heads(linear: torch.nn.Linear) -> torch.Tensor:  # float32 even under bf16 autocast: softmax targets
        return linear(hidden).float().view(batch, length, -1, size).transpose(1, 2)

    q, k, v = heads(block.query), heads(block.key), heads(block.value)
    padding = ~mask.bool()[:, None, None, :]
    with torch.autocast(hidden.device.type, enabled=False):
        scores = [a @ b.transpose(-1, -2) / math.sqrt(size) for a, b in ((q, k), (v, v))]
    return tuple(s.masked_fill(padding, -1e9).log_softmax(-1) for s in scores)


def relation_kl(teacher: torch.Tensor, student: torch.Tensor, mask: torch.Tensor) -> torch.Tensor:
    """KL(teacher || student) between log-probability rows (batch, heads, length, length), summed
    over keys and averaged over heads and real query positions."""
    kl = F.kl_div(student, teacher, log_target=True, reduction="none").sum(-1)  # (batch, heads, queries)
    real = mask.bool()[:, None, :].expand_as(kl)
    return kl[real].mean()


def _unwrapped(model: torch.nn.Module) -> PreTrainedModel:
    return getattr(model, "module", model)  # a DistributedDataParallel wrapper keeps the model here


class TaskAgnosticHook(TrainHooks):
    """Replaces the training loss with task-agnostic distillation from a frozen `teacher` (the
    pre-trained encoder the student was cut from; any head, only its encoder runs), computed on
    the fly for every batch under the loop's precision. `layer_map` maps each student layer to
    the teacher layer it reproduces ({student: teacher}, 0-based, every student layer).

    `teacher_calls` counts teacher forward passes."""

    def __init__(self, teacher: PreTrainedModel, layer_map: dict[int, int],
                 config: TaskAgnosticConfig = TaskAgnosticConfig()):
        self.teacher = teacher.eval()  # runs under no_grad: its parameters stay as the caller left them
        self.layer_map, self.config = dict(layer_map), config
        self.top = max(self.layer_map)
        self.teacher_calls = 0

    def losses(self, model: torch.nn.Module, batch: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
        """The loss parts of a batch: {"hidden", "attention"} (unweighted)."""
        inputs = {k: v for k, v in batch.items() if k in MODEL_INPUTS}
        mask = inputs["attention_mask"]
        student_hidden = model(**inputs, output_hidden_states=True).hidden_states
        teacher_layer = self.layer_map[self.top]
        with torch.no_grad():
            self.teacher_calls += 1
            encoder = self.teacher.to(mask.device).base_model
            teacher_hidden = encoder(**inputs, output_hidden_states=True).hidden_states
            target = attention_relations(blocks(self.teacher)[teacher_layer], teacher_hidden[teacher_layer], mask)
        mine = attention_relations(blocks(_unwrapped(model))[self.top], student_hidden[self.top], mask)
        return {"hidden": hidden_mse(student_hidden, teacher_hidden, self.layer_map, mask),
                "attention": sum(relation_kl(t, s, mask) for t, s in zip(target, mine))}

    def compute_loss(self, model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.config.weighted(self.losses(model, batch))


def held_out_losses(student: PreTrainedModel, hook: TaskAgnosticHook, data: Dataset, pad_id: int,
                    batch_size: int = 32, precision: str = "fp32") -> dict[str, float]:
    """The loss parts and the weighted total of `student` on `data` (tokenized text), without
    dropout, averaged over real tokens: how close the student is to the teacher on text it did
    not train on. Both run under the autocast of `precision` (fp32, bf16, fp16): while the loop
    trains, the student's forward is autocast whatever the caller does (accelerate patches it),
    so the points before and during training are computed alike. The student runs where its
    weights are and keeps its training mode."""
    training, device = student.training, next(student.parameters()).device
    student.eval()
    lengths = [len(x) for x in data["input_ids"]]
    sums = dict.fromkeys((*LOSSES, "total"), 0.0)
    tokens = 0
    dtype = AUTOCAST.get(precision)
    with torch.no_grad(), torch.autocast(device.type, dtype=dtype, enabled=dtype is not None):
        for batch in iterate(data, sorted_batches(lengths, batch_size), pad_id):
            batch = {k: v.to(device) for k, v in batch.items()}
            parts = {name: float(v) for name, v in hook.losses(student, batch).items()}
            parts["total"] = hook.config.weighted(parts)
            n = int(batch["attention_mask"].sum())  # each part is a mean over the batch's real tokens
            tokens += n
            for name, value in parts.items():
                sums[name] += value * n
    student.train(training)
    return {name: total / tokens for name, total in sums.items()}


class HeldOutCurve(TrainHooks):
    """The student's task-agnostic loss on held-out text (`held_out_losses`, under the run's
    `precision`) after every `every` optimizer steps and after the last one (`total`), one point
    {"step", "hidden", "attention", "total"} each, in `points` by step. With `path`, the points
    are read from there at the start and written there after each scoring, so a run resumed from
    a checkpoint keeps the points made before it was cut; a step scored again replaces its point
    (same weights, same value)."""

    def __init__(self, loss: TaskAgnosticHook, data: Dataset, pad_id: int, every: int, total: int,
                 path: str | Path | None = None, batch_size: int = 32, precision: str = "fp32"):
        if every < 1:
            raise ValueError(f"every={every} must be at least 1")
        self.loss, self.data, self.pad_id, self.batch_size, self.precision = loss, data, pad_id, batch_size, precision
        self.every, self.total = every, total
        self.path = Path(path) if path else None
        self.points: list[dict] = json.loads(self.path.read_text()) if self.path and self.path.exists() else []

    def scored(self, step: int) -> bool:
        return any(p["step"] == step for p in self.points)

    def score(self, step: int, model: PreTrainedModel) -> dict:
        """Score `model` now as the point of `step`."""
        point = {"step": step} | held_out_losses(model, self.loss, self.data, self.pad_id, self.batch_size,
                                                 self.precision)
        self.points = sorted([p for p in self.points if p["step"] != step] + [point], key=lambda p: p["step"])
        if self.path:
            write_json_atomic(self.points, self.path)
        return point

    def after_step(self, step: int, model: PreTrainedModel) -> None:
        if step % self.every == 0 or step == self.total:
            self.score(step, model)


def freeze_outside_encoder(model: PreTrainedModel) -> None:
    """Stop gradients to everything but the encoder (the task head): task-agnostic distillation
    trains the encoder alone, and a parameter without gradient would stall several processes."""
    encoder = {id(p) for p in _unwrapped(model).base_model.parameters()}
    for p in model.parameters():
        if id(p) not in encoder:
            p.requires_grad_(False)
