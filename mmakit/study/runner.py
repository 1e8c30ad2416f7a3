"""Run the study: every notebook over each of its experiment files, in dependency order,
with papermill, skipping experiments whose records are current, so an interrupted study
resumes where it stopped.

An experiment is `params/experiments/<notebook>/<name>.yaml`: parameter values over the
profile's. A notebook without experiment files runs once with the profile's defaults. The
experiment's name reaches the notebook as the `experiment` parameter and every record
keeps it, which is how the runner knows which records an experiment produced and whether
they are current: same parameters as the experiment resolves to now, same code versions.
"""
from __future__ import annotations

import fnmatch
import os
import shlex
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from mmakit.core.paths import REPO
from mmakit.study.code_version import NOTEBOOK_KINDS, versions_for
from mmakit.study.param_table import BY_NAME
from mmakit.study.params import check_names, coerce, declared, load_profile
from mmakit.study.provenance import library_mismatches
from mmakit.study.records import read_records

NOTEBOOKS_DIR = REPO / "notebooks"
EXECUTED_DIR = REPO / "outputs" / "notebooks"
EXPERIMENTS_DIR = REPO / "params" / "experiments"
# the notebook whose parameters cell sets each technique's settings
KIND_NOTEBOOK = {"baseline-driver": "01_baselines", "heads": "02_heads", "prune": "03_obs", "distil": "04_distillation",
                 "quantize": "05_quantization"}
ALWAYS_RUN = ("07_report",)  # reads every record: cheap, and stale as soon as any record changes
# executed notebooks are records of a run: no progress bars, library chatter or warnings in them
# (tqdm reads TQDM_* when the kernel imports it; interactive JupyterLab keeps its progress bars)
QUIET_KERNEL = {"TQDM_DISABLE": "1", "HF_HUB_DISABLE_PROGRESS_BARS": "1", "HF_DATASETS_DISABLE_PROGRESS_BARS": "1",
                "TRANSFORMERS_VERBOSITY": "error", "TRANSFORMERS_NO_ADVISORY_WARNINGS": "1", "PYTHONWARNINGS": "ignore"}
# parameters that say where things are, not what a run computes
LOCATION_PARAMS = ("results_dir", "cache_dir", "data_dir", "model_dir", "notebook", "fallback_data_dir", "generic_text_dir")


class NotebookFailed(RuntimeError):
    """A notebook raised; the message names it and where its executed copy is."""


@dataclass
class Job:
    """One papermill execution: a notebook with an experiment's values (or the defaults)."""

    notebook: str
    experiment: str | None
    values: dict = field(default_factory=dict)
    current: bool = False

    @property
    def label(self) -> str:
        return f"{self.notebook}/{self.experiment}" if self.experiment else self.notebook

    def output(self, out_dir: Path, profile: str) -> Path:
        suffix = "".join(f".{x}" for x in (self.experiment, None if profile == "quick" else Path(profile).stem) if x)
        return out_dir / f"{self.notebook}{suffix}.ipynb"

    def parameters(self, profile: str, extra: dict | None = None) -> dict:
        named = {"experiment": self.experiment} if self.experiment else {}
        return {"profile": profile, **self.values, **named, **(extra or {})}


def available() -> list[str]:
    """Notebook names (without .ipynb) in study order, which is their dependency order."""
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
    return sorted(set(chosen), key=known.index)


def experiments(name: str) -> dict[str, dict]:
    """The experiment files of a notebook (params/experiments/<notebook>/*.yaml) by stem; a key
    that is no parameter fails, naming the file and the closest parameter."""
    found = {}
    for path in sorted((EXPERIMENTS_DIR / name).glob("*.yaml")):
        values = yaml.safe_load(path.read_text()) or {}
        check_names(values, _from_repo(path))
        found[path.stem] = {k: coerce(k, v) for k, v in values.items()}
    return found


def upstream(notebook: str) -> set[str]:
    """The notebooks whose settings `notebook`'s records depend on: itself, 01 (every run starts
    from its baseline) and those whose techniques it runs; every notebook for one not listed."""
    if notebook not in NOTEBOOK_KINDS:
        return set(available())
    return {notebook, "01_baselines"} | {KIND_NOTEBOOK[k] for k in NOTEBOOK_KINDS[notebook] if k in KIND_NOTEBOOK}


def foreign_params(notebook: str) -> set[str]:
    """Parameters that only notebooks outside `notebook`'s upstream name in their parameters cells
    (e.g. the pruning schedule for 01): a profile change in them leaves its records current.
    A parameter no parameters cell names is never foreign."""
    owners: dict[str, set[str]] = {}
    for other in available():
        for key in declared(other):
            owners.setdefault(key, set()).add(other)
    mine = upstream(notebook)
    return {key for key, names in owners.items() if not names & mine}


def overridden(values: dict) -> set[str]:
    """Parameters whose recorded value follows from another one set in `values` (`Param.overrides`,
    e.g. 06 records `combine_seed` as `seed`): compared through that one, not on their own."""
    return {BY_NAME[k].overrides for k, v in values.items() if v is not None and k in BY_NAME and BY_NAME[k].overrides}


def is_current(record: dict, job: Job, profile: str) -> bool:
    """Whether `record` is what `job` would write now: same parameters where both define them
    (the profile's values overlaid with the experiment's), same code versions for every kind
    the notebook depends on that the record names (a kind added later, e.g. "distil", does not
    make older records stale; nor does a change in a kind the notebook does not use, or in a
    parameter only other notebooks read: `foreign_params`), and the same versions of the
    libraries that move numbers (`library_mismatches`)."""
    versions, current = record.get("code_versions") or {}, versions_for(job.notebook)
    if not versions or any(versions[k] != v for k, v in current.items() if k in versions) or \
            record.get("profile") != load_profile(profile).get("profile") or library_mismatches(record.get("env") or {}):
        return False
    expected = load_profile(profile) | job.values
    ran = record.get("params", {})
    skip = set(LOCATION_PARAMS) | foreign_params(job.notebook) | overridden(expected)
    return all(ran.get(k) == v for k, v in expected.items() if k not in skip and k in ran)


def plan(profile: str, names: Sequence[str] | None = None, use_experiments: bool = True, force: bool = False,
         results_dir: str | Path | None = None, only: Sequence[str] | None = None) -> list[Job]:
    """The jobs of a study run in order, each marked `current` when its records are up to date
    (never with `force`, never for notebooks in ALWAYS_RUN); `only`: experiment names or
    shell patterns (e.g. `obs-80-*`) to keep."""
    jobs = []
    for name in select(names):
        files = experiments(name) if use_experiments else {}
        if only:
            files = {stem: v for stem, v in files.items() if any(fnmatch.fnmatchcase(stem, pattern) for pattern in only)}
            if not files:
                continue
        batch = [Job(name, stem, values) for stem, values in files.items()] or [Job(name, None)]
        records = read_records(results_dir, name)
        for job in batch:
            mine = [r for r in records if r.get("params", {}).get("experiment") == job.experiment]
            job.current = (not force and job.experiment is not None and name not in ALWAYS_RUN
                           and bool(mine) and all(is_current(r, job, profile) for r in mine))
        jobs += batch
    return jobs


def orphans(profile: str, results_dir: str | Path | None = None) -> list[str]:
    """Records of `profile` that no experiment file produces (never silently kept: the study
    reports them so they are regenerated or removed)."""
    out = []
    known_profile = load_profile(profile).get("profile")
    for name in available():
        stems = set(experiments(name))
        for r in read_records(results_dir, name):
            if r.get("profile") == known_profile and r.get("params", {}).get("experiment") not in stems:
                out.append(f"{name}/{r['run']}")
    return out


def _from_repo(path: Path) -> str:
    """`path` relative to the repository when it lies inside it (commands run from its root)."""
    return str(path.relative_to(REPO) if path.is_relative_to(REPO) else path)


def command(job: Job, profile: str, out_dir: Path | None = None) -> str:
    """The papermill command line of a job, to hand to another scheduler or machine."""
    target = job.output(Path(out_dir or EXECUTED_DIR), profile)
    parts = ["papermill", _from_repo(NOTEBOOKS_DIR / f"{job.notebook}.ipynb"), _from_repo(target), "-p", "profile", profile]
    if job.experiment:
        parts += ["-f", _from_repo(EXPERIMENTS_DIR / job.notebook / f"{job.experiment}.yaml"),
                  "-p", "experiment", job.experiment]
    return " ".join(shlex.quote(p) for p in parts) + " --cwd notebooks"


def strip_widget_state(path: Path) -> bool:
    """Drop the saved state of ipywidgets (progress bars a library made, even hidden ones) from an
    executed notebook: hundreds of KB that no reader sees. True if the file changed."""
    import nbformat

    notebook = nbformat.read(path, as_version=4)
    if "widgets" not in notebook.metadata:
        return False
    del notebook.metadata["widgets"]
    nbformat.write(notebook, path)
    return True


def run_notebooks(
    profile: str,
    names: Sequence[str] | None = None,
    parameters: dict | None = None,
    out_dir: str | Path | None = None,
    use_experiments: bool = False,
    force: bool = False,
    only: Sequence[str] | None = None,
    on_done: Callable[[Job, Path], None] | None = None,
) -> list[Path]:
    """Execute the planned jobs with `profile` (plus extra parameters), skipping current ones;
    stop at the first failure. `on_done(job, executed notebook)` is called after each job (e.g.
    to commit its records, so an interrupted study keeps every finished run). Returns the
    executed notebooks written."""
    import papermill as pm

    out = Path(out_dir or EXECUTED_DIR)
    out.mkdir(parents=True, exist_ok=True)
    for key, value in QUIET_KERNEL.items():  # the kernel inherits them; set one beforehand to keep its output
        os.environ.setdefault(key, value)
    results_dir = (parameters or {}).get("results_dir")
    todo = plan(profile, names, use_experiments, force, results_dir, only)
    written, start_all = [], time.perf_counter()
    for i, job in enumerate(todo, 1):
        if job.current:
            print(f"[{i}/{len(todo)}] {job.label}: current, skipped (--force re-runs it)", flush=True)
            continue
        target = job.output(out, profile)
        print(f"[{i}/{len(todo)}] {job.label} (profile {profile}) -> {target}", flush=True)
        start = time.perf_counter()
        try:
            pm.execute_notebook(NOTEBOOKS_DIR / f"{job.notebook}.ipynb", target,
                                parameters=job.parameters(profile, parameters), cwd=str(NOTEBOOKS_DIR),
                                progress_bar=True)
        except pm.PapermillExecutionError as exc:
            raise NotebookFailed(f"{job.label} failed in cell {exc.exec_count}: {exc.ename}: {exc.evalue}\n"
                                 f"executed copy with the traceback: {target}") from exc
        print(f"    done in {time.perf_counter() - start:.0f} s (study so far {time.perf_counter() - start_all:.0f} s)",
              flush=True)
        strip_widget_state(target)
        written.append(target)
        if on_done:
            on_done(job, target)
    return written
