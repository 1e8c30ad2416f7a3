"""The study's summary, read only from result records: every run's quality and speed side by
side, and the trade-off between zero-shot quality and CPU throughput."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.report import tables

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


def is_dirty(record: dict) -> bool:
    """Whether the run's code had uncommitted changes (older records mark it in the commit name)."""
    env = record.get("env", {})
    return bool(env.get("dirty")) or str(env.get("git_commit") or "").endswith("-dirty")


def headline(records: list[dict]) -> list[dict]:
    """The records a summary shows: one-shot probes and per-seed runs that a seed aggregate
    summarises are left out, as are 01's tagged checks (lr, precision)."""
    aggregated = {run for r in records for run in r.get("aggregate_of", ())}
    return [r for r in records if r["technique"].get("mode") != "one_shot" and r["run"] not in aggregated
            and not (r["notebook"] == "01_baselines" and r.get("params", {}).get("run_tag"))]


def summary(records: list[dict]) -> pd.DataFrame:
    """One row per headline run: test F1 per language, mls, best speedups per runtime, the
    number of seeds behind the numbers, the commit, and whether that tree was dirty."""
    rows = []
    for r in headline(records):
        row = {"notebook": r["notebook"], "run": r["run"], "method": r["technique"].get("method"),
               "seeds": len(r.get("aggregate_of") or [r["run"]])}
        row |= {f"f1_{lang}_test": r["f1"].get(lang, {}).get("test") for lang in ("en", "es", "nl")}
        row["mls_test"] = r["mls"].get("test")
        row |= {f"speedup_{rt}": best_speedup(r, rt) for rt in ("onnxruntime", "deepsparse")}
        row |= {"commit": r.get("env", {}).get("git_commit"), "dirty": is_dirty(r)}
        rows.append(row)
    return pd.DataFrame(rows).set_index(["notebook", "run"]) if rows else pd.DataFrame()


def comparisons(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Each notebook's headline runs beside its paper table, by notebook (seed aggregates with
    their standard deviation where there are several seeds)."""
    out = {}
    for notebook, table in PAPER_TABLE_OF.items():
        ours = [r for r in headline(records) if r["notebook"] == notebook]
        if ours:
            seeded = any(r.get("aggregate_of") for r in ours)
            out[notebook] = tables.seed_table(ours, table) if seeded else tables.side_by_side(ours, table)
    return out


def per_type_frame(records: list[dict], split: str = "test") -> pd.DataFrame:
    """Entity F1 per type (rows: run; columns: language / type) on `split`, from the records."""
    rows = {}
    for r in headline(records):
        cells = {f"{lang} {kind}": f1 for lang, splits in (r.get("per_type") or {}).items()
                 for kind, f1 in splits.get(split, {}).items()}
        if cells:
            rows[f"{r['notebook'][:2]} {r['run']}"] = cells
    return pd.DataFrame.from_dict(rows, orient="index").sort_index(axis=1)


def per_type_heatmap(frame: pd.DataFrame, title: str) -> go.Figure:
    """`per_type_frame` as a heatmap: where each run loses which entity type in which language."""
    fig = px.imshow(frame, text_auto=".2f", zmin=0, zmax=1, color_continuous_scale="Viridis", aspect="auto",
                    title=title, labels={"x": "language / entity type", "y": "run", "color": "F1"})
    return fig.update_layout(height=max(300, 28 * len(frame) + 150))


def tradeoff(frame: pd.DataFrame) -> go.Figure:
    """Zero-shot quality (mls, test) against the best deepsparse speedup, one point per run."""
    data = frame.reset_index().dropna(subset=["mls_test"])
    data = data.assign(speedup=data["speedup_deepsparse"].fillna(data["speedup_onnxruntime"]))
    return px.scatter(
        data.dropna(subset=["speedup"]), x="speedup", y="mls_test", color="notebook", hover_name="run",
        hover_data=["f1_en_test", "f1_es_test", "f1_nl_test"], title="Multilingual score vs CPU speedup",
        labels={"speedup": "best speedup over dense fp32 onnxruntime", "mls_test": "mls (test)"},
    )
