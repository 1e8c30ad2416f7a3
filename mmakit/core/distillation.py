"""Output-only knowledge distillation from a fine-tuned teacher (Hinton et al.; oBERT's setup):
    L = (1 - h) CE(y, p_s) + h T^2 KL(softmax(z_t / T) || softmax(z_s / T))
over the labelled positions (the first sub-token of each word), so the same loss serves a
teacher with another tokenizer once its logits are aligned to the student's words."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from transformers import PreTrainedModel

from mmakit.core.alignment import IGNORE
from mmakit.core.train import TrainHooks


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, hardness: float) -> torch.Tensor:
    """Distillation loss of student and teacher logits (..., classes) at positions where labels != IGNORE."""
    keep = labels != IGNORE
    s, t = student[keep], teacher[keep].detach()
    soft = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                    log_target=True, reduction="batchmean") * temperature**2
    if hardness >= 1:
        return soft
    return (1 - hardness) * F.cross_entropy(s, labels[keep]) + hardness * soft


class DistillationHook(TrainHooks):
    """Replaces the training loss with `kd_loss` against a frozen teacher with the same tokenizer."""

    def __init__(self, teacher: PreTrainedModel, temperature: float = 2.0, hardness: float = 1.0):
        self.teacher = teacher.eval()  # its forward runs under no_grad; its own flags stay as they are
        self.temperature, self.hardness = temperature, hardness

    def compute_loss(self, model: PreTrainedModel, batch: dict[str, torch.Tensor]) -> torch.Tensor:
        inputs = {k: v for k, v in batch.items() if k != "labels"}
        with torch.no_grad():
            teacher = self.teacher.to(batch["input_ids"].device)(**inputs).logits
        return kd_loss(model(**inputs).logits, teacher, batch["labels"], self.temperature, self.hardness)
