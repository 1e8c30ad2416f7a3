"""Run the study's notebooks in order with papermill, one profile, executed copies kept."""
from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path

from .results import REPO

NOTEBOOKS_DIR = REPO / "notebooks"
EXECUTED_DIR = REPO / "outputs" / "notebooks"


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


def run_notebooks(
    profile: str,
    names: Sequence[str] | None = None,
    parameters: dict | None = None,
    out_dir: str | Path | None = None,
) -> list[Path]:
    """Execute each notebook with `profile` (and extra parameters); stop at the first failure."""
    import papermill as pm

    out = Path(out_dir or EXECUTED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    todo = select(names)
    for i, name in enumerate(todo, 1):
        target = out / f"{name}.ipynb" if profile == "quick" else out / f"{name}.{Path(profile).stem}.ipynb"
        print(f"[{i}/{len(todo)}] {name} (profile {profile}) -> {target}", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(
                NOTEBOOKS_DIR / f"{name}.ipynb", target, parameters={"profile": profile, **(parameters or {})},
                cwd=str(NOTEBOOKS_DIR), progress_bar=True,
            )
        except pm.PapermillExecutionError as exc:
            raise NotebookFailed(f"{name} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                                 f"executed copy with the traceback: {target}") from exc
        print(f"    done in {time.perf_counter() - start:.0f} s", flush=True)
        written.append(target)
    return written
