"""Profiles (params/<profile>.yaml) and the parameters a notebook runs with.

A notebook's `parameters` cell holds `profile` and every other parameter as None; papermill
(-p or -f) replaces some of them, the profile fills the rest, and `resolve` checks the
values so a bad one fails at once with the valid choices named.
"""
from __future__ import annotations

import argparse
import ast
import difflib
import json
import os
import re
from collections.abc import Mapping
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from mmakit.core.data import DATA_DIR_ENV, resolve_data_dir
from mmakit.core.models import ModelSpec
from mmakit.core.paths import REPO
from mmakit.study.param_table import BY_NAME, SHARED, Param, for_notebook, parameters_cell

NOTEBOOKS_DIR = REPO / "notebooks"
PARAMS_ENV = "MMAKIT_PARAMS_DIR"
PARAMS_DIR = REPO / "params"
PROFILES = ("smoke", "quick", "paper")
TRUE, FALSE = ("true", "yes", "on", "1"), ("false", "no", "off", "0")
NULL = ("none", "null", "~")


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


def param(name: str, where: str = "") -> Param:
    """The table's entry for `name`; an unknown name fails naming the closest known ones."""
    if name in BY_NAME:
        return BY_NAME[name]
    close = difflib.get_close_matches(name, BY_NAME, n=3, cutoff=0.6)
    hint = f"; did you mean {' or '.join(close)}?" if close else "; `python -m mmakit params` lists them"
    raise ValueError(f"unknown parameter {name!r}{f' in {where}' if where else ''}{hint}")


def check_names(values: Mapping[str, Any], where: str) -> None:
    """Fail on the first name of `values` that is not a parameter (a typo in a YAML file)."""
    for name in values:
        param(name, where)


def load_profile(profile: str) -> dict:
    """The YAML of a profile by name (params/<name>.yaml) or by path; every key must be a parameter."""
    path = Path(profile)
    if path.suffix not in (".yaml", ".yml"):
        path = params_dir() / f"{profile}.yaml"
        if not path.exists():
            found = sorted(p.stem for p in params_dir().glob("*.yaml"))
            raise ValueError(f"unknown profile {profile!r}; choose from {', '.join(found) or ', '.join(PROFILES)}")
    values = yaml.safe_load(path.read_text()) or {}
    check_names(values, str(path))
    return {k: coerce(k, v) for k, v in values.items()}


def profile_value(P: Params, name: str) -> Any:
    """`name`'s value in the profile P was resolved from (None when that profile cannot be read
    back by name), to tell a run's own choice from the profile's."""
    try:
        return load_profile(P.profile).get(name)
    except ValueError:
        return None


WHAT = {"bool": "true or false (true/false, yes/no, 1/0)", "int": "an integer", "number": "a number"}


def _scalar(kind: str, value: Any) -> Any:
    """One value of kind bool, int, number or str from what YAML or papermill gave; ValueError
    (its text: what the value must be) when it cannot be read as one."""
    text = value.strip() if isinstance(value, str) else None
    if kind == "str":
        return value if isinstance(value, str) else str(value)
    if kind == "bool":
        if isinstance(value, bool) or (isinstance(value, int) and value in (0, 1)):
            return bool(value)
        if text is not None and text.lower() in TRUE + FALSE:
            return text.lower() in TRUE
    elif isinstance(value, bool):
        pass
    elif isinstance(value, int) or (isinstance(value, float) and (kind == "number" or value.is_integer())):
        return int(value) if kind == "int" else value
    elif text is not None and re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    elif text is not None and kind == "number":
        try:
            return float(text)
        except ValueError:
            pass
    raise ValueError(WHAT[kind])


def _as_list(p: Param, value: Any) -> list:
    """A list parameter as papermill's -p gives it: `1,4`, `[1, 4]` (YAML), a bare value, or '' (empty)."""
    if isinstance(value, list):
        return value
    if not isinstance(value, str):
        return [value]
    text = value.strip()
    if text.startswith("["):
        try:
            items = yaml.safe_load(text)
        except yaml.YAMLError as exc:
            raise ValueError(f"{p.name}={value!r} is not a valid list: {exc}") from None
        if not isinstance(items, list):
            raise ValueError(f"{p.name}={value!r} is not a valid list")
        return items
    items = [x.strip() for x in text.split(",")] if text else []
    if any(not x for x in items):
        raise ValueError(f"{p.name}={value!r} has an empty item; give one value or a comma-separated list")
    return items


def coerce(name: str, value: Any) -> Any:
    """`value` as parameter `name`'s type: papermill's strings (and YAML's) read by the table.

    `false`, `no`, `0` are False and `true`, `yes`, `1` True for a boolean; `3` an int; `1e-5` a
    float; `1,4` or `[1, 4]` the list [1, 4] (`''` the empty list); `None`/`null` None. A value
    that cannot be read fails naming the parameter; an unknown name fails naming the closest known.
    """
    p = param(name)
    if value is None or (isinstance(value, str) and p.kind != "str" and value.strip().lower() in NULL):
        return None
    if p.kind == "mapping":
        if not isinstance(value, dict):
            raise ValueError(f"{name}={value!r} must be a mapping")
        return value
    if not p.kind.startswith("list["):
        try:
            return _scalar(p.kind, value)
        except ValueError as exc:
            raise ValueError(f"{name}={value!r} must be {exc}") from None
    items, item_kind = _as_list(p, value), p.kind[5:-1]
    out = []
    for x in items:
        try:
            out.append(_scalar(item_kind, x))
        except ValueError as exc:
            raise ValueError(f"{name}={value!r}: {x!r} is not {exc}") from None
    return out


def _check(p: Param, value: Any) -> None:
    """Fail naming `p` and what is valid when `value` (or an item of it) lies outside its
    choices or range."""
    is_list = p.kind.startswith("list[")
    for x in value if is_list else [value]:
        if p.choices is not None and x not in p.choices:
            problem = f"is not valid; choose from {', '.join(map(str, p.choices))}"
        elif p.bounds and not p.in_bounds(x):
            problem = f"must lie in {p.bounds}"
        else:
            continue
        raise ValueError(f"{p.name} has {x!r}, which {problem}" if is_list else f"{p.name}={x!r} {problem}")


def validate(p: Mapping[str, Any]) -> None:
    """Raise ValueError naming the parameter and the valid values for the first bad one."""
    for key, value in p.items():
        if key in BY_NAME and value is not None:
            _check(BY_NAME[key], coerce(key, value))
    variant = p.get("variant")
    if variant is not None and not re.fullmatch(r"[a-z0-9_]+", variant):
        raise ValueError(f"variant={variant!r} must be lower-case letters, digits or _ (it becomes part of run names)")
    if p.get("student_layers") == []:
        raise ValueError("student_layers=[] must be a non-empty list of layer indices (0 = the bottom layer)")
    for key in ("baselines", "student_model", "teacher_model"):
        names = p.get(key) or ()
        for name in [names] if isinstance(names, str) else names:
            if name not in (p.get("models") or {}):
                raise ValueError(f"{key} {name!r} is not among the profile's models: {', '.join(p.get('models') or {})}")


@lru_cache(maxsize=16)
def declared(notebook: str) -> frozenset[str]:
    """The parameters `notebook` takes (its parameters cell, from the table) and the shared
    ones every notebook depends on; empty for a name that is not a notebook here."""
    names = {p.name for p in for_notebook(notebook)}
    return frozenset(names | set(SHARED)) if names else frozenset()


@lru_cache(maxsize=16)
def own_names(notebook: str) -> frozenset[str]:
    """Names the notebook's own code cells assign (outside its parameters cell): re-running a
    cell in JupyterLab leaves them among the globals, and they are not misspelt parameters."""
    path = NOTEBOOKS_DIR / f"{notebook}.ipynb"
    if not path.exists():
        return frozenset()
    names = set()
    for cell in json.loads(path.read_text())["cells"]:
        if cell["cell_type"] != "code" or "parameters" in cell.get("metadata", {}).get("tags", []):
            continue
        try:
            tree = ast.parse("".join(cell["source"]))
        except SyntaxError:
            continue
        names |= {n.id for n in ast.walk(tree) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Store)}
    return frozenset(names)


def sync_parameters_cells(write: bool = False) -> list[str]:
    """The notebooks whose parameters cell differs from the table's (`parameters_cell`),
    rewritten to match when `write`: the table is the one place a parameter is declared."""
    differ = []
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = json.loads(path.read_text())
        cell = next(c for c in nb["cells"] if "parameters" in c.get("metadata", {}).get("tags", []))
        wanted = parameters_cell(path.stem)
        if "".join(cell["source"]) != wanted:
            differ.append(path.stem)
            cell["source"] = wanted.splitlines(keepends=True)
            if write:
                path.write_text(json.dumps(nb, indent=1, ensure_ascii=False) + "\n")
    return differ


def notebook_parameters(given: Mapping[str, Any], notebook: str) -> dict[str, Any]:
    """The parameters among a notebook's globals (parameters cell plus papermill's injected
    cell); a plain value that is neither a parameter nor the notebook's own fails as a typo."""
    plain = (str, int, float, bool, list, dict, type(None))
    ours = {k: v for k, v in given.items() if not k.startswith("_") and k not in ("In", "Out")
            and isinstance(v, plain) and not isinstance(v, Params) and k not in own_names(notebook)}
    check_names(ours, notebook)
    return ours


def resolve(given: Mapping[str, Any], notebook: str) -> Params:
    """The profile named by given['profile'] overlaid with every non-None parameter in `given`,
    each coerced to its type (`coerce`) and checked (`validate`).

    `given` is usually the notebook's `globals()` right after its parameters cell; a name in it
    that is no parameter fails, naming the closest known one.
    """
    ours = notebook_parameters(given, notebook)
    profile = ours.get("profile") or "quick"
    base = load_profile(profile)
    merged = Params({k: None for k in ours})
    merged.update(base)
    merged.update({k: coerce(k, v) for k, v in ours.items() if v is not None})
    merged["profile"] = base.get("profile", Path(str(profile)).stem)
    merged["notebook"] = notebook
    validate(merged)
    if not merged.get("data_dir") and not os.environ.get(DATA_DIR_ENV) and merged.get("fallback_data_dir"):
        merged["data_dir"] = str(REPO / merged["fallback_data_dir"])
    resolve_data_dir(merged.get("data_dir"))  # fail early on a missing data directory
    return merged


def add_cli_options(parser: argparse.ArgumentParser, example: str) -> None:
    """A script's `--profile` and `-p NAME VALUE` options (`example`: a sample override), as
    the benchmark scripts take them."""
    parser.add_argument("--profile", default="quick", help="smoke | quick | paper, or a YAML path (default quick)")
    parser.add_argument("-p", "--param", nargs=2, action="append", default=[], metavar=("NAME", "VALUE"),
                        help=f"a parameter override (YAML value), e.g. {example}")


def from_cli(args: argparse.Namespace, notebook: str) -> Params:
    """The parameters a script parsed with `add_cli_options` asks for, resolved as `notebook` would."""
    return resolve({**{k: yaml.safe_load(v) for k, v in args.param}, "profile": args.profile}, notebook)
