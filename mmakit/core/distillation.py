"""Output-only knowledge distillation from a fine-tuned teacher (Hinton et al.; oBERT's setup):
    L = (1 - h) CE(y, p_s) + h T^2 KL(softmax(z_t / T) || softmax(z_s / T))
over the labelled positions (the first sub-token of each word), so the same loss serves a
teacher with another tokenizer once its logits are aligned to the student's words."""
from __future__ import annotations

import torch
import torch.nn.functional as F

from mmakit.core.alignment import IGNORE


def kd_loss(student: torch.Tensor, teacher: torch.Tensor, labels: torch.Tensor, temperature: float, hardness: float) -> torch.Tensor:
    """Distillation loss of student and teacher logits (..., classes) at positions where labels != IGNORE."""
    keep = labels != IGNORE
    s, t = student[keep], teacher[keep].detach()
    soft = F.kl_div(F.log_softmax(s / temperature, -1), F.log_softmax(t / temperature, -1),
                    log_target=True, reduction="batchmean") * temperature**2
    if hardness >= 1:
        return soft
    return (1 - hardness) * F.cross_entropy(s, labels[keep]) + hardness * soft
