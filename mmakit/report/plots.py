"""Plotly figures of the study and saving them as HTML (always) and PNG (when kaleido can
find a Chrome to render with)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go
import plotly.io as pio

from mmakit.study.records import results_root

# Figures shown in a notebook carry plotly's mimetype only (JupyterLab draws it; executed
# notebooks stay small); report.html turns them into HTML with plotly.js inline once per page.
NOTEBOOK_RENDERER = "plotly_mimetype"
pio.renderers.default = NOTEBOOK_RENDERER


def save_figure(fig: go.Figure, name: str, folder: str | Path | None = None) -> list[Path]:
    """Write `name`.html and, if a renderer is available, `name`.png; return what was written.

    The default folder is `figures/` beside the results folder (outputs/figures).
    """
    out = Path(folder or results_root().parent / "figures")
    out.mkdir(parents=True, exist_ok=True)
    html = out / f"{name}.html"
    fig.write_html(html, include_plotlyjs="cdn")
    written = [html]
    try:
        fig.write_image(out / f"{name}.png", width=900, height=fig.layout.height or 500)
        written.append(out / f"{name}.png")
    except Exception:  # kaleido or Chrome missing: HTML is enough
        pass
    return written


def value_facet_titles(fig: go.Figure) -> go.Figure:
    """Facet panels titled by their value alone ("es", not "lang=es")."""
    return fig.for_each_annotation(lambda a: a.update(text=a.text.split("=", 1)[-1]))


def f1_bars(table: pd.DataFrame, title: str) -> go.Figure:
    """Grouped bars of F1 per language, one group per row label; `table` has columns
    label, lang, split, f1 (and optionally source)."""
    return px.bar(
        table, x="lang", y="f1", color="label", barmode="group", facet_col="split",
        pattern_shape="source" if "source" in table else None, title=title, range_y=[0, 1],
        labels={"lang": "language", "f1": "entity F1"},
    )


def throughput_bars(rows: list[dict], title: str) -> go.Figure:
    """Grouped bars of items/s per batch size, one colour per runtime and a panel per model,
    error bars half the interquartile range; `rows` are mmakit.bench rows (failed or
    unavailable ones left out)."""
    frame = pd.DataFrame([r for r in rows if r["status"] == "ok"])
    if frame.empty:
        return go.Figure(layout={"title": f"{title}: no measurement"})
    return px.bar(
        frame.assign(batch=frame.batch.astype(str)), x="batch", y="items_per_s", color="runtime", barmode="group",
        facet_col="model", error_y=frame.items_per_s * frame.spread / 2, title=title,
        labels={"batch": "batch size", "items_per_s": f"items/s (seq {frame.seq_len.iloc[0]})"},
        hover_data=["threads", "spread", "calls"],
    )


def seed_dots(per_seed: pd.DataFrame, means: pd.DataFrame, title: str) -> go.Figure:
    """Each seed's F1 as a dot per language (a panel per split), the mean over seeds as a bar
    behind them, so the spread that any comparison must beat is visible. `per_seed` comes from
    tables.per_seed_f1, `means` from tables.long_f1 of the aggregates."""
    fig = px.bar(means, x="lang", y="f1", color="label", barmode="group", facet_col="split", opacity=0.35,
                 title=title, range_y=[0, 1], labels={"lang": "language", "f1": "entity F1"})
    dots = px.strip(per_seed, x="lang", y="f1", color="seed", facet_col="split", hover_data=["label"])
    for trace in dots.data:
        trace.update(marker={"size": 9, "line": {"width": 1, "color": "black"}}, legendgroup="seed",
                     name=f"seed {trace.name}")
        fig.add_trace(trace, row=1, col=int(trace.xaxis[1:] or 1))
    return value_facet_titles(fig)
