"""Distillation (04): students made by dropping layers of a pretrained encoder, and word-level
output KD from a fine-tuned teacher that may tokenize differently."""
from mmakit.techniques.distillation.kd import KDConfig, WordKDHook, WordTeacher
from mmakit.techniques.distillation.students import (
    LAYER_CHOICES,
    StudentConfig,
    drop_layers,
    encoder_layers,
    make_student,
)

__all__ = [
    "LAYER_CHOICES",
    "KDConfig",
    "StudentConfig",
    "WordKDHook",
    "WordTeacher",
    "drop_layers",
    "encoder_layers",
    "make_student",
]
