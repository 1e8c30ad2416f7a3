"""Executed notebooks as HTML pages: what a reader opens without Jupyter.

Executed notebooks keep plotly figures as JSON (`plots.NOTEBOOK_RENDERER`); each page draws
them with one plotly.js file written once beside the pages, so the pages open offline and the
whole report stays small. Tables are the notebooks' own HTML; code cells are left out (the
notebooks hold them). `index.html` lists every page.
"""
from __future__ import annotations

import html as html_text
import json
from pathlib import Path

import nbformat
import plotly.io as pio
import plotly.offline
from nbconvert import HTMLExporter

from mmakit.core.paths import REPO, atomic_path

HTML_DIR = REPO / "outputs" / "html"
PLOTLY_MIME = "application/vnd.plotly.v1+json"
PLOTLY_JS = "plotly.min.js"


def _figures_as_html(notebook: nbformat.NotebookNode) -> nbformat.NotebookNode:
    """Give every plotly output an HTML version; the first one loads plotly.js from beside the page."""
    first = True
    for cell in notebook.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIME in data:
                data["text/html"] = pio.to_html(pio.from_json(json.dumps(data[PLOTLY_MIME])),
                                                include_plotlyjs="directory" if first else False, full_html=False)
                first = False
    return notebook


def is_finished(notebook: nbformat.NotebookNode) -> bool:
    """False while papermill is still writing the notebook (its run has no end time yet)."""
    run = notebook.metadata.get("papermill")
    return run is None or run.get("end_time") is not None


def title(notebook: nbformat.NotebookNode, fallback: str) -> str:
    """The notebook's first Markdown heading, else `fallback`."""
    for cell in notebook.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def _write(target: Path, text: str) -> None:
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(text, encoding="utf-8")


def render(notebook: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `notebook` (an executed .ipynb) as <out_dir>/<name>.html, code cells left out, and
    plotly.js beside it when it is not there yet."""
    notebook = Path(notebook)
    out = Path(out_dir or HTML_DIR)
    exporter = HTMLExporter(template_name="lab", embed_images=True, exclude_input=True, exclude_input_prompt=True,
                            exclude_output_prompt=True)
    body, _ = exporter.from_notebook_node(_figures_as_html(nbformat.read(notebook, as_version=4)))
    if not (out / PLOTLY_JS).exists():
        _write(out / PLOTLY_JS, plotly.offline.get_plotlyjs())
    _write(out / f"{notebook.stem}.html", body)
    return out / f"{notebook.stem}.html"


def render_all(paths: list[Path], out_dir: str | Path | None = None) -> tuple[list[Path], list[Path]]:
    """Render the finished notebooks of `paths` and write index.html listing them; returns
    (pages written, notebooks skipped because papermill is still writing them)."""
    out = Path(out_dir or HTML_DIR)
    pages, skipped, rows = [], [], []
    for path in sorted(paths):
        notebook = nbformat.read(path, as_version=4)
        if not is_finished(notebook):
            skipped.append(path)
            continue
        pages.append(render(path, out))
        rows.append(f'<li><a href="{path.stem}.html">{html_text.escape(path.stem)}</a>: '
                    f"{html_text.escape(title(notebook, path.stem))}</li>")
    _write(out / "index.html", "<!doctype html><meta charset='utf-8'><title>mmakit report</title>"
           "<h1>mmakit: executed notebooks</h1><ul>\n" + "\n".join(rows) + "\n</ul>\n")
    return pages, skipped
