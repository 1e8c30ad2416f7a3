"""Executed notebooks as self-contained HTML pages: what a reader opens without Jupyter.

Executed notebooks keep plotly figures as JSON (`plots.NOTEBOOK_RENDERER`); the page draws
them with plotly.js inlined once, so it opens offline. Tables are the notebooks' own HTML.
"""
from __future__ import annotations

import json
from pathlib import Path

import nbformat
import plotly.io as pio
from nbconvert import HTMLExporter

from mmakit.core.paths import REPO, atomic_path

HTML_DIR = REPO / "outputs" / "html"
PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _figures_as_html(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give every plotly output an HTML version; the first one carries plotly.js."""
    first = True
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = pio.to_html(pio.from_json(json.dumps(data[PLOTLY_MIME])),
                                                include_plotlyjs=first, full_html=False)
                first = False
    return notebook


def render(notebook: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `notebook` (an executed .ipynb) as <out_dir>/<name>.html, inputs included."""
    notebook = Path(notebook)
    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(
        _figures_as_html(nbformat.read(notebook, as_version=4)))
    target = Path(out_dir or HTML_DIR) / f"{notebook.stem}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return target


def render_all(folder: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Render every executed notebook in `folder`."""
    return [render(p, out_dir) for p in sorted(Path(folder).glob("*.ipynb"))]
