"""Versions of the code that produces cached artefacts and records, part of every cache key
and of every record.

A cached checkpoint is reused, and a record counts as current, only if the code that made
it is the code that would make it again. Each kind of artefact names the sources it depends on and an explicit version; the
test suite hashes those sources and fails, naming the kind, when they changed without the
hash below being updated, so whoever changes them decides: a change in behaviour bumps the
version (every cached artefact of that kind is rebuilt), a pure refactor only records the
new hash. Hashes are taken over each module's tokens without comments and docstrings, so
comments, docstrings and blank lines never count as changes, and the hash is the same on every
Python version the project supports.

A record carries, and is judged by, only the kinds its notebook depends on (NOTEBOOK_KINDS):
changing the pruning code makes 03's records stale, not 01's.
"""
from __future__ import annotations

import ast
import hashlib
import io
import tokenize
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
        "obs", "random_pruning", "schedule", "scope", "straight_through")),
    "distil": (*_FINE_TUNE, "core/distillation.py", *_files("techniques/distillation", "students", "kd", "task_agnostic"),
               "techniques/heads/anatomy.py"),
    # everything else a record's numbers depend on
    "evaluate": _files("core", "evaluation", "data", "alignment", "batching"),
    "heads": (*_files("techniques/heads", "anatomy", "masks", "pruner", "strategy"), "techniques/selection.py"),
    "quantize": _files("techniques/quantization", "calibration", "pipeline", "ptq", "qat"),
    "runtime": _files("runtime", "export", "bench", "timing", "deepsparse_env", "deepsparse_worker", "side_env"),
    "drivers": _files("study", "common", "speed", "records", "predictions", "data_setting"),  # shared by every driver
    "baseline-driver": _files("study", "baseline"),
    "heads-driver": _files("study", "heads"),
    "prune-driver": _files("study", "pruning", "teacher"),
    "distil-driver": _files("study", "distillation", "teacher"),
    "quantize-driver": _files("study", "quantization"),
    "combined-driver": _files("study", "combined"),
    # export's rebuild of a record's graph: part of the graph cache's key only, no record depends on it
    "rebuild": _files("study", "rebuild"),
}
# kind: (version, hash of SOURCES[kind] when the version was set or last confirmed)
VERSIONS: dict[str, tuple[int, str]] = {
    "fine-tune": (2, "b18c922ab9696004"),
    "prune": (5, "48419f21f2c0640e"),
    "distil": (2, "f2eb6b57950443ad"),
    "evaluate": (2, "2e8130a47d1019de"),
    "heads": (1, "256fd7848076f5ad"),
    "quantize": (1, "36e69146912dbc55"),
    "runtime": (2, "97f9d68ab5220766"),
    "drivers": (2, "6998c7722dd71c85"),
    "baseline-driver": (1, "49fa6dfa12059405"),
    "heads-driver": (2, "a1c947bb3b632bda"),
    "prune-driver": (2, "679788afebd5f069"),
    "distil-driver": (2, "af0b861bceef3e09"),
    "quantize-driver": (1, "d1b41098a964de5b"),
    "combined-driver": (2, "bca8aca827539cc1"),
    "rebuild": (2, "1d5b38cbab7ded40"),
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


def _docstring_lines(source: str) -> set[int]:
    """The lines of every module, class and function docstring (positions are the same on every
    Python version, unlike `ast.dump`'s text)."""
    lines: set[int] = set()
    for node in ast.walk(ast.parse(source)):
        body = getattr(node, "body", None)
        if isinstance(body, list) and body and isinstance(body[0], ast.Expr) and isinstance(
                getattr(body[0], "value", None), ast.Constant) and isinstance(body[0].value.value, str):
            lines |= set(range(body[0].lineno, body[0].end_lineno + 1))
    return lines


def normalised_tokens(source: str) -> list[str]:
    """The code's tokens without comments, docstrings, blank lines or layout inside brackets:
    what a change must touch to count. An f-string is one token whatever the Python version
    (3.12 splits it into parts)."""
    skip = _docstring_lines(source)
    lines = source.splitlines(keepends=True)
    out: list[str] = []
    start, depth = (0, 0), 0  # where the outermost open f-string began, and how many are open
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        name = tokenize.tok_name[tok.type]
        if name == "FSTRING_START":
            start, depth = (tok.start if depth == 0 else start), depth + 1
        elif name == "FSTRING_END":
            depth -= 1
            if depth == 0:
                (r0, c0), (r1, c1) = start, tok.end
                out.append("STRING " + "".join(lines[r0 - 1:r1])[c0:len("".join(lines[r0 - 1:r1 - 1])) + c1])
        if depth or name == "FSTRING_END":
            continue
        if name in ("COMMENT", "NL", "ENDMARKER") or (name == "STRING" and tok.start[0] in skip):
            continue
        out.append(name if name in ("NEWLINE", "INDENT", "DEDENT") else f"{name} {tok.string}")
    return out


def sources_hash(kind: str) -> str:
    """A hash of the normalised tokens (`normalised_tokens`) of the sources `kind` depends on:
    the same on Python 3.11, 3.12 and 3.13."""
    h = hashlib.sha256()
    for rel in SOURCES[kind]:
        h.update(rel.encode())
        h.update("\n".join(normalised_tokens((PACKAGE / rel).read_text())).encode())
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
