"""The package's layers import downward only (core < runtime < techniques < study < report),
its modules form no import cycle, and every cached artefact's code version is confirmed."""
import ast
import glob
import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest

from mmakit.study import code_version

PACKAGE = Path(__file__).resolve().parents[1] / "mmakit"
LAYERS = ("core", "runtime", "techniques", "study", "report")


def _modules() -> dict[str, Path]:
    out = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        out[".".join(parts[:-1] if parts[-1] == "__init__" else parts)] = path
    return out


def _imports(path: Path) -> set[str]:
    """The mmakit modules `path` imports (package imports count as their modules when named)."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("mmakit"):
            assert node.level == 0, f"{path}: relative import; the layers are checked on absolute ones"
            found |= {f"{node.module}.{a.name}" for a in node.names} | {node.module}
        elif isinstance(node, ast.Import):
            found |= {a.name for a in node.names if a.name.startswith("mmakit")}
    return found & set(_modules())


def _layer(module: str) -> int | None:
    parts = module.split(".")
    return LAYERS.index(parts[1]) if len(parts) > 1 and parts[1] in LAYERS else None


def test_every_module_imports_only_its_own_layer_and_those_below():
    upward = []
    for module, path in _modules().items():
        own = _layer(module)
        if own is None:
            continue  # mmakit/__init__ and __main__ sit above the layers
        upward += [f"{module} -> {target}" for target in _imports(path) if (_layer(target) or 0) > own]
    assert not upward, "imports going up a layer:\n" + "\n".join(sorted(upward))


def test_modules_form_no_import_cycle():
    graph = {m: _imports(p) - {m} for m, p in _modules().items()}
    # a package's __init__ importing its own submodules is not a cycle of code
    graph = {m: {t for t in targets if not t.startswith(m + ".")} for m, targets in graph.items()}
    state: dict[str, int] = {}

    def visit(node: str, trail: list[str]) -> None:
        state[node] = 1
        for nxt in graph.get(node, ()):
            if state.get(nxt) == 1:
                pytest.fail("import cycle: " + " -> ".join([*trail[trail.index(nxt):], nxt]))
            if nxt not in state:
                visit(nxt, [*trail, nxt])
        state[node] = 2

    for module in graph:
        if module not in state:
            visit(module, [module])


@pytest.mark.parametrize("kind", sorted(code_version.SOURCES))
def test_code_version_is_confirmed_for_the_current_sources(kind):
    version, confirmed = code_version.VERSIONS[kind]
    assert code_version.sources_hash(kind) == confirmed, (
        f"the sources of {kind!r} ({', '.join(code_version.SOURCES[kind])}) changed since version {version} was "
        f"confirmed. If the change can alter what they produce, bump the version in "
        f"mmakit/study/code_version.py (cached artefacts are rebuilt, records become stale); either way record the "
        f"new hash {code_version.sources_hash(kind)!r} there."
    )


SAMPLE = '''"""Module doc."""
x = 1  # a comment


def f(a, b=2):
    """Function doc,
    two lines."""

    return f"a {a!r} {f'{x:>{b}}'} b" + 'c'
'''


def test_the_code_hash_ignores_comments_docstrings_and_blank_lines_only():
    tokens = code_version.normalised_tokens
    reworded = SAMPLE.replace("Function doc", "What f does").replace("# a comment", "# another").replace("\n\n\n", "\n\n")
    assert tokens(reworded) == tokens(SAMPLE)
    assert tokens(SAMPLE.replace("b=2", "b=3")) != tokens(SAMPLE)
    assert tokens(SAMPLE.replace("{a!r}", "{a}")) != tokens(SAMPLE)  # inside an f-string
    assert 'STRING f"a {a!r} {f\'{x:>{b}}\'} b"' in tokens(SAMPLE)  # one token, nested f-string and all


def _interpreters() -> list[str]:
    """Python 3.11-3.13 interpreters on this machine (pyenv's or on PATH) that start."""
    found = {shutil.which(f"python3.{m}") for m in (11, 12, 13)}
    found |= set(glob.glob(os.path.expanduser("~/.pyenv/versions/3.1[123].*/bin/python")))
    ok = []
    for path in sorted(p for p in found if p):
        run = subprocess.run([path, "-c", "import sys; print(sys.version_info[:2])"], capture_output=True, text=True)
        if run.returncode == 0:
            ok.append(path)
    return ok


def test_the_code_hash_is_the_same_on_every_supported_python():
    """`ast.dump`'s text changed between 3.11, 3.12 and 3.13; the token hash must not."""
    pythons = _interpreters()
    if len(pythons) < 2:
        pytest.skip("fewer than two of Python 3.11-3.13 on this machine")
    script = ("import json, runpy, sys; m = runpy.run_path(sys.argv[1]); "
              "print(json.dumps({k: m['sources_hash'](k) for k in m['SOURCES']}))")
    hashes = {}
    for path in pythons:
        out = subprocess.run([path, "-c", script, code_version.__file__], capture_output=True, text=True, check=True)
        hashes[path] = json.loads(out.stdout)
    assert len({json.dumps(h, sort_keys=True) for h in hashes.values()}) == 1, hashes
