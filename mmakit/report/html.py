"""Executed notebooks as self-contained HTML pages: what a reader opens without Jupyter.

Figures render offline because executed notebooks carry plotly.js inline (see
`plots.NOTEBOOK_RENDERER`); tables are the notebooks' own HTML outputs.
"""
from __future__ import annotations

from pathlib import Path

import nbformat
from nbconvert import HTMLExporter

from mmakit.core.paths import REPO, atomic_path

HTML_DIR = REPO / "outputs" / "html"


def render(notebook: str | Path, out_dir: str | Path | None = None) -> Path:
    """Write `notebook` (an executed .ipynb) as <out_dir>/<name>.html, inputs included."""
    notebook = Path(notebook)
    body, _ = HTMLExporter(template_name="lab", embed_images=True).from_notebook_node(
        nbformat.read(notebook, as_version=4))
    target = Path(out_dir or HTML_DIR) / f"{notebook.stem}.html"
    target.parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(target) as tmp:
        tmp.write_text(body, encoding="utf-8")
    return target


def render_all(folder: str | Path, out_dir: str | Path | None = None) -> list[Path]:
    """Render every executed notebook in `folder`."""
    return [render(p, out_dir) for p in sorted(Path(folder).glob("*.ipynb"))]
