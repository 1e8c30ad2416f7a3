"""Distillation (04): students made by dropping layers of a pretrained encoder, task-agnostic
distillation of such a student from the whole pretrained encoder on generic text, and
word-level output KD from a fine-tuned teacher that may tokenize differently."""
from mmakit.techniques.distillation.kd import KDConfig, WordKDHook, WordTeacher
from mmakit.techniques.distillation.students import (
    LAYER_CHOICES,
    StudentConfig,
    drop_layers,
    encoder_layers,
    make_student,
)
from mmakit.techniques.distillation.task_agnostic import (
    HeldOutCurve,
    TaskAgnosticConfig,
    TaskAgnosticHook,
    freeze_outside_encoder,
    held_out_losses,
    tokenize_text,
)

__all__ = [
    "LAYER_CHOICES",
    "HeldOutCurve",
    "KDConfig",
    "StudentConfig",
    "TaskAgnosticConfig",
    "TaskAgnosticHook",
    "WordKDHook",
    "WordTeacher",
    "drop_layers",
    "encoder_layers",
    "freeze_outside_encoder",
    "held_out_losses",
    "make_student",
    "tokenize_text",
]
