"""Run the study's notebooks in order with papermill, one profile, executed copies kept."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from mmakit.study.records import REPO

NOTEBOOKS_DIR = REPO / "notebooks"
EXECUTED_DIR = REPO / "outputs" / "notebooks"
EXPERIMENTS_DIR = REPO / "params" / "experiments"


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it and where its executed copy is."""


def available() -> list[str]:
    """Notebook names (without .ipynb) in study order."""
    return sorted(p.stem for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def select(names: Sequence[str] | None) -> list[str]:
    """The notebooks to run: all, or the ones named (by full name or number prefix like 03)."""
    known = available()
    if not names:
        return known
    chosen = []
    for name in names:
        stem = Path(name).stem
        match = [k for k in known if k == stem or k.split("_")[0] == stem]
        if not match:
            raise ValueError(f"unknown notebook {name!r}; choose from {', '.join(known)}")
        chosen += match
    return chosen


def experiments(name: str) -> dict[str, dict]:
    """The experiment files of a notebook (params/experiments/<notebook>/*.yaml) by stem."""
    import yaml

    return {p.stem: yaml.safe_load(p.read_text()) or {} for p in sorted((EXPERIMENTS_DIR / name).glob("*.yaml"))}


def jobs(names: list[str], grid: bool) -> list[tuple[str, str | None, dict]]:
    """(notebook, experiment name, parameters) to run: one per notebook, or one per experiment file."""
    out: list[tuple[str, str | None, dict]] = []
    for name in names:
        grid_files = experiments(name) if grid else {}
        out += [(name, stem, values) for stem, values in grid_files.items()] or [(name, None, {})]
    return out


def run_notebooks(
    profile: str,
    names: Sequence[str] | None = None,
    parameters: dict | None = None,
    out_dir: str | Path | None = None,
    grid: bool = False,
) -> list[Path]:
    """Execute each notebook with `profile` (and extra parameters); stop at the first failure.

    With `grid`, a notebook that has experiment files runs once per file (its values under
    the extra parameters), e.g. the Table 3 grid of 03_obs.
    """
    import papermill as pm

    out = Path(out_dir or EXECUTED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    todo = jobs(select(names), grid)
    for i, (name, experiment, values) in enumerate(todo, 1):
        suffix = "".join(f".{x}" for x in (experiment, None if profile == "quick" else Path(profile).stem) if x)
        target = out / f"{name}{suffix}.ipynb"
        print(f"[{i}/{len(todo)}] {name} {experiment or ''} (profile {profile}) -> {target}", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                NOTEBOOKS_DIR / f"{name}.ipynb", target, parameters={"profile": profile, **values, **(parameters or {})},
                cwd=str(NOTEBOOKS_DIR), progress_bar=True,
            )
        except pm.PapermillExecutionError as exc:
            raise NotebookFailed(f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                                 f"executed copy with the traceback: {target}") from exc
        print(f"    done in {time.perf_counter() - start:.0f} s", flush=True)
        written.append(target)
    return written
