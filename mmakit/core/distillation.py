"""Output-only knowledge distillation from a fine-tuned teacher (Hinton et al.; oBERT's setup):
    L = (1 - h) CE(y, p_s) + h T^2 KL(softmax(z_t / T) || softmax(z_s / T))
over the labelled positions (the first sub-token of each word), so the same loss serves a
teacher with another tokenizer once its logits are aligned to the student's words.

`hidden_mse` matches hidden states layer by layer instead (TinyBERT's hidden-state loss,
TextBrewer's hidden MSE), for a student that shares the teacher's tokenizer and width."""
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


def hidden_mse(student: tuple[torch.Tensor, ...], teacher: tuple[torch.Tensor, ...], layer_map: dict[int, int],
               mask: torch.Tensor) -> torch.Tensor:
    """Mean over the mapped layers ({student layer: teacher layer}, 0-based) of the mean squared
    error between their output hidden states at real tokens (`mask`); `student` and `teacher`
    are a model's `hidden_states`, whose entry 0 is the embeddings."""
    keep = mask.bool()
    losses = [F.mse_loss(student[s + 1].float()[keep], teacher[t + 1].float()[keep]) for s, t in sorted(layer_map.items())]
    return torch.stack(losses).mean()
