"""The study's summary, read only from result records: every run's quality and speed side by
side, and the frontier between zero-shot quality and CPU throughput over every notebook's runs
with the paper's combined models as reference points."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import tables

COMBINED_TABLE, COMBINED_SPEED = "table8_combined", "table10_final_throughput"  # the paper's points on the frontier
PAPER_TABLE_OF = {
    "01_baselines": "table1_baselines",
    "03_obs": "table3_unstructured_pruning",
    "04_distillation": "table4_distillation",
    "05_quantization": "table6_quantization",
    "06_combined": "table8_combined",
}


def own_timings(record: dict) -> list[dict]:
    """The run's timings of its own model: without the dense reference timed beside it (03 and 04
    time both in one run), unless the dense model is all the run has."""
    timed = [t for t in record.get("throughput") or [] if t.get("status") == "ok" and t.get("speedup") is not None]
    own = [t for t in timed if t.get("model") != "dense"]
    return own or timed


def best_speedup(record: dict, runtime: str) -> float | None:
    """The largest measured speedup of a run's model in `runtime` over its dense fp32 onnxruntime reference."""
    ratios = [t["speedup"] for t in own_timings(record) if t.get("runtime") == runtime]
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


def speedup_at(record: dict, runtime: str, batch: int = 4) -> float | None:
    """A run's measured speedup over dense fp32 onnxruntime in `runtime` at `batch`."""
    found = [t["speedup"] for t in own_timings(record) if t.get("runtime") == runtime and t.get("batch") == batch]
    return max(found) if found else None


def frontier_frame(records: list[dict], batch: int = 4) -> pd.DataFrame:
    """One point per headline run (seed aggregates in place of their seeds) and runtime: test mls
    against speedup over dense onnxruntime at `batch`, with `frontier` marking the runs no
    other run beats on both."""
    rows = []
    for r in headline(records):
        mls_test = (r.get("mls") or {}).get("test")
        for runtime in ("onnxruntime", "deepsparse"):
            ratio = speedup_at(r, runtime, batch)
            if mls_test is not None and ratio is not None:
                rows.append({"run": f"{r['notebook'][:2]} {r['run']}", "notebook": r["notebook"], "runtime": runtime,
                             "speedup": ratio, "mls_test": mls_test, "zero_shot": is_zero_shot(r)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    beaten = [((frame.speedup >= s) & (frame.mls_test >= m) & ((frame.speedup > s) | (frame.mls_test > m))).any()
              for s, m in zip(frame.speedup, frame.mls_test)]
    frame["frontier"] = [not b for b in beaten]
    return frame


def is_zero_shot(record: dict) -> bool:
    """Whether the run saw no Spanish or Dutch text at all (a student taught on unlabelled es/nl
    sentences goes beyond the paper's zero-shot setting)."""
    return not record["technique"].get("unlabelled_langs")


def quality_line() -> float:
    """The paper's bar for a fast model: the test mls of its `xlm 90 q` (Table 8)."""
    return float(paper.f1_table(COMBINED_TABLE).loc["xlm 90 q", "mls_test"])


def fastest_meeting(records: list[dict], line: float | None = None, batches: tuple[int, ...] = (1, 4, 8)) -> pd.DataFrame:
    """Per batch, runtime and setting (zero-shot, or beyond the paper), the fastest run whose
    test mls is `line` or better (default the paper's `xlm 90 q`), with its speedup and mls."""
    line = quality_line() if line is None else line
    rows = []
    for batch in batches:
        frame = frontier_frame(records, batch)
        if frame.empty:
            continue
        meeting = frame[frame.mls_test >= line]
        for (runtime, zero_shot), group in meeting.groupby(["runtime", "zero_shot"]):
            best = group.loc[group.speedup.idxmax()]
            rows.append({"batch": batch, "runtime": runtime, "setting": "zero-shot" if zero_shot else "beyond the paper",
                         "run": best.run, "speedup": best.speedup, "mls_test": best.mls_test})
    columns = ["batch", "runtime", "setting", "run", "speedup", "mls_test"]
    return pd.DataFrame(rows, columns=columns).set_index(["batch", "runtime", "setting"])


def paper_points() -> pd.DataFrame:
    """The paper's three combined models: test mls and deepsparse speedup over its dense xlm in onnxruntime (batch 4)."""
    f1 = paper.f1_table(COMBINED_TABLE)
    speed = paper.throughput_table(COMBINED_SPEED)
    ds = speed[(speed["runtime"] == "deepsparse") & (speed["batch"] == 4)].set_index("row")["items_per_s"]
    return pd.DataFrame([{"run": f"paper {name}", "speedup": ds[name] / paper.dense_throughput(), "mls_test": f1.loc[name, "mls_test"]}
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
    fig.add_hline(y=quality_line(), line={"dash": "dash", "color": "grey"},
                  annotation_text="the quality line: the paper's xlm 90 q mls", annotation_position="bottom left")
    ref = paper_points()
    fig.add_trace(go.Scatter(x=ref.speedup, y=ref.mls_test, mode="markers+text", text=ref.run, name="paper (deepsparse)",
                             textposition="top center", marker={"symbol": "star", "size": 12, "color": "black"}))
    return fig
