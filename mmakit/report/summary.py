"""The study's summary, read only from result records: every run's quality and speed side by
side, and the trade-off between zero-shot quality and CPU throughput."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

PAPER_TABLE_OF = {
    "01_baselines": "table1_baselines",
    "03_obs": "table3_unstructured_pruning",
    "04_distillation": "table4_distillation",
    "05_quantization": "table6_quantization",
    "06_combined": "table8_combined",
}


def best_speedup(record: dict, runtime: str) -> float | None:
    """The largest measured speedup of a run in `runtime` over its dense fp32 onnxruntime reference."""
    ratios = [t["speedup"] for t in record.get("throughput", [])
              if t.get("runtime") == runtime and t.get("status") == "ok" and t.get("speedup") is not None]
    return max(ratios) if ratios else None


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per run: test F1 per language, mls, best speedups per runtime, profile."""
    rows = []
    for r in records:
        row = {"notebook": r["notebook"], "run": r["run"], "profile": r["profile"],
               "method": r["technique"].get("method")}
        row |= {f"f1_{lang}_test": r["f1"].get(lang, {}).get("test") for lang in ("en", "es", "nl")}
        row["mls_test"] = r["mls"].get("test")
        row |= {f"speedup_{rt}": best_speedup(r, rt) for rt in ("onnxruntime", "deepsparse")}
        rows.append(row)
    return pd.DataFrame(rows).set_index(["notebook", "run"]) if rows else pd.DataFrame()


def tradeoff(frame: pd.DataFrame) -> go.Figure:
    """Zero-shot quality (mls, test) against the best deepsparse speedup, one point per run."""
    data = frame.reset_index().dropna(subset=["mls_test"])
    data = data.assign(speedup=data["speedup_deepsparse"].fillna(data["speedup_onnxruntime"]))
    return px.scatter(
        data.dropna(subset=["speedup"]), x="speedup", y="mls_test", color="notebook", hover_name="run",
        hover_data=["f1_en_test", "f1_es_test", "f1_nl_test"], title="Multilingual score vs CPU speedup",
        labels={"speedup": "best speedup over dense fp32 onnxruntime", "mls_test": "mls (test)"},
    )
