"""Fine-tuned checkpoints cached under a key of everything that determines them, so later
notebooks reuse 01's baselines. A checkpoint directory appears only by an atomic rename
once it is complete; an interrupted run resumes from its `.partial` directory."""
from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Sequence
from pathlib import Path

from accelerate import PartialState
from datasets import Dataset
from transformers import PreTrainedModel, PreTrainedTokenizerBase

from mmakit.core import data as data_mod
from mmakit.core.hardware import training_hardware
from mmakit.core.models import ModelSpec, source_fingerprint
from mmakit.core.paths import atomic_path, cache_root
from mmakit.core.train import TrainConfig, TrainHooks, TrainLog, fine_tune
from mmakit.study.code_version import code_version
from mmakit.study.provenance import training_libraries


def cache_key(spec: ModelSpec, train: Dataset, cfg: TrainConfig, max_length: int, extra: dict | None = None,
              kind: str = "fine-tune") -> str:
    """A short hash of model source, training data content, training settings, the version of
    the code that produces this kind of artefact, the versions of the libraries training depends
    on and the processors it runs on (another torch, transformers or CPU model retrains rather
    than reuses), and any extras. The same inputs on the same hardware give the same key on
    every machine, so records made in different sessions pair by it."""
    payload = {
        "code": code_version(kind),
        "libraries": training_libraries(),
        "hardware": training_hardware(),
        "model": source_fingerprint(spec),
        "data": data_mod.fingerprint(train),
        "labels": data_mod.LABELS,
        "train": cfg.to_dict(),
        "max_length": max_length,
        "extra": extra or {},
    }
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, default=str).encode()).hexdigest()[:16]
    return f"{spec.name}-{digest}"


def save_atomically(model: PreTrainedModel, tokenizer: PreTrainedTokenizerBase, final: Path, meta: dict) -> None:
    """Write model, tokenizer and metadata to `final` so it exists only when complete."""
    with atomic_path(final) as tmp:
        model.save_pretrained(tmp)
        tokenizer.save_pretrained(tmp)
        (tmp / "mmakit.json").write_text(json.dumps(meta, indent=2, default=str))


def load_meta(folder: Path) -> dict:
    return json.loads((folder / "mmakit.json").read_text())


def cached_fine_tune(
    key: str,
    model: PreTrainedModel,
    tokenizer: PreTrainedTokenizerBase,
    train: Dataset,
    cfg: TrainConfig,
    root: str | Path | None = None,
    desc: str = "fine-tune",
    device: str = "auto",
    provenance: dict | None = None,
    hooks: Sequence[TrainHooks] = (),
) -> tuple[Path, dict]:
    """Fine-tune unless `key` is cached; return the checkpoint folder and its metadata.

    The metadata records the training log of the run that produced the checkpoint (and the
    `provenance` of that run: commit, packages, CPU), so a cache hit still reports how, where
    and how fast it was trained. `hooks` reach the training loop (e.g. a distillation loss);
    whatever they change must be part of `key`.
    """
    final = cache_root(root) / "checkpoints" / key
    if (final / "mmakit.json").exists():
        return final, load_meta(final)
    partial = final.with_name(key + ".partial")
    log: TrainLog = fine_tune(model, train, cfg, tokenizer.pad_token_id, hooks=hooks, checkpoint_dir=partial, desc=desc,
                              device=device)
    meta = {
        "key": key, "train": cfg.to_dict(), "precision": log.precision, "device": log.device,
        "processes": log.processes, "steps": log.steps, "train_seconds": log.seconds,
        "train_sentences_per_s": log.sentences_per_s, "final_loss": float(sum(log.losses[-50:]) / max(1, len(log.losses[-50:]))),
        "provenance": provenance or {},
    }
    state = PartialState()  # under `accelerate launch` every process trained; the main one saves
    if state.is_main_process:
        save_atomically(model, tokenizer, final, meta)
        shutil.rmtree(partial, ignore_errors=True)
    state.wait_for_everyone()
    return final, meta
