"""Profiles (params/<profile>.yaml) and the parameters a notebook runs with.

A notebook's `parameters` cell holds `profile` and every other parameter as None; papermill
(-p or -f) replaces some of them, the profile fills the rest, and `resolve` checks the
values so a bad one fails at once with the valid choices named.
"""
from __future__ import annotations

import ast
import json
import math
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mmakit.core import train
from mmakit.core.data import DATA_DIR_ENV, LANGUAGES, SPLITS, resolve_data_dir
from mmakit.core.hardware import DEVICES, PRECISIONS
from mmakit.core.models import ModelSpec
from mmakit.core.paths import REPO
from mmakit.runtime.bench import RUNTIMES
from mmakit.techniques.distillation import students as distil_students
from mmakit.techniques.heads import strategy as head_strategy
from mmakit.techniques.pruning import config as pruning_config
from mmakit.techniques.pruning import fisher as pruning_fisher
from mmakit.techniques.pruning import masks as pruning_masks
from mmakit.techniques.pruning import schedule as pruning_schedule
from mmakit.techniques.quantization import pipeline as quant_pipeline
from mmakit.techniques.quantization import ptq

NOTEBOOKS_DIR = REPO / "notebooks"
# what every notebook's models and scores depend on without each parameters cell naming it
SHARED_PARAMETERS = ("models", "warmup_ratio", "weight_decay", "lr_schedule", "max_length", "eval_splits", "precision",
                     "device", "baseline_seed", "curve_eval_samples")
PARAMS_ENV = "MMAKIT_PARAMS_DIR"
PARAMS_DIR = REPO / "params"
PROFILES = ("smoke", "quick", "paper")

# every valid choice comes from the layer that owns it
CHOICES: dict[str, tuple] = {
    "method": pruning_config.METHODS,
    "schedule": pruning_schedule.SCHEDULES,
    "lr_schedule": train.SCHEDULES,
    "strategy": head_strategy.STRATEGIES,
    "calibration_method": tuple(ptq.CALIBRATION),
    "quant_format": tuple(ptq.FORMATS),
    "prune_mode": pruning_config.MODES,
    "prune_start": pruning_config.STARTS,
    "group_size": pruning_config.GROUP_SIZES,
    "combine_group_size": pruning_config.GROUP_SIZES,
    "precision": PRECISIONS,
    "device": DEVICES,
    "student_choice": distil_students.LAYER_CHOICES,
    "obs_build": pruning_fisher.BUILDS,
    "selection": pruning_masks.SELECTIONS,
}
UNIT_INTERVAL = ("sparsity", "initial_sparsity", "warmup_ratio", "hardness", "ffn_step", "combine_sparsity",
                 "combine_initial_sparsity")
POSITIVE = ("epochs", "lr", "batch_size", "max_length", "temperature", "threads",
            "heads_per_iteration", "iterations", "importance_samples", "curve_eval_samples", "bench_every",
            "bench_group",
            "calibration_size", "qat_epochs", "qat_lr", "seq_len", "bench_seconds", "bench_rounds", "bench_threads",
            "pruning_steps", "prune_interval", "num_grads", "grad_batch", "obs_block_size", "obs_damp",
            "obs_chunk_blocks", "prune_lr", "student_size", "intermediate_weight", "combine_student")
BOOLEANS = ("teacher", "intermediate", "kd")  # papermill -p gives "true"/"false" as text: read as booleans
POSITIVE_LISTS = ("batches", "seeds")
INDEX_LISTS = ("student_layers",)  # lists of non-negative integers, null in the profiles
ZERO_SHOT_LANGS = tuple(lang for lang in LANGUAGES if lang != "en")
LISTS_OF = {"langs": LANGUAGES, "eval_splits": SPLITS, "runtimes": RUNTIMES, "quant_methods": quant_pipeline.METHODS,
            "quant_exclude": ptq.EXCLUDABLE, "one_shot_methods": pruning_config.METHODS,
            "unlabelled_langs": ZERO_SHOT_LANGS, "combine_unlabelled_langs": ZERO_SHOT_LANGS}


class Params(dict):
    """Resolved parameters with attribute access; a missing name lists the known ones."""

    def __getattr__(self, name: str) -> Any:
        try:
            return self[name]
        except KeyError:
            raise AttributeError(f"no parameter {name!r}; known: {', '.join(sorted(self))}") from None

    def model_spec(self, name: str | None = None) -> ModelSpec:
        """The ModelSpec of `name` (default: the `model` parameter) from the profile's models."""
        name = name or self["model"]
        models = self.get("models") or {}
        if name not in models:
            raise ValueError(f"unknown model {name!r}; this profile defines: {', '.join(models)}")
        entry = models[name]
        if isinstance(entry, str):
            entry = {"source": entry}
        source = self.get("model_dir") if name == self.get("model") and self.get("model_dir") else entry["source"]
        return ModelSpec(name=name, source=source, tiny=entry.get("tiny"))


def params_dir() -> Path:
    return Path(os.environ.get(PARAMS_ENV) or PARAMS_DIR)


def load_profile(profile: str) -> dict:
    """The YAML of a profile by name (params/<name>.yaml) or by path."""
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = params_dir() / f"{profile}.yaml"
        if not path.exists():
            found = sorted(p.stem for p in params_dir().glob("*.yaml"))
            raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(found) or ', '.join(PROFILES)}")
    return yaml.safe_load(path.read_text()) or {}


def validate(p: Mapping[str, Any]) -> None:
    """Raise ValueError naming the parameter and the valid values for the first bad one."""
    for key, choices in CHOICES.items():
        if p.get(key) is not None and p[key] not in choices:
            raise ValueError(f"{key}={p[key]!r} is not valid; choose from {', '.join(map(str, choices))}")
    for key in UNIT_INTERVAL:
        v = p.get(key)
        if v is not None and not (0 <= v < 1 or (key == "hardness" and v == 1)):
            raise ValueError(f"{key}={v!r} must lie in [0, 1)")
    for key in POSITIVE:
        v = p.get(key)
        if v is not None and not (isinstance(v, (int, float)) and v > 0 and math.isfinite(v)):
            raise ValueError(f"{key}={v!r} must be a positive number")
    for key in POSITIVE_LISTS:
        bad = [x for x in p.get(key) or () if not (isinstance(x, int) and x > 0)]
        if bad:
            raise ValueError(f"{key} has {', '.join(map(str, bad))}; each must be a positive integer")
    for key, low, high in (("one_shot_damps", 0, math.inf), ("one_shot_sparsities", 0, 1)):
        bad = [x for x in p.get(key) or () if not (isinstance(x, (int, float)) and low < x < high)]
        if bad:
            raise ValueError(f"{key} has {', '.join(map(str, bad))}; each must lie in ({low}, {high})")
    for key, allowed in LISTS_OF.items():
        bad = [x for x in p.get(key) or () if x not in allowed]
        if bad:
            raise ValueError(f"{key} has {', '.join(map(str, bad))}; allowed: {', '.join(allowed)}")
    for key in BOOLEANS:
        if p.get(key) is not None and not isinstance(p[key], bool):
            raise ValueError(f"{key}={p[key]!r} must be true or false")
    variant = p.get("variant")
    if variant is not None and not (isinstance(variant, str) and re.fullmatch(r"[a-z0-9_]+", variant)):
        raise ValueError(f"variant={variant!r} must be lower-case letters, digits or _ (it becomes part of run names)")
    layers = p.get("student_layers")
    if layers is not None and not (isinstance(layers, list) and layers and all(
            isinstance(i, int) and not isinstance(i, bool) and i >= 0 for i in layers)):
        raise ValueError(f"student_layers={layers!r} must be a non-empty list of layer indices (0 = the bottom layer)")
    for key in ("baselines", "student_model", "teacher_model"):
        names = p.get(key) or ()
        for name in [names] if isinstance(names, str) else names:
            if name not in (p.get("models") or {}):
                raise ValueError(f"{key} {name!r} is not among the profile's models: {', '.join(p.get('models') or {})}")


@lru_cache(maxsize=16)
def declared(notebook: str) -> frozenset[str]:
    """The parameters `notebook` takes (the names its `parameters` cell assigns) and the shared
    ones every notebook depends on; empty for a name that is not a notebook here."""
    path = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if not path.exists():
        return frozenset()
    cells = json.loads(path.read_text())["cells"]
    source = next(("".join(c["source"]) for c in cells if "parameters" in c.get("metadata", {}).get("tags", [])), "")
    names = {t.id for node in ast.walk(ast.parse(source)) if isinstance(node, ast.Assign)
             for t in node.targets if isinstance(t, ast.Name)}
    return frozenset(names | set(SHARED_PARAMETERS))


def notebook_parameters(given: Mapping[str, Any]) -> dict[str, Any]:
    """The plain-data globals of a notebook (parameters cell plus papermill's injected cell)."""
    plain = (str, int, float, bool, list, dict, type(None))
    return {k: v for k, v in given.items() if not k.startswith("_") and k not in ("In", "Out") and isinstance(v, plain)}


def list_valued(profile: Mapping[str, Any]) -> set[str]:
    """The parameters that hold lists: the checked lists plus any the profile gives as a list."""
    return set(POSITIVE_LISTS) | set(INDEX_LISTS) | set(LISTS_OF) | {k for k, v in profile.items() if isinstance(v, list)}


def _item_kind(key: str, example: Any) -> type | None:
    """int or float where `key` is a list of numbers, None where its items stay as written."""
    if key in POSITIVE_LISTS or key in INDEX_LISTS:
        return int
    if key in LISTS_OF or not isinstance(example, list) or not example:
        return None
    if all(isinstance(x, int) and not isinstance(x, bool) for x in example):
        return int
    if all(isinstance(x, (int, float)) and not isinstance(x, bool) for x in example):
        return float
    return None


def _number(text: str, kind: type) -> Any:
    """`text` as an int or float; an int list keeps a bad item as written so `validate` names it."""
    try:
        return int(text) if kind is int else float(text)
    except ValueError:
        if kind is float:
            raise ValueError(f"{text!r} is not a number") from None
        return text


def as_list(key: str, value: Any, example: Any = None) -> Any:
    """A list-valued parameter as papermill's -p gives it, read as a list.

    `-p runtimes onnxruntime` gives one value, `-p batches 1,4` a comma-separated list,
    `-p batches '[1, 4]'` a YAML/JSON list, `-p batches 4` a bare number and `-p quant_exclude ''`
    an empty list. Items of a list of numbers (batches, seeds, or where `example`, the profile's
    value, holds numbers) become ints or floats; a list given as a list is kept as it is.
    """
    if isinstance(value, (int, float)) and not isinstance(value, bool):
        return [value]
    if not isinstance(value, str):
        return value
    kind = _item_kind(key, example)
    text = value.strip()
    if text.startswith("["):
        try:
            items = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{key}={value!r} is not a valid list: {exc}") from None
        if not isinstance(items, list):
            raise ValueError(f"{key}={value!r} is not a valid list")
    else:
        items = [x.strip() for x in text.split(",")] if text else []
        if any(not x for x in items):
            raise ValueError(f"{key}={value!r} has an empty item; give one value or a comma-separated list")
    if kind is None:
        return items
    try:
        return [_number(x, kind) if isinstance(x, str) else x for x in items]
    except ValueError as exc:
        raise ValueError(f"{key}={value!r}: {exc}; each item must be a number") from None


def resolve(given: Mapping[str, Any], notebook: str) -> Params:
    """The profile named by given['profile'] overlaid with every non-None parameter in `given`.

    `given` is usually the notebook's `globals()` right after its parameters cell. A string
    (or bare number) given for a list-valued parameter is read as a list first (`as_list`).
    """
    ours = notebook_parameters(given)
    profile = ours.get("profile") or "quick"
    base = load_profile(profile)
    merged = Params({k: None for k in ours})
    merged.update(base)
    lists = list_valued(base)
    merged.update({k: as_list(k, v, base.get(k)) if k in lists else v for k, v in ours.items() if v is not None})
    for key in BOOLEANS:
        if isinstance(merged.get(key), str) and merged[key].strip().lower() in ("true", "false"):
            merged[key] = merged[key].strip().lower() == "true"
    merged["profile"] = base.get("profile", Path(str(profile)).stem)
    merged["notebook"] = notebook
    validate(merged)
    if not merged.get("data_dir") and not os.environ.get(DATA_DIR_ENV) and merged.get("fallback_data_dir"):
        merged["data_dir"] = str(REPO / merged["fallback_data_dir"])
    resolve_data_dir(merged.get("data_dir"))  # fail early on a missing data directory
    return merged
