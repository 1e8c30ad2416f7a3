"""Versions of the code that produces cached artefacts and records, part of every cache key
and of every record.

A cached checkpoint is reused, and a record counts as current, only if the code that made
it is the code that would make it again. Each kind of artefact names the sources it depends on and an explicit version; the
test suite hashes those sources and fails, naming the kind, when they changed without the
hash below being updated, so whoever changes them decides: a change in behaviour bumps the
version (every cached artefact of that kind is rebuilt), a pure refactor only records the
new hash. Hashes are taken over each module's syntax tree without docstrings, so comments,
docstrings and formatting never count as changes.
"""
from __future__ import annotations

import ast
import hashlib
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1]  # mmakit/

def _files(folder: str, *names: str) -> tuple[str, ...]:
    return tuple(f"{folder}/{n}.py" for n in names)


_FINE_TUNE = _files("core", "train", "batching", "alignment", "models", "data", "hardware")
SOURCES: dict[str, tuple[str, ...]] = {
    # cached checkpoints
    "fine-tune": _FINE_TUNE,
    "prune": (*_FINE_TUNE, "core/distillation.py", "techniques/selection.py", *_files(
        "techniques/pruning", "base", "config", "fisher", "gradients", "gradual", "magnitude", "masks", "movement",
        "obs", "schedule", "scope")),
    "distil": (*_FINE_TUNE, "core/distillation.py", *_files("techniques/distillation", "students", "kd")),
    # everything else a record's numbers depend on
    "evaluate": _files("core", "evaluation", "data", "alignment", "batching"),
    "heads": (*_files("techniques/heads", "anatomy", "masks", "pruner", "strategy"), "techniques/selection.py"),
    "quantize": _files("techniques/quantization", "calibration", "pipeline", "ptq", "qat"),
    "runtime": _files("runtime", "export", "bench", "timing", "deepsparse_env", "deepsparse_worker"),
    "drivers": _files("study", "common", "baseline", "heads", "pruning", "quantization", "speed", "distillation"),
}
# kind: (version, hash of SOURCES[kind] when the version was set or last confirmed)
VERSIONS: dict[str, tuple[int, str]] = {
    "fine-tune": (2, "30fe0fd9aa2617b5"),
    "prune": (2, "f6199599e43dc457"),
    "distil": (1, "250c43885359a060"),
    "evaluate": (1, "37c06c7629661c46"),
    "heads": (1, "6a6835d008a6faa8"),
    "quantize": (1, "5f3043432680915f"),
    "runtime": (1, "326effe5f0f8dbcb"),
    "drivers": (1, "de95bb8627c99a53"),
}


def _without_docstrings(tree: ast.AST) -> ast.AST:
    for node in ast.walk(tree):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
            getattr(body[0], "value", None), ast.Constant
        ) and isinstance(body[0].value.value, str):
            node.body = body[1:] or [ast.Pass()]
    return tree


def sources_hash(kind: str) -> str:
    """A hash of the syntax trees (docstrings dropped) of the sources `kind` depends on."""
    h = hashlib.sha256()
    for rel in SOURCES[kind]:
        tree = _without_docstrings(ast.parse((PACKAGE / rel).read_text()))
        h.update(rel.encode())
        h.update(ast.dump(tree, include_attributes=False).encode())
    return h.hexdigest()[:16]


def code_version(kind: str) -> str:
    """The version string a cache key carries for artefacts of `kind`, e.g. 'fine-tune.v2'."""
    if kind not in VERSIONS:
        raise ValueError(f"unknown artefact kind {kind!r}; known: {', '.join(VERSIONS)}")
    return f"{kind}.v{VERSIONS[kind][0]}"


def all_versions() -> dict[str, int]:
    """Every kind's version: records carry them, and a record made under other versions is stale."""
    return {kind: version for kind, (version, _) in VERSIONS.items()}
