"""Every numbered notebook executed end to end by papermill on the smoke profile, its result
records read back (the way CI renders them)."""
import pytest

from mmakit.study import runner
from mmakit.study.records import read_records


@pytest.mark.notebook
@pytest.mark.parametrize("name", runner.available())
def test_notebook_runs_on_smoke_profile_and_writes_records(name, work_dirs, tmp_path):
    runner.run_notebooks("smoke", [name], {k: str(v) for k, v in work_dirs.items()}, out_dir=tmp_path)
    assert (tmp_path / f"{name}.smoke.ipynb").exists()
    records = read_records(work_dirs["results_dir"], name)
    if name != "07_report":
        assert records, f"{name} wrote no result record"
    for r in records:
        assert r["profile"] == "smoke" and set(r["f1"]) <= {"en", "es", "nl"}
        assert r["env"]["torch_threads"] == 1
