"""The 01_baselines driver: fine-tune each baseline with one seed, score it on every set,
probe training speed in fp32 and bf16, export and time it, and keep the seed aggregate."""
from __future__ import annotations

from pathlib import Path

import numpy as np
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.evaluation import EvalSuite, torch_logits
from mmakit.core.train import fine_tune
from mmakit.runtime import bench, export
from mmakit.study import speed
from mmakit.study.common import (
    RunClock,
    english_train,
    eval_suite,
    fine_tuned,
    finish,
    fresh_model,
    result_record,
    score,
    train_config,
    write_seed_aggregate,
)
from mmakit.study.params import Params

PROBE_PRECISIONS = ("fp32", "bf16")


def train_speed(P: Params, name: str | None = None, rounds: int = 2) -> dict[str, float]:
    """Training sentences/s on English train in fp32 and bf16, each with and without frozen word
    embeddings, measured in this process in interleaved rounds (median per setting), plus the
    bf16/fp32 ratio with frozen embeddings (the quick profile's setting).

    Each probe is `speed_probe_steps` optimizer steps on a fresh model.
    """
    steps = int(P.get("speed_probe_steps") or 0)
    if steps <= 0:
        return {}
    model, tokenizer = fresh_model(P, name)
    n = min(steps * P.batch_size, len(english_train(P)))
    train = tokenize_dataset(english_train(P).select(range(n)), tokenizer, P.max_length)
    runs: dict[str, list[float]] = {}
    for _ in range(rounds):
        for frozen in (True, False):
            for prec in PROBE_PRECISIONS:
                model, _ = fresh_model(P, name)
                cfg = train_config(P, epochs=1.0, freeze_word_embeddings=frozen, precision=prec)
                log = fine_tune(model, train, cfg, tokenizer.pad_token_id, desc=f"speed probe {prec} frozen={frozen}",
                                device=P.get("device") or "auto")
                runs.setdefault(f"{prec}_{'frozen' if frozen else 'full'}", []).append(log.sentences_per_s)
    out = {k: float(np.median(v)) for k, v in runs.items()}
    return out | {"bf16_over_fp32_frozen": out["bf16_frozen"] / out["fp32_frozen"], "steps": steps, "rounds": rounds}


def deployed_speed(P: Params, model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, suite: EvalSuite,
                   folder: str | Path, name: str) -> dict:
    """Export `model` to folder/model.onnx, check its logits against PyTorch on two real batches,
    and benchmark it in the run's runtimes: {"throughput", "sizes", "onnx"} for the record."""
    path = export.export_onnx(model, tokenizer, Path(folder) / "model.onnx")
    first = next(iter(suite.sets.values())).tokenized
    batches = list(iterate(first, sorted_batches([len(x) for x in first["input_ids"]], 16)[:2], tokenizer.pad_token_id))
    rows = bench.speedups(speed.benchmark({name: path}, tokenizer, P), name)
    return {"throughput": rows, "sizes": export.model_sizes(model, path),
            "onnx": {"path": str(path), "opset": export.OPSET, "max_abs_diff": export.parity(model, path, batches)}}


def run_name(P: Params, name: str) -> str:
    """A 01 record's name: model, optional tag (e.g. an lr check), seed: `me5-small-s42`."""
    tag = P.get("run_tag")
    return f"{name}-{tag}-s{P.seed}" if tag else f"{name}-s{P.seed}"


def run(P: Params, name: str) -> dict:
    """Fine-tune (or load) baseline `name` with the run's seed, score all evaluation sets, time
    training, export it and time it in onnxruntime and deepsparse, and write its record under
    01_baselines/<name>-s<seed>; untagged runs then refresh the seed aggregate <name>."""
    clock = RunClock()
    model, tokenizer, meta = fine_tuned(P, name, seed=P.seed)
    suite = eval_suite(P, tokenizer)
    scored = score(P, suite, torch_logits(model))
    deployed = deployed_speed(P, model, tokenizer, suite, meta["checkpoint"], name)
    technique = {"method": "fine-tune", "baseline": name, "seed": P.seed, "train": meta["train"]}
    record = finish(P, result_record(P, run_name(P, name), technique, scored, clock, model=name, training=meta,
                                     train_speed=train_speed(P, name), **deployed))
    if not P.get("run_tag"):
        write_seed_aggregate(P, name)
    return record
