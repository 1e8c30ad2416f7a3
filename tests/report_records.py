"""Small hand-made result records for the report's tests: runs with chosen test mls per seed,
their seed aggregates, and the lineage keys (baseline, cache, training) the report pairs by."""
from __future__ import annotations

import numpy as np

CPU_FLAGS = {"avx512-bf16": ["avx2", "avx512f", "avx512_vnni", "avx512_bf16"], "avx2": ["avx2"]}


def run(notebook: str, name: str, technique: dict, mls: float, *, seed: int | None = None, cpu: str = "avx512-bf16",
        setting: str = "english-only", **extra) -> dict:
    """One run's record: test mls `mls` (es and nl F1 split it evenly around 0.6), English 0.85."""
    f1 = {"en": {"test": 0.85}, "es": {"test": 0.6 + mls / 2}, "nl": {"test": 0.6 + mls / 2}}
    return {"notebook": notebook, "run": name, "profile": "quick", "technique": technique | {"seed": seed},
            "params": {"model": "tiny"}, "data_setting": setting, "f1": f1, "mls": {"test": mls},
            "env": {"cpu": f"{cpu} test CPU", "cores": 2, "cpu_flags": CPU_FLAGS[cpu]}} | extra


def seeded(notebook: str, name: str, technique: dict, mls_by_seed: dict[int, float], **extra) -> list[dict]:
    """Per-seed runs `<name>-s<seed>` and their seed aggregate `<name>` (mean, sd, per_seed)."""
    runs = [run(notebook, f"{name}-s{seed}", technique, mls, seed=seed, **extra) for seed, mls in mls_by_seed.items()]
    values = list(mls_by_seed.values())
    aggregate = run(notebook, name, technique, float(np.mean(values)), **extra) | {
        "aggregate_of": [r["run"] for r in runs],
        "mls_std": {"test": float(np.std(values, ddof=1)) if len(values) > 1 else None},
        "per_seed": {r["run"]: {"seed": r["technique"]["seed"], "f1": r["f1"], "mls": r["mls"]} for r in runs}}
    return runs + [aggregate]


def pruned(method: str, sparsity: float, mls_by_seed: dict[int, float], schedule: str = "cubic", **extra) -> list[dict]:
    """03's gradual runs pruned as the paper prunes (global, KD, from the fine-tuned baseline);
    each run's cache key is its name."""
    technique = {"method": method, "sparsity": sparsity, "mode": "gradual", "group_size": 1, "selection": "global",
                 "schedule": schedule, "kd": True}
    out = seeded("03_obs", f"{method}-{round(100 * sparsity)}-{schedule}", technique, mls_by_seed,
                 baseline={"key": "base-42"}, **extra)
    for r in out[:-1]:
        r["cache_key"] = r["run"]
        r["training"] = {"steps": 1100}  # the pruning run's training, not a checkpoint of its seed
    return out


def baselines(mls_by_seed: dict[int, float], **extra) -> list[dict]:
    """01's per-seed baselines (training keys `base-<seed>`) and their aggregate."""
    out = seeded("01_baselines", "base", {"method": "fine-tune"}, mls_by_seed, **extra)
    for r in out[:-1]:
        r["training"] = {"key": f"base-{r['technique']['seed']}"}
    return out


def quantized(method: str, seed: int, change: float, fp32_mls: float = -0.12, **extra) -> list[dict]:
    """05: the fp32 graph of baseline `seed` and its `method` int8 graph `change` mls away."""
    base = {"baseline": {"key": f"base-{seed}"}}
    fp32 = run("05_quantization", f"b{seed}-fp32", {"method": "fp32"}, fp32_mls, **base, **extra)
    int8 = run("05_quantization", f"b{seed}-{method}", {"method": method, "int8": True,
               "settings": {"exclude": ["attention_scores", "ffn_output"]}}, fp32_mls + change, **base, **extra)
    return [fp32, int8]


def pipeline(name: str, mls: float, source_key: str, student: int | None = None, **extra) -> dict:
    """06: a QAT pipeline (float exclusions) made from the model cached under `source_key`."""
    made = {"start": {"kind": "student", "key": source_key}} if student else {
        "start": {"kind": "dense", "key": "base-42"}, "pruning": {"key": source_key}}
    technique = {"method": "combined", "student": student, "sparsity": None if student else 0.9, "group_size": 1,
                 "quantization": "qat", "coverage": "exclusions", "float_ops": ["attention_scores", "ffn_output"],
                 "made": made}
    return run("06_combined", name, technique, mls, **extra)
