"""Plotly figures of the study and saving them as HTML (always) and PNG (when kaleido can
find a Chrome to render with)."""
from __future__ import annotations

from pathlib import Path

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from .results import results_root


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
        fig.write_image(out / f"{name}.png", width=900, height=500)
        written.append(out / f"{name}.png")
    except Exception:  # kaleido or Chrome missing: HTML is enough
        pass
    return written


def f1_bars(table: pd.DataFrame, title: str) -> go.Figure:
    """Grouped bars of F1 per language, one group per row label; `table` has columns
    label, lang, split, f1 (and optionally source)."""
    return px.bar(
        table, x="lang", y="f1", color="label", barmode="group", facet_col="split",
        pattern_shape="source" if "source" in table else None, title=title, range_y=[0, 1],
        labels={"lang": "language", "f1": "entity F1"},
    )
