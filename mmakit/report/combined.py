"""Tables and figures of 06_combined, read from result records only: Table 8 (F1 and mls beside
the paper's combined models), Tables 9 and 10 (items/s per runtime and batch, speedup over the
dense fp32 graph in onnxruntime from the same run), and the study's quality/speed frontier over
every notebook's records with the paper's three combined models as reference points."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import tables

PAPER_TABLE = "table8_combined"
PAPER_SPEED = "table10_final_throughput"


def paper_dense_ort() -> float:
    """Items/s of the paper's dense base model in onnxruntime at batch 4 (Table 2): the base of its speedups."""
    return paper.tables()["table2_baseline_throughput"]["base_model"]["onnxruntime"]


def runs(records: list[dict]) -> list[dict]:
    return [r for r in records if r["technique"].get("method") == "combined"]


def label(record: dict) -> str:
    """e.g. `L6 student, OBS 80% 4-block, QAT (every MatMul int8)`."""
    t = record["technique"]
    parts = [f"L{t['student']} student" if t.get("student") else "12 layers"]
    if t.get("sparsity"):
        parts.append(f"OBS {round(100 * t['sparsity'])}%" + (" 4-block" if t.get("group_size") == 4 else ""))
    coverage = "every MatMul int8" if t.get("coverage") != "exclusions" else "float: " + ", ".join(t.get("float_ops", []))
    return ", ".join(parts) + f", QAT ({coverage})"


def table8(records: list[dict]) -> pd.DataFrame:
    """F1 per language and split and mls of every pipeline, then the paper's rows."""
    return tables.side_by_side([r | {"run": label(r)} for r in runs(records)], PAPER_TABLE)


def throughput(records: list[dict]) -> pd.DataFrame:
    """Tables 9 and 10: items/s and speedup over dense fp32 onnxruntime per pipeline, runtime and
    batch (each pipeline timed beside the dense graph in one run), with the best batch per runtime."""
    rows = [{"pipeline": label(r), "runtime": t["runtime"], "batch": t["batch"], "items_per_s": t["items_per_s"],
             "speedup": t.get("speedup")}
            for r in runs(records) for t in r.get("throughput") or [] if t.get("status") == "ok"]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).pivot_table(index=["pipeline", "runtime"], columns="batch",
                                           values=["items_per_s", "speedup"])
    best = frame["items_per_s"].idxmax(axis=1)
    return frame.assign(best_batch=best)


def paper_throughput() -> pd.DataFrame:
    """The paper's Table 10 (items/s per batch; its CPU) with speedups over its dense xlm in onnxruntime."""
    frame = paper.throughput_table(PAPER_SPEED).pivot_table(index=["row", "runtime"], columns="batch",
                                                            values="items_per_s")
    return frame.assign(**{"speedup b4 vs dense ort": frame[4] / paper_dense_ort()})


def speedup_at(record: dict, runtime: str, batch: int = 4) -> float | None:
    """A run's measured speedup over dense fp32 onnxruntime in `runtime` at `batch`."""
    found = [t["speedup"] for t in record.get("throughput") or [] if t.get("runtime") == runtime
             and t.get("batch") == batch and t.get("status") == "ok" and t.get("speedup") is not None]
    return max(found) if found else None


def frontier_frame(records: list[dict], batch: int = 4) -> pd.DataFrame:
    """One point per headline run and runtime: test mls against speedup over dense onnxruntime
    at `batch`, with `frontier` marking the runs no other run beats on both."""
    rows = []
    for r in records:
        mls_test = (r.get("mls") or {}).get("test")
        for runtime in ("onnxruntime", "deepsparse"):
            ratio = speedup_at(r, runtime, batch)
            if mls_test is not None and ratio is not None:
                rows.append({"run": f"{r['notebook'][:2]} {r['run']}", "notebook": r["notebook"], "runtime": runtime,
                             "speedup": ratio, "mls_test": mls_test})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["frontier"] = [not ((frame.speedup >= s) & (frame.mls_test >= m) & ((frame.speedup > s) | (frame.mls_test > m))).any()
                         for s, m in zip(frame.speedup, frame.mls_test)]
    return frame


def paper_points() -> pd.DataFrame:
    """The paper's three combined models: test mls and deepsparse speedup over its dense xlm in onnxruntime (batch 4)."""
    f1 = paper.f1_table(PAPER_TABLE)
    speed = paper.throughput_table(PAPER_SPEED)
    ds = speed[(speed["runtime"] == "deepsparse") & (speed["batch"] == 4)].set_index("row")["items_per_s"]
    return pd.DataFrame([{"run": f"paper {name}", "speedup": ds[name] / paper_dense_ort(), "mls_test": f1.loc[name, "mls_test"]}
                         for name in f1.index if name in ds.index])


def frontier_figure(records: list[dict], batch: int = 4) -> go.Figure:
    """Test mls against speedup over dense fp32 onnxruntime for every run of the study, a marker
    per runtime, the frontier drawn, the paper's combined models as labelled reference points."""
    frame = frontier_frame(records, batch)
    if frame.empty:
        return go.Figure(layout={"title": "no timed runs with test mls yet"})
    fig = px.scatter(frame, x="speedup", y="mls_test", color="notebook", symbol="runtime", hover_name="run",
                     title=f"Zero-shot quality against speed (batch {batch}); mls against the paper's mlbert row",
                     labels={"speedup": "speedup over dense fp32 onnxruntime", "mls_test": "test mls"})
    edge = frame[frame.frontier].sort_values("speedup")
    fig.add_trace(go.Scatter(x=edge.speedup, y=edge.mls_test, mode="lines", name="frontier (ours)",
                             line={"dash": "dot", "color": "grey"}))
    ref = paper_points()
    fig.add_trace(go.Scatter(x=ref.speedup, y=ref.mls_test, mode="markers+text", text=ref.run, name="paper (deepsparse)",
                             textposition="top center", marker={"symbol": "star", "size": 12, "color": "black"}))
    return fig
