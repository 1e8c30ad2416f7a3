"""The paper's Figures 1/2 (F1 per language vs fraction of heads removed) and 6-9 (throughput
vs heads removed, one line per batch size, one figure per runtime) drawn from a 02_heads
record, with the paper's observation marked as a note, never as data."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import plots
from mmakit.runtime import bench

# Where the paper (mlbert) saw F1 start to fall, as its figure descriptions state it.
PAPER_FALL = {"importance": ("fig1", 0.5), "uniform": ("fig2", 0.3)}
THROUGHPUT_FIGURE = {("importance", "onnxruntime"): "fig6", ("importance", "deepsparse"): "fig7",
                     ("uniform", "onnxruntime"): "fig8", ("uniform", "deepsparse"): "fig9"}
STRATEGY_LABEL = {"importance": "importance-based (Michel et al.)", "uniform": "uniform per layer (TextPruner style)"}


def _strategy(record: dict) -> str:
    return record["technique"]["strategy"]


def curve_frame(record: dict) -> pd.DataFrame:
    """The record's curve in long form: iteration, heads_removed, fraction_removed, lang, f1, drop."""
    rows = [
        {"iteration": p["iteration"], "heads_removed": p["heads_removed"], "fraction_removed": p["fraction_removed"],
         "lang": lang, "f1": f1}
        for p in record["curve"] for lang, f1 in p["f1"].items()
    ]
    frame = pd.DataFrame(rows)
    start = frame[frame.iteration == 0].set_index("lang")["f1"]
    return frame.assign(drop=frame["lang"].map(start) - frame["f1"])


def f1_curve(record: dict) -> go.Figure:
    """Figure 1 (importance) or 2 (uniform): dev F1 per language against the fraction of heads removed."""
    strategy = _strategy(record)
    fig_id, fall = PAPER_FALL[strategy]
    fig = px.line(
        curve_frame(record), x="fraction_removed", y="f1", color="lang", markers=True, range_y=[0, 1],
        hover_data=["iteration", "heads_removed"],
        title=f"{fig_id}: {STRATEGY_LABEL[strategy]} · {record['run']} ({record['profile']} profile, dev subset)",
        labels={"fraction_removed": "fraction of attention heads removed", "f1": "entity F1 (dev)", "lang": "language"},
    )
    fig.add_vline(x=fall, line_dash="dot", line_color="grey",
                  annotation_text=f"paper ({fig_id}, mlbert): F1 starts falling near {fall:.0%}",
                  annotation_position="top right")
    return fig


def strategies_curve(records: list[dict]) -> go.Figure | None:
    """Figures 1 and 2 overlaid: dev F1 against the fraction of heads removed, one panel per
    language, one line per 02_heads run (None when there is none)."""
    runs = [r for r in records if r["notebook"] == "02_heads"]
    if not runs:
        return None
    frame = pd.concat([curve_frame(r).assign(run=f"{r['run']} ({_strategy(r)})") for r in runs])
    fig = px.line(
        frame, x="fraction_removed", y="f1", color="run", facet_col="lang", markers=True, range_y=[0, 1],
        hover_data=["iteration", "heads_removed"], title="Head pruning strategies: dev F1 per language",
        labels={"fraction_removed": "fraction of heads removed", "f1": "entity F1 (dev)"},
    )
    return plots.value_facet_titles(fig)


def throughput_frame(record: dict, runtime: str) -> pd.DataFrame:
    """Measured throughput rows of one runtime (failed or skipped measurements left out)."""
    rows = pd.DataFrame(record["throughput"])
    if rows.empty:
        return rows
    return rows[(rows.runtime == runtime) & (rows.status == "ok")].sort_values(["batch", "heads_removed"])


def throughput_curve(record: dict, runtime: str) -> go.Figure:
    """Figures 6-9: items/s against heads removed in one runtime, a line per batch size."""
    strategy = _strategy(record)
    fig_id = THROUGHPUT_FIGURE[(strategy, runtime)]
    frame = throughput_frame(record, runtime)
    title = f"{fig_id}: {runtime}, {STRATEGY_LABEL[strategy]} · {record['run']} ({record['profile']} profile)"
    if frame.empty:
        return go.Figure(layout={"title": f"{title}: no measurement (runtime unavailable)"})
    # the unpruned graph is timed in every benchmark run: plot the mean of its runs
    mean = frame.groupby(["batch", "iteration", "heads_removed", "fraction_removed"], as_index=False).items_per_s.mean()
    fig = px.line(
        mean.assign(batch=mean.batch.astype(str)), x="heads_removed", y="items_per_s", color="batch", markers=True,
        hover_data=["iteration", "fraction_removed"], title=title,
        labels={"heads_removed": "attention heads removed", "items_per_s": "items/s (seq 128)", "batch": "batch"},
    )
    fig.add_annotation(text=f"paper {fig_id}: {paper.tables()['figures'][fig_id]}", xref="paper", yref="paper",
                       x=0, y=-0.22, showarrow=False, align="left", font={"size": 10})
    fig.update_layout(margin={"b": 110})
    return fig


def breaking_points(record: dict, points: float = 0.05) -> dict[str, float | None]:
    """Per language, the first fraction of heads removed at which dev F1 is more than `points`
    below the unpruned model's (None if it never is)."""
    frame = curve_frame(record)
    out: dict[str, float | None] = {}
    for lang, rows in frame.groupby("lang"):
        broken = rows[rows["drop"] > points].sort_values("fraction_removed")
        out[str(lang)] = float(broken.fraction_removed.iloc[0]) if len(broken) else None
    return out


def drops(record: dict) -> pd.DataFrame:
    """Dev F1 lost since the unpruned model, one row per iteration, one column per language."""
    return curve_frame(record).pivot(index="fraction_removed", columns="lang", values="drop")


def speedups(record: dict, fraction: float = 0.5) -> pd.DataFrame:
    """Per runtime and batch, the benchmarked graph nearest `fraction` of heads removed against
    the unpruned graph of the same benchmark run: `gain` over the unpruned graph in the same
    runtime, `speedup` over the unpruned graph in onnxruntime (the paper's convention)."""
    columns = ["runtime", "batch", "fraction_removed", "items_per_s", "dense_items_per_s", "gain", "speedup"]
    frame = pd.DataFrame(record["throughput"])
    if frame.empty or not (frame.status == "ok").any():
        return pd.DataFrame(columns=columns)
    rows = pd.concat([pd.DataFrame(bench.speedups(group.to_dict("records"), group[group.iteration == 0].model.iloc[0]))
                      for _, group in frame.groupby("bench_run")])
    ok = rows[rows.status == "ok"]
    nearest = ok.fraction_removed.iloc[(ok.fraction_removed - fraction).abs().argsort().iloc[0]]
    keys = ["bench_run", "runtime", "batch"]
    dense = ok[ok.iteration == 0][keys + ["items_per_s"]].rename(columns={"items_per_s": "dense_items_per_s"})
    out = ok[ok.fraction_removed == nearest].merge(dense, on=keys)
    out = out.assign(gain=out.items_per_s / out.dense_items_per_s)[columns]
    return out.sort_values(["runtime", "batch"], ignore_index=True)
