"""The study's starting point for every notebook: data, the cached fine-tuned baseline, and
scoring against the mls reference, driven by resolved parameters."""
from __future__ import annotations

import time
from functools import lru_cache
from pathlib import Path

import numpy as np
import torch
from datasets import Dataset
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core.alignment import tokenize_dataset
from mmakit.core.batching import iterate, sorted_batches
from mmakit.core.data import load_eval_sets, load_split, sample
from mmakit.core.evaluation import EvalSuite, LogitsFn, mls, torch_logits
from mmakit.core.hardware import resolve_precision
from mmakit.core.models import load_token_classifier
from mmakit.core.train import TrainConfig, fine_tune
from mmakit.report import paper
from mmakit.runtime import export
from mmakit.study import provenance, speed
from mmakit.study.cache import cache_key, cached_fine_tune
from mmakit.study.params import Params
from mmakit.study.records import aggregate, make_record, now, read_records, write_record


def setup(P: Params) -> None:
    """Process-wide settings of a run (torch threads), then the run's environment is captured."""
    if P.get("threads"):
        torch.set_num_threads(int(P.threads))
    provenance.start_run(P.get("precision"), P.get("device"))


def precision(P: Params) -> str:
    """The training precision the run's `precision` parameter resolves to on this machine."""
    return resolve_precision(P.get("precision") or "fp32", P.get("device") or "auto")


def train_config(P: Params, **overrides: object) -> TrainConfig:
    """The fine-tuning settings of the profile, with per-call overrides."""
    cfg = dict(
        epochs=P.epochs, lr=P.lr, batch_size=P.batch_size, seed=P.seed, weight_decay=P.weight_decay,
        warmup_ratio=P.warmup_ratio, schedule=P.lr_schedule, freeze_word_embeddings=P.freeze_word_embeddings,
        precision=precision(P),
    )
    return TrainConfig(**(cfg | overrides))


def english_train(P: Params) -> Dataset:
    return _english_train(P.get("data_dir"), P.get("max_train_samples"))


@lru_cache(maxsize=2)
def _english_train(data_dir: str | None, max_samples: int | None) -> Dataset:
    return load_split("en", "train", data_dir, max_samples)


def eval_suite(P: Params, tokenizer: PreTrainedTokenizerBase) -> EvalSuite:
    """Every language x evaluation split of the profile, tokenized for `tokenizer`."""
    sets = load_eval_sets(splits=P.eval_splits, data_dir=P.get("data_dir"), max_samples=P.get("max_eval_samples"))
    return EvalSuite(sets, tokenizer, P.max_length)


def curve_suite(P: Params, tokenizer: PreTrainedTokenizerBase) -> EvalSuite:
    """Dev sets of every language, each a seeded subset of `curve_eval_samples` sentences:
    the cheap evaluation repeated along a pruning curve (full sets are scored at the end)."""
    sets = load_eval_sets(splits=("dev",), data_dir=P.get("data_dir"), max_samples=P.get("max_eval_samples"))
    n = P.get("curve_eval_samples")
    return EvalSuite({k: sample(ds, n, P.seed) for k, ds in sets.items()}, tokenizer, P.max_length)


def fresh_model(P: Params, name: str | None = None, seed: int | None = None
                ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase]:
    """The pre-trained encoder of `name` with a new token-classification head drawn with `seed`."""
    spec = P.model_spec(name)
    return load_token_classifier(spec, english_train(P)["tokens"], seed=P.seed if seed is None else seed)


def fine_tuned(P: Params, name: str | None = None, seed: int | None = None
               ) -> tuple[PreTrainedModel, PreTrainedTokenizerBase, dict]:
    """The fine-tuned baseline of `name` trained with `seed` (default: the `baseline_seed`
    parameter, else `seed`), trained once and then loaded from the cache. Techniques start from
    a fixed seed's checkpoint, never from the best of several.

    Returns model, tokenizer and the cache metadata (key, training time, speed, provenance).
    """
    spec = P.model_spec(name)
    seed = int(seed if seed is not None else P.get("baseline_seed") or P.seed)
    model, tokenizer = fresh_model(P, name, seed)
    train = tokenize_dataset(english_train(P), tokenizer, P.max_length)
    cfg = train_config(P, seed=seed)
    key = cache_key(spec, train, cfg, P.max_length)
    folder, meta = cached_fine_tune(key, model, tokenizer, train, cfg, P.get("cache_dir"),
                                    desc=f"fine-tune {spec.name} seed {seed}", device=P.get("device") or "auto",
                                    provenance=provenance.run_environment())
    model = AutoModelForTokenClassification.from_pretrained(folder).eval()
    return model, AutoTokenizer.from_pretrained(folder), meta | {"checkpoint": str(folder)}


def reference_f1(P: Params) -> tuple[str, dict]:
    """The mls reference named by the `reference` parameter: "paper" (the paper's mlbert row)
    or the run name of one of our 01_baselines records."""
    ref = P.get("reference") or "paper"
    if ref == "paper":
        return "paper mlbert (table 1)", paper.mlbert_reference()
    for record in read_records(P.get("results_dir"), "01_baselines"):
        if record["run"] == ref:
            return f"01_baselines/{ref}", record["f1"]
    raise ValueError(f"reference {ref!r} is neither 'paper' nor the run name of a 01_baselines record")


def score(P: Params, suite: EvalSuite, logits_fn: LogitsFn) -> dict:
    """F1 per language and split, per-type detail, and mls against the run's reference."""
    result = suite.evaluate(logits_fn)
    ref_name, ref = reference_f1(P)
    return result | {"mls": mls(result["f1"], ref), "mls_reference": ref_name}


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
    return {"throughput": speed.benchmark({name: path}, tokenizer, P), "sizes": export.model_sizes(model, path),
            "onnx": {"path": str(path), "opset": export.OPSET, "max_abs_diff": export.parity(model, path, batches)}}


def run_name(P: Params, name: str) -> str:
    """A 01 record's name: model, optional tag (e.g. an lr check), seed: `me5-small-s42`."""
    tag = P.get("run_tag")
    return f"{name}-{tag}-s{P.seed}" if tag else f"{name}-s{P.seed}"


def run_baseline(P: Params, name: str) -> dict:
    """Fine-tune (or load) baseline `name` with the run's seed, score all evaluation sets, time
    training, export it and time it in onnxruntime and deepsparse, and write its record under
    01_baselines/<name>-s<seed>; untagged runs then refresh the seed aggregate <name>."""
    started, t0 = now(), time.perf_counter()
    model, tokenizer, meta = fine_tuned(P, name, seed=P.seed)
    suite = eval_suite(P, tokenizer)
    scored = score(P, suite, torch_logits(model))
    speed = deployed_speed(P, model, tokenizer, suite, meta["checkpoint"], name)
    record = make_record(
        notebook=P.notebook, run=run_name(P, name), profile=P.profile, model=P.model_spec(name).source,
        technique={"method": "fine-tune", "baseline": name, "seed": P.seed, "train": meta["train"]}, params=dict(P),
        f1=scored["f1"], mls=scored["mls"], mls_reference=scored["mls_reference"],
        per_type={lang: {s: d["per_type"] for s, d in splits.items()} for lang, splits in scored["detail"].items()},
        training=meta, train_speed=train_speed(P, name), **speed,
        started=started, seconds=time.perf_counter() - t0,
    )
    write_record(record, P.get("results_dir"))
    if not P.get("run_tag"):
        write_seed_aggregate(P, name)
    return record


def write_seed_aggregate(P: Params, name: str) -> dict | None:
    """Write the record `name` over the seed records of the protocol's `seeds` present so far:
    mean F1 and mls, their standard deviation and each seed's values (results.aggregate)."""
    wanted = [f"{name}-s{s}" for s in (P.get("seeds") or [P.seed])]
    found = [r for r in read_records(P.get("results_dir"), P.notebook) if r["run"] in wanted]
    if not found:
        return None
    record = aggregate(found, name, wanted)
    write_record(record, P.get("results_dir"))
    return record
