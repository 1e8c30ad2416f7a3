"""The HTML report: plotly.js written once beside the pages, code left out, an index, and
notebooks that papermill is still writing skipped."""
import json

import nbformat
import plotly.graph_objects as go

from mmakit.report import html

PLOTLY_MIME = "application/vnd.plotly.v1+json"


def _executed(path, finished: bool, heading: str) -> None:
    nb = nbformat.v4.new_notebook()
    figure = json.loads(go.Figure(go.Scatter(x=[1, 2], y=[3, 4])).to_json())
    code = nbformat.v4.new_code_cell("secret_code_line = 1")
    code.outputs = [nbformat.v4.new_output("display_data", data={PLOTLY_MIME: figure, "text/plain": "fig"})]
    nb.cells = [nbformat.v4.new_markdown_cell(f"# {heading}"), code]
    nb.metadata["papermill"] = {"start_time": "2026-01-01T00:00:00", "end_time": "2026-01-01T00:01:00" if finished else None}
    nbformat.write(nb, path)


def test_pages_share_one_plotly_js_and_leave_code_out(tmp_path):
    _executed(tmp_path / "01_a.ipynb", True, "01 · First")
    _executed(tmp_path / "02_b.ipynb", True, "02 · Second")
    _executed(tmp_path / "03_c.ipynb", False, "03 · Still running")
    pages, skipped = html.render_all(sorted(tmp_path.glob("*.ipynb")), tmp_path / "html")
    assert [p.name for p in pages] == ["01_a.html", "02_b.html"] and [p.name for p in skipped] == ["03_c.ipynb"]
    js = (tmp_path / "html" / html.PLOTLY_JS).stat().st_size
    for page in pages:
        text = page.read_text()
        assert 'src="plotly.min.js"' in text and "secret_code_line" not in text
        assert page.stat().st_size < js / 2  # the bundle is not inlined
    index = (tmp_path / "html" / "index.html").read_text()
    assert "01 · First" in index and "02_b.html" in index and "03_c" not in index
