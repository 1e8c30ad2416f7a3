"""Word-level output distillation: the teacher's logits at the first sub-token of every word,
computed once per training sentence and cached, aligned to the student's first sub-tokens of
the same words, so teacher and student may tokenize differently (SentencePiece teacher,
WordPiece student). The loss is core.distillation.kd_loss:
    L = (1 - h) CE(y, p_s) + h T^2 KL(softmax(z_t / T) || softmax(z_s / T)).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from datasets import Dataset
from transformers import PreTrainedModel

from mmakit.core.alignment import IGNORE, MODEL_INPUTS
from mmakit.core.batching import collate, sorted_batches
from mmakit.core.distillation import hidden_mse, kd_loss
from mmakit.core.paths import atomic_path
from mmakit.core.train import TrainHooks


@dataclass(frozen=True)
class KDConfig:
    """Distillation weight h (1.0: soft targets only, oBERT's) and temperature T; optionally
    intermediate-layer matching: `intermediate_weight` times the mean squared error between
    student and teacher hidden states (TextBrewer's hidden MSE) after each student layer and
    the teacher layer it maps to (same tokenizer and hidden size only)."""

    hardness: float = 1.0
    temperature: float = 2.0
    teacher_batch: int = 32
    intermediate_weight: float = 0.0

    def __post_init__(self) -> None:
        if not 0 <= self.hardness <= 1:
            raise ValueError(f"hardness={self.hardness!r} must lie in [0, 1]")
        if self.temperature <= 0 or self.teacher_batch < 1 or self.intermediate_weight < 0:
            raise ValueError("temperature must be positive, teacher_batch at least 1, intermediate_weight >= 0")

    def to_dict(self) -> dict:
        return asdict(self)


class WordTeacher:
    """A frozen teacher's logits per word of each sentence of a dataset tokenized by the
    teacher's tokenizer (core.alignment.tokenize_dataset: `word_index` gives the word each
    first sub-token starts). Each sentence's logits are computed at most once and kept: a
    (words, classes) float32 tensor, NaN rows for words the teacher never saw (truncated).

    `forward_calls` counts teacher forward passes."""

    def __init__(self, teacher: PreTrainedModel, data: Dataset, pad_id: int, batch_size: int = 32):
        self.teacher = teacher.eval()
        self.pad_id, self.batch_size = pad_id, batch_size
        columns = [c for c in (*MODEL_INPUTS, "word_index") if c in data.column_names]
        self.rows = data.select_columns(columns).to_dict()
        self.words = [max([w for w in idx if w != IGNORE], default=-1) + 1 for idx in self.rows["word_index"]]
        self.cache: dict[int, torch.Tensor] = {}
        self.forward_calls = 0

    def __len__(self) -> int:
        return len(self.rows["input_ids"])

    def logits(self, indices: list[int]) -> list[torch.Tensor]:
        """Word-level logits of the sentences `indices`, computing the ones not cached yet."""
        missing = sorted({i for i in indices if i not in self.cache})
        if missing:
            lengths = [len(self.rows["input_ids"][i]) for i in missing]
            for chunk in sorted_batches(lengths, self.batch_size):
                self._compute([missing[j] for j in chunk])
        return [self.cache[i] for i in indices]

    def precompute(self) -> None:
        """Every sentence's logits (one pass over the data)."""
        self.logits(list(range(len(self))))

    def _compute(self, ids: list[int]) -> None:
        columns = [c for c in MODEL_INPUTS if c in self.rows]
        batch = collate([{c: self.rows[c][i] for c in columns} for i in ids], self.pad_id)
        device = next(self.teacher.parameters()).device
        with torch.no_grad(), torch.autocast(device.type, enabled=False):
            self.forward_calls += 1
            out = self.teacher(**{k: v.to(device) for k, v in batch.items()}).logits.float().cpu()
        for row, i in enumerate(ids):
            words = torch.full((self.words[i], out.shape[-1]), float("nan"))
            for pos, w in enumerate(self.rows["word_index"][i]):
                if w != IGNORE:
                    words[w] = out[row, pos]
            self.cache[i] = words

    def save(self, path: str | Path) -> None:
        """Write the cached logits (all sentences must be computed) to `path` atomically."""
        self.precompute()
        with atomic_path(Path(path)) as tmp:
            torch.save([self.cache[i] for i in range(len(self))], tmp)

    def load(self, path: str | Path) -> None:
        saved = torch.load(path, weights_only=True)
        if len(saved) != len(self):
            raise ValueError(f"{path} holds {len(saved)} sentences, the data {len(self)}")
        self.cache = dict(enumerate(saved))


class WordKDHook(TrainHooks):
    """Replaces the training loss with word-level KD against a `WordTeacher` over the same
    sentences (same order) as `student_data`, the student-tokenized training set.

    A batch carries no sentence index, so each row is recognised by its token ids (unpadded);
    sentences with identical student tokens share one entry (the first).

    With `layer_map` ({student layer: teacher layer}, 0-based) and `config.intermediate_weight`
    > 0, the hidden states after those layers are matched too (MSE over real tokens): this
    needs the teacher's forward pass on every batch (hidden states are not cached) and the
    same tokenizer and hidden size for both."""

    def __init__(self, teacher: WordTeacher, student_data: Dataset, config: KDConfig = KDConfig(),
                 layer_map: dict[int, int] | None = None):
        if len(student_data) != len(teacher):
            raise ValueError(f"the student's data has {len(student_data)} sentences, the teacher's {len(teacher)}")
        if config.intermediate_weight > 0 and not layer_map:
            raise ValueError("intermediate matching needs a layer map {student layer: teacher layer}")
        self.teacher, self.config = teacher, config
        self.layer_map = dict(layer_map or {}) if config.intermediate_weight > 0 else {}
        self.word_index = student_data["word_index"]
        self.index: dict[tuple[int, ...], int] = {}
        for i, ids in enumerate(student_data["input_ids"]):
            self.index.setdefault(tuple(ids), i)

    def sentences(self, batch: dict[str, torch.Tensor]) -> list[int]:
        mask = batch["attention_mask"].bool().cpu()
        ids = batch["input_ids"].cpu()
        return [self.index[tuple(ids[b][mask[b]].tolist())] for b in range(len(ids))]

    def aligned(self, batch: dict[str, torch.Tensor], classes: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(teacher logits at the student's positions (batch, length, classes), whether each
        position has a teacher word)."""
        shape = batch["input_ids"].shape
        target = torch.zeros(*shape, classes)
        present = torch.zeros(shape, dtype=torch.bool)
        chosen = self.sentences(batch)
        for b, (i, words) in enumerate(zip(chosen, self.teacher.logits(chosen))):
            for pos, w in enumerate(self.word_index[i][: shape[1]]):
                if w != IGNORE and w < len(words) and torch.isfinite(words[w]).all():
                    target[b, pos] = words[w]
                    present[b, pos] = True
        return target, present

    def hidden_loss(self, student_hidden: tuple[torch.Tensor, ...], inputs: dict[str, torch.Tensor]) -> torch.Tensor:
        """Mean over mapped layers of the MSE between student and teacher hidden states at real tokens."""
        model = self.teacher.teacher
        with torch.no_grad():
            hidden = model.to(inputs["input_ids"].device)(**inputs, output_hidden_states=True).hidden_states
        return hidden_mse(student_hidden, hidden, self.layer_map, inputs["attention_mask"])

    def compute_loss(self, model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        out = model(**inputs, output_hidden_states=bool(self.layer_map))
        loss = self.output_loss(out.logits.float(), batch)
        if self.layer_map:
            loss = loss + self.config.intermediate_weight * self.hidden_loss(out.hidden_states, inputs)
        return loss

    def output_loss(self, student: torch.Tensor, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        """Word-level KD of the student's logits against the teacher's words."""
        labels = batch["labels"]
        target, present = self.aligned(batch, student.shape[-1])
        target, present = target.to(student.device), present.to(student.device)
        h, t = self.config.hardness, self.config.temperature
        if bool(present[labels != IGNORE].all()):
            return kd_loss(student, target, labels, t, h)
        # words the teacher lost to truncation keep their hard label only
        soft_labels = labels.masked_fill(~present, IGNORE)
        soft = kd_loss(student, target, soft_labels, t, 1.0) if (soft_labels != IGNORE).any() else student.sum() * 0
        if h >= 1:
            return soft
        keep = labels != IGNORE
        return (1 - h) * F.cross_entropy(student[keep], labels[keep]) + h * soft
