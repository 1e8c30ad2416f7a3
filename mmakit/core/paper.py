"""The MMA paper's reported numbers (Sukhanovskii & Ryndin, 2024), as data, for labelled
reference columns beside our own results. Never used to produce or tune a result."""
from __future__ import annotations

from functools import lru_cache
from pathlib import Path

import pandas as pd
import yaml

TABLES = Path(__file__).with_name("paper_tables.yaml")
CITATION = "MMA paper (Sukhanovskii & Ryndin, 2024)"


@lru_cache(maxsize=1)
def tables() -> dict:
    """All tables of the paper as parsed YAML."""
    return yaml.safe_load(TABLES.read_text())


def f1_table(name: str) -> pd.DataFrame:
    """A paper F1 table as a DataFrame indexed by row name, columns like `es_dev`."""
    t = tables()[name]
    return pd.DataFrame.from_dict(t["rows"], orient="index", columns=t["columns"])


def f1_nested(table: str, row: str) -> dict[str, dict[str, float]]:
    """One row of a paper F1 table as {lang: {split: f1}}."""
    values = f1_table(table).loc[row]
    out: dict[str, dict[str, float]] = {}
    for column, value in values.items():
        lang, split = column.split("_")
        if lang != "mls":
            out.setdefault(lang, {})[split] = float(value)
    return out


def mlbert_reference() -> dict[str, dict[str, float]]:
    """The paper's mlbert baseline (table 1): the default reference of mls."""
    return f1_nested("table1_baselines", "mlbert")


def throughput_table(name: str) -> pd.DataFrame:
    """A paper throughput table (items/s) in long form: row, runtime, batch, items_per_s."""
    t = tables()[name]
    rows = []
    for row, runtimes in t["rows"].items():
        for runtime, values in runtimes.items():
            rows += [{"row": row, "runtime": runtime, "batch": b, "items_per_s": v} for b, v in zip(t["batch"], values)]
    return pd.DataFrame(rows)


def dense_throughput(runtime: str = "onnxruntime") -> float:
    """Items/s of the paper's dense base model at batch 4 in `runtime` (its Table 2): the base of
    the speedups it quotes, e.g. 11.7x for xlm 90 q in deepsparse over onnxruntime's 18.7."""
    return float(tables()["table2_baseline_throughput"]["base_model"][runtime])


QUALITY_ROW = ("table8_combined", "xlm 90 q")


def quality_line() -> float:
    """The paper's bar for a fast model: the test mls of its `xlm 90 q` (Table 8)."""
    table, row = QUALITY_ROW
    return float(f1_table(table).loc[row, "mls_test"])
