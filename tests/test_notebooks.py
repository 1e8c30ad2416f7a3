"""Every numbered notebook executed end to end by papermill on the smoke profile, its result
records read back, and the report rendered to HTML with its tables filled (as CI renders it)."""
import re

import nbformat
import pytest

from mmakit.report import html
from mmakit.study import runner
from mmakit.study.data_setting import DATA_SETTINGS
from mmakit.study.predictions import rescore
from mmakit.study.records import SCORER, read_records

NUMBER = re.compile(r"\d\.\d{3}")  # tables are shown rounded to 3 decimals


def check_smoke_records(records: list[dict], name: str) -> None:
    """What every record of a smoke-profile notebook run must hold."""
    assert records, f"{name} wrote no result record"
    assert any(r.get("predictions") for r in records), f"{name} kept no predictions"
    for r in records:
        assert r["profile"] == "smoke" and set(r["f1"]) <= {"en", "es", "nl"}
        assert r["env"]["torch_threads"] == 1 and r["env"]["git_commit"] and "cpu_flags" in r["env"]
        assert r["code_versions"] and r["env"]["dirty"] in (True, False)
        assert r["scorer"] == SCORER and r["data_setting"] in DATA_SETTINGS
        if r.get("predictions"):  # every scored model's tags are kept and give its F1 again
            assert {lang: {s: v["f1"] for s, v in splits.items()} for lang, splits in rescore(r).items()} == r["f1"]


# each notebook runs once in the suite: 04 in tests/test_distillation.py (with and without a teacher), 07 below
@pytest.mark.notebook
@pytest.mark.parametrize("name", [n for n in runner.available() if n not in ("04_distillation", "07_report")])
def test_notebook_runs_on_smoke_profile_and_writes_records(name, work_dirs, tmp_path):
    runner.run_notebooks("smoke", [name], {k: str(v) for k, v in work_dirs.items()}, out_dir=tmp_path)
    assert (tmp_path / f"{name}.smoke.ipynb").exists()
    check_smoke_records(read_records(work_dirs["results_dir"], name), name)


def _tagged_text(notebook: nbformat.NotebookNode, tag: str) -> str:
    """Every output of the cell tagged `tag` as text: streams, plain text, Markdown and figures' JSON."""
    cell = next(c for c in notebook.cells if tag in c.metadata.get("tags", []))
    return "\n".join(str(o.get("text", "")) + "".join(str(v) for v in o.get("data", {}).values()) for o in cell.outputs)


@pytest.mark.notebook
def test_report_shows_every_notebook_in_filled_tables_and_renders_to_html(work_dirs, tmp_path):
    """Runs after the other notebooks (same session results): 07 must show each of them."""
    written = {r["notebook"] for r in read_records(work_dirs["results_dir"])}
    if not {"01_baselines", "05_quantization"} <= written:
        for name in ("01_baselines", "05_quantization"):
            runner.run_notebooks("smoke", [name], {k: str(v) for k, v in work_dirs.items()}, out_dir=tmp_path)
        written = {r["notebook"] for r in read_records(work_dirs["results_dir"])}
    runner.run_notebooks("smoke", ["07_report"], {k: str(v) for k, v in work_dirs.items()}, out_dir=tmp_path)
    executed = nbformat.read(tmp_path / "07_report.smoke.ipynb", as_version=4)
    overview = _tagged_text(executed, "overview")
    for name in written:
        assert name in overview, f"{name} missing from the overview"
    assert len(NUMBER.findall(overview)) >= 3 * len(written)
    comparisons = _tagged_text(executed, "comparisons")
    assert "01_baselines vs paper table1_baselines" in comparisons and "paper (table1_baselines)" in comparisons
    assert "05_quantization vs paper table6_quantization" in comparisons
    per_type = _tagged_text(executed, "per_type")
    assert all(f"{lang} PER" in per_type for lang in ("en", "es", "nl"))

    assert "What we found" in _tagged_text(executed, "what_we_found")
    page = html.render(tmp_path / "07_report.smoke.ipynb", tmp_path / "html").read_text()
    assert 0 <= page.find("What we found") < page.find("<table"), "07 must open with what was found"
    assert "Traceback" not in page and "Warning" not in page, "a warning or traceback reached the report"
    assert page.count("<table") >= 1 + len([n for n in written if n in ("01_baselines", "03_obs", "05_quantization")])
    assert "01_baselines vs paper" in page and NUMBER.search(page)
    assert "plotly" in page.lower()  # figures travel with the page
