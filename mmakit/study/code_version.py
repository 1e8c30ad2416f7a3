"""Versions of the code that produces cached artefacts and records, part of every cache key
and of every record.

A cached checkpoint is reused, and a record counts as current, only if the code that made
it is the code that would make it again. Each kind of artefact names the sources it depends on and an explicit version; the
test suite hashes those sources and fails, naming the kind, when they changed without the
hash below being updated, so whoever changes them decides: a change in behaviour bumps the
version (every cached artefact of that kind is rebuilt), a pure refactor only records the
new hash. Hashes are taken over each module's syntax tree without docstrings, so comments,
docstrings and formatting never count as changes.

A record carries, and is judged by, only the kinds its notebook depends on (NOTEBOOK_KINDS):
changing the pruning code makes 03's records stale, not 01's.
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
    "prune": (*_FINE_TUNE, "core/distillation.py", "techniques/distillation/kd.py", "techniques/selection.py", *_files(
        "techniques/pruning", "base", "config", "fisher", "gradients", "gradual", "magnitude", "masks", "movement",
        "obs", "random_pruning", "schedule", "scope")),
    "distil": (*_FINE_TUNE, "core/distillation.py", *_files("techniques/distillation", "students", "kd")),
    # everything else a record's numbers depend on
    "evaluate": _files("core", "evaluation", "data", "alignment", "batching"),
    "heads": (*_files("techniques/heads", "anatomy", "masks", "pruner", "strategy"), "techniques/selection.py"),
    "quantize": _files("techniques/quantization", "calibration", "pipeline", "ptq", "qat"),
    "runtime": _files("runtime", "export", "bench", "timing", "deepsparse_env", "deepsparse_worker", "side_env"),
    "drivers": _files("study", "common", "speed"),  # shared by every driver
    "baseline-driver": _files("study", "baseline"),
    "heads-driver": _files("study", "heads"),
    "prune-driver": _files("study", "pruning", "teacher"),
    "distil-driver": _files("study", "distillation", "teacher"),
    "quantize-driver": _files("study", "quantization"),
    "combined-driver": _files("study", "combined"),
}
# kind: (version, hash of SOURCES[kind] when the version was set or last confirmed)
VERSIONS: dict[str, tuple[int, str]] = {
    "fine-tune": (2, "30fe0fd9aa2617b5"),
    "prune": (4, "b8bd403a2518c3a7"),
    "distil": (1, "c40db9782ae4f21b"),
    "evaluate": (1, "37c06c7629661c46"),
    "heads": (1, "6a6835d008a6faa8"),
    "quantize": (1, "4afa7bc090ea688b"),
    "runtime": (1, "bbd19f559af3750b"),
    "drivers": (1, "7a067cefe07614af"),
    "baseline-driver": (1, "3c917954376c72ee"),
    "heads-driver": (1, "20adb4625385a55c"),
    "prune-driver": (1, "22a60d98ee3034f9"),
    "distil-driver": (1, "8295ce09c8da95fb"),
    "quantize-driver": (1, "13ac53dfba3f69c1"),
    "combined-driver": (1, "4d916ddab56b39e4"),
}
_SHARED = ("fine-tune", "evaluate", "runtime", "drivers")
NOTEBOOK_KINDS: dict[str, tuple[str, ...]] = {
    "01_baselines": (*_SHARED, "baseline-driver"),
    "02_heads": (*_SHARED, "heads", "heads-driver"),
    "03_obs": (*_SHARED, "prune", "distil", "prune-driver"),
    "04_distillation": (*_SHARED, "distil", "distil-driver"),
    "05_quantization": (*_SHARED, "quantize", "quantize-driver"),
    "06_combined": (*_SHARED, "prune", "distil", "quantize", "prune-driver", "distil-driver", "quantize-driver",
                    "combined-driver"),
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


def versions_for(notebook: str) -> dict[str, int]:
    """The versions of the kinds `notebook`'s records depend on (every kind for another notebook):
    what its records carry, and what makes one stale when it changes."""
    kinds = NOTEBOOK_KINDS.get(notebook, tuple(VERSIONS))
    return {kind: VERSIONS[kind][0] for kind in kinds}
