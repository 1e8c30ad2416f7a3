"""Versions of the code that produces cached artefacts, part of every cache key.

A cached checkpoint is reused only if the code that made it is the code that would make it
again. Each kind of artefact names the sources it depends on and an explicit version; the
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

_FINE_TUNE = tuple(f"core/{m}" for m in ("train.py", "batching.py", "alignment.py", "models.py", "data.py"))
SOURCES: dict[str, tuple[str, ...]] = {
    "fine-tune": _FINE_TUNE,
    "prune": (*_FINE_TUNE, "core/distillation.py", *(f"techniques/pruning/{m}" for m in (
        "base.py", "config.py", "fisher.py", "gradients.py", "gradual.py", "magnitude.py", "masks.py",
        "movement.py", "obs.py", "schedule.py", "scope.py"))),
}
# kind: (version, hash of SOURCES[kind] when the version was set or last confirmed)
VERSIONS: dict[str, tuple[int, str]] = {
    "fine-tune": (2, ""),
    "prune": (2, ""),
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
