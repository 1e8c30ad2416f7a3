"""Result records: one JSON file per run, the contract between notebooks and the report.

Every number the report shows is read back from these files, each of which names the
parameters and the environment of the run that produced it.
"""
from __future__ import annotations

import datetime as dt
import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from mmakit.core.paths import REPO, write_json_atomic
from mmakit.study.code_version import versions_for
from mmakit.study.data_setting import data_setting, record_data_setting
from mmakit.study.provenance import run_environment

RESULTS_ENV = "MMAKIT_RESULTS_DIR"
# what a record's `f1` means: conlleval.pl's entity F1 (core.evaluation.score; `f1_strict` beside
# it is strict IOB2); records made before `scorer` existed hold strict IOB2 F1 as `f1`
SCORER = "conlleval"
LEGACY_SCORER = "seqeval-strict-iob2"
REQUIRED = ("notebook", "run", "profile", "model", "technique", "params", "f1", "mls", "env", "started", "seconds")


def results_root(path: str | Path | None = None) -> Path:
    """Where records go: the argument, MMAKIT_RESULTS_DIR, or outputs/results of the repository."""
    return Path(path or os.environ.get(RESULTS_ENV) or REPO / "outputs" / "results")


def now() -> str:
    return dt.datetime.now(dt.timezone.utc).isoformat(timespec="seconds")


def make_record(*, notebook: str, run: str, profile: str, model: str, technique: dict, params: dict,
                f1: dict, mls: dict, started: str, seconds: float, **extra: Any) -> dict:
    """A record with the contract's required fields plus any extra ones (throughput, curve, sizes...),
    the scorer its F1 comes from and the run's data setting (data_setting.data_setting)."""
    record = {
        "notebook": notebook, "run": run, "profile": profile, "model": model, "technique": technique,
        "params": params, "data_setting": data_setting(notebook, params), "scorer": SCORER,
        "f1": f1, "mls": mls, "throughput": [], "curve": [], "sizes": {},
        "env": run_environment(), "code_versions": versions_for(notebook), "started": started, "seconds": round(seconds, 2),
    }
    if profile == "smoke":
        record["note"] = "smoke profile: a tiny random model on a few hundred sentences; the numbers mean nothing"
    return record | extra


def aggregate(records: list[dict], run: str, wanted: list[str]) -> dict:
    """One record summarising runs that differ only in their seed: F1 (headline and strict),
    per-type F1, ill-formed chunk counts and mls are the means, `f1_std`/`mls_std` the sample
    standard deviations (None below two seeds), `per_seed` each run's values and predictions
    file (the aggregate has none of its own); speed, sizes and environment are those of the
    first run in `wanted` order (the baseline seed's)."""
    records = sorted(records, key=lambda r: wanted.index(r["run"]) if r["run"] in wanted else len(wanted))
    first = {k: v for k, v in records[0].items() if k != "predictions"}
    return first | {
        "run": run, "technique": first["technique"] | {"seed": None},
        "f1": _combine([r["f1"] for r in records], _mean), "f1_std": _combine([r["f1"] for r in records], _std),
        "mls": _combine([r["mls"] for r in records], _mean), "mls_std": _combine([r["mls"] for r in records], _std),
        **{k: _combine([r.get(k, {}) for r in records], _mean) for k in ("f1_strict", "per_type", "ill_formed")},
        "aggregate_of": [r["run"] for r in records], "missing": [w for w in wanted if w not in {r["run"] for r in records}],
        "per_seed": {r["run"]: {"seed": r["technique"].get("seed"), "f1": r["f1"], "mls": r["mls"],
                                "predictions": r.get("predictions")} for r in records},
        "seconds": round(sum(r["seconds"] for r in records), 2), "speed_from": first["run"],
    }


def _mean(values: list[float]) -> float:
    return float(np.mean(values))


def _std(values: list[float]) -> float | None:
    return float(np.std(values, ddof=1)) if len(values) > 1 else None


def _combine(trees: list[Any], fn: Any) -> Any:
    """`fn` applied leaf-wise across nested dicts of numbers shaped like the first one."""
    if not isinstance(trees[0], dict):
        return fn(trees)
    return {k: _combine([t[k] for t in trees if k in t], fn) for k in trees[0]}


def write_record(record: dict, root: str | Path | None = None) -> Path:
    """Store `record` under <root>/<notebook>/<run>.json after checking the required fields."""
    missing = [k for k in REQUIRED if k not in record]
    if missing:
        raise ValueError(f"result record lacks {', '.join(missing)}")
    return write_json_atomic(record, results_root(root) / record["notebook"] / f"{record['run']}.json")


def record_scorer(record: dict) -> str:
    """The scorer of a record's `f1`: its `scorer` field, else (made before the field) strict IOB2."""
    return record.get("scorer") or LEGACY_SCORER


def read_records(root: str | Path | None = None, notebook: str | None = None) -> list[dict]:
    """All records under `root` (optionally one notebook's), sorted by notebook and run: the
    folders of the numbered notebooks only (`bench/` holds benchmark outputs, not records)."""
    base = results_root(root)
    pattern = f"{notebook}/*.json" if notebook else "[0-9][0-9]_*/*.json"
    return [json.loads(p.read_text()) for p in sorted(base.glob(pattern))]


def load_records(root: str | Path | None = None, notebook: str | None = None) -> pd.DataFrame:
    """Records as a DataFrame: one row per run, F1 flattened to columns like `f1_es_dev`."""
    rows = []
    for r in read_records(root, notebook):
        row = {k: r[k] for k in ("notebook", "run", "profile", "model", "started", "seconds")}
        row["method"] = r["technique"].get("method")
        row["data_setting"] = record_data_setting(r)
        row |= {f"f1_{lang}_{split}": v for lang, splits in r["f1"].items() for split, v in splits.items()}
        row |= {f"mls_{split}": v for split, v in r["mls"].items()}
        rows.append(row)
    return pd.DataFrame(rows)
