"""What this machine offers the study: CPU instruction sets, the accelerator, and the
training precision `auto` resolves to.

int8 speed depends on VNNI and bf16 training speed on AVX512-BF16 or AMX, so records name
these flags, and `auto` precision picks bf16 only where the hardware runs it natively.
"""
from __future__ import annotations

import platform
from functools import lru_cache

import torch

PRECISIONS = ("fp32", "bf16", "fp16", "auto")
DEVICES = ("auto", "cpu", "cuda")
SPEED_FLAGS = ("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_bf16", "amx_int8", "amx_tile")
NATIVE_BF16_FLAGS = ("avx512_bf16", "amx_bf16")


@lru_cache(maxsize=1)
def _cpuinfo() -> dict:
    import cpuinfo

    try:
        return cpuinfo.get_cpu_info()
    except Exception:  # py-cpuinfo probes the system in many ways; any failure means "unknown"
        return {}


def cpu_model() -> str:
    """The CPU's brand string, or the platform's processor name."""
    return _cpuinfo().get("brand_raw") or platform.processor() or platform.machine()


def training_hardware() -> dict[str, str | None]:
    """The processors whose arithmetic a trained checkpoint depends on: the CPU model, and the
    GPU where one is visible. The same recipe trained in bf16 on two CPU models gives two
    different checkpoints, so this is part of every cache key."""
    return {"cpu": cpu_model(), "gpu": torch.cuda.get_device_name(0) if torch.cuda.is_available() else None}


def cpu_flags() -> list[str]:
    """The speed-relevant instruction-set flags this CPU reports (a subset of SPEED_FLAGS)."""
    flags = set(_cpuinfo().get("flags", ()))
    return [f for f in SPEED_FLAGS if f in flags]


def resolve_device(device: str = "auto") -> str:
    """`auto` is cuda where a CUDA device is visible, else cpu."""
    if device not in DEVICES:
        raise ValueError(f"device={device!r} is not valid; choose from {', '.join(DEVICES)}")
    if device == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device=cuda but no CUDA device is visible; use device=cpu or auto")
    return device


def resolve_precision(precision: str = "auto", device: str = "auto") -> str:
    """The training precision to run: `auto` is bf16 where the device computes bf16 natively
    (a GPU that supports it, a CPU with AVX512-BF16 or AMX), else fp32."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r} is not valid; choose from {', '.join(PRECISIONS)}")
    if precision == "fp16" and resolve_device(device) == "cpu":
        raise ValueError("precision fp16 on device cpu: fp16 autocast needs a GPU; use bf16, fp32 or auto on a CPU")
    if precision != "auto":
        return precision
    if resolve_device(device) == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "fp32"
    return "bf16" if any(f in cpu_flags() for f in NATIVE_BF16_FLAGS) else "fp32"
