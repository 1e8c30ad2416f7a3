"""The study's starting point for every notebook: data, the cached fine-tuned baseline, and
scoring against the mls reference, driven by resolved parameters."""
from __future__ import annotations

import time
from functools import lru_cache

import torch
from accelerate import PartialState
from datasets import Dataset
from transformers import (
    AutoModelForTokenClassification,
    AutoTokenizer,
    PreTrainedModel,
    PreTrainedTokenizerBase,
)

from mmakit.core import paper
from mmakit.core.alignment import tokenize_dataset
from mmakit.core.data import load_eval_sets, load_split, sample
from mmakit.core.evaluation import EvalSuite, LogitsFn, mls
from mmakit.core.hardware import resolve_device, resolve_precision
from mmakit.core.models import load_token_classifier
from mmakit.core.train import TrainConfig
from mmakit.study import params, provenance
from mmakit.study.cache import cache_key, cached_fine_tune
from mmakit.study.code_version import versions_for
from mmakit.study.params import Params
from mmakit.study.predictions import write_predictions
from mmakit.study.records import aggregate, make_record, now, read_records, write_record


def setup(P: Params) -> None:
    """Process-wide settings of a run (torch threads), then the run's environment is captured."""
    if P.get("threads"):
        torch.set_num_threads(int(P.threads))
    # join a launcher's process group on the run's device before anything else asks for the state
    PartialState(cpu=resolve_device(P.get("device") or "auto") == "cpu")
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


def curve_suite(P: Params, tokenizer: PreTrainedTokenizerBase, seed: int | None = None) -> EvalSuite:
    """Dev sets of every language, each a subset of `curve_eval_samples` sentences drawn with
    `seed` (default: the run's): the cheap evaluation repeated along a pruning curve (full sets
    are scored at the end). A fixed seed keeps the subsets equal across runs of other seeds."""
    sets = load_eval_sets(splits=("dev",), data_dir=P.get("data_dir"), max_samples=P.get("max_eval_samples"))
    n = P.get("curve_eval_samples")
    return EvalSuite({k: sample(ds, n, P.seed if seed is None else seed) for k, ds in sets.items()}, tokenizer,
                     P.max_length)


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
    processes = PartialState().num_processes  # several processes train a different schedule
    key = cache_key(spec, train, cfg, P.max_length, extra={"processes": processes} if processes > 1 else None)
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
    """`suite.evaluate`'s scores and predictions of every set, the gold tags they were scored
    against, and mls (of the headline F1) against the run's reference."""
    result = suite.evaluate(logits_fn)
    ref_name, ref = reference_f1(P)
    gold = {key: suite.sets[key].gold for key in result["predictions"]}
    return result | {"gold": gold, "mls": mls(result["f1"], ref), "mls_reference": ref_name}


class RunClock:
    """When a run started (for its record) and how long it has taken."""

    def __init__(self) -> None:
        self.started, self._t0 = now(), time.perf_counter()

    @property
    def seconds(self) -> float:
        return time.perf_counter() - self._t0


def per_type(scored: dict) -> dict:
    """Per-entity-type F1 by language and split from `score`'s detail."""
    return {lang: {split: d["per_type"] for split, d in splits.items()} for lang, splits in scored["detail"].items()}


def result_record(P: Params, run: str, technique: dict, scored: dict, clock: RunClock, model: str | None = None,
                  **extra: object) -> dict:
    """The record every driver writes for a scored model: the contract's fields from the run's
    parameters and `score`'s result (F1, strict F1, ill-formed chunks, mls, per-type F1, words
    lost to truncation), plus `extra`; `model` names the profile model it started from (default:
    the `model` parameter). The predictions are written beside the results first, and the
    record names their file."""
    predictions = write_predictions(P.notebook, run, scored["predictions"], scored["gold"], P.get("results_dir"))
    return make_record(
        notebook=P.notebook, run=run, profile=P.profile, model=P.model_spec(model).source, technique=technique,
        params=dict(P), f1=scored["f1"], f1_strict=scored["f1_strict"], ill_formed=scored["ill_formed"],
        mls=scored["mls"], mls_reference=scored["mls_reference"], per_type=per_type(scored),
        truncated=scored.get("truncated"), predictions=predictions, started=clock.started, seconds=clock.seconds,
        **extra,
    )


def finish(P: Params, record: dict) -> dict:
    """Write `record` where the run's results go and return it."""
    write_record(record, P.get("results_dir"))
    return record


# parameters that may differ between the seed runs of one protocol
PER_RUN = ("seed", "combine_seed", "experiment", "speed_probe_steps", "results_dir", "cache_dir", "data_dir", "model_dir",
           "generic_text_dir")


def same_protocol(a: dict, b: dict, notebook: str | None = None) -> bool:
    """Whether two runs' parameters differ at most in their seed (and where they wrote), over
    the parameters both have that `notebook` takes (every shared one if None; a profile
    gains parameters for other notebooks over time, which must not split a protocol); an
    empty list or mapping equals a null parameter (e.g. unlabelled_langs: [] added later)."""
    keys = (set(a) & set(b)) - set(PER_RUN)
    if notebook and params.declared(notebook):
        keys &= params.declared(notebook)
    return all(_normal(a[k]) == _normal(b[k]) for k in keys)


def _normal(value: object) -> object:
    """None for an absent, null or empty parameter, else the value."""
    return None if value is None or value == [] or value == {} else value


def same_code(record: dict, notebook: str) -> bool:
    """Whether `record` was made by the code versions `notebook` runs now (kinds it names)."""
    made = record.get("code_versions") or {}
    return all(made[kind] == version for kind, version in versions_for(notebook).items() if kind in made)


def same_cpu(a: dict, b: dict) -> bool:
    """Whether two records ran on the same CPU model (name and instruction-set flags)."""
    return all((a.get("env") or {}).get(k) == (b.get("env") or {}).get(k) for k in ("cpu", "cpu_flags"))


def write_seed_aggregate(P: Params, name: str) -> dict | None:
    """Write the record `name` over the records `<name>-s<seed>` of the protocol's `seeds`
    present so far that ran with this run's parameters and code versions, on the CPU model of
    the first of them in seed order (a seed made under other settings, older code or on another
    CPU is left out): mean F1 and mls, their standard deviation and each seed's values (records.aggregate)."""
    wanted = [f"{name}-s{s}" for s in (P.get("seeds") or [P.seed])]
    found = [r for r in read_records(P.get("results_dir"), P.notebook)
             if r["run"] in wanted and same_protocol(r["params"], dict(P), P.notebook) and same_code(r, P.notebook)]
    if not found:
        return None
    first = min(found, key=lambda r: wanted.index(r["run"]))
    found = [r for r in found if same_cpu(r, first)]
    record = aggregate(found, name, wanted)
    write_record(record, P.get("results_dir"))
    return record
