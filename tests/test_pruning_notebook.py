"""03_obs executed by papermill on the smoke profile, in both modes, its records read back."""
from pathlib import Path

import pytest

from mmakit.study import runner
from mmakit.study.records import read_records


@pytest.mark.notebook
def test_03_obs_gradual_and_one_shot_records(work_dirs, tmp_path):
    dirs = {k: str(v) for k, v in work_dirs.items()}
    runner.run_notebooks("smoke", ["03_obs"], dirs | {"method": "obs", "sparsity": 0.8, "run_name": "nb-obs-80"},
                         out_dir=tmp_path)
    runner.run_notebooks("smoke", ["03_obs"], dirs | {"prune_mode": "one_shot", "run_name": "nb"}, out_dir=tmp_path)
    records = {r["run"]: r for r in read_records(work_dirs["results_dir"], "03_obs")}

    r = records["nb-obs-80"]
    assert r["technique"] | {"method": "obs", "sparsity": 0.8, "mode": "gradual"} == r["technique"]
    assert r["sparsity"]["pruned"] == round(0.8 * r["sparsity"]["total"])
    assert r["onnx_zeros"]["pruned"] >= r["sparsity"]["pruned"]  # the zeros survive export
    assert len(r["curve"]) == 2 * r["params"]["pruning_steps"] + 1
    assert {p["phase"] for p in r["curve"]} == {"before", "after", "end"}
    assert set(r["f1"]) == {"en", "es", "nl"} and set(r["f1"]["es"]) == {"dev", "test"}
    assert all(s["seconds"] >= 0 and s["peak_rss_mb"] > 0 and 0 < s["degeneracy"] <= 1 for s in r["pruning_steps"])
    assert r["technique"]["kd"] and Path(r["teacher_logits"]["path"]).exists()  # KD from the dense baseline by default
    rows = {(t["model"], t["runtime"], t["batch"]) for t in r["throughput"]}
    assert {("dense", "onnxruntime", 1), ("pruned", "onnxruntime", 1)} <= rows

    names = [f"nb-oneshot-obs-{s}-damp{d}-s42" for d in ("1e-07", "1e-05") for s in (50, 70)]
    shots = [records[n] for n in names + [f"nb-oneshot-{m}-{s}-s42" for m in ("magnitude", "random") for s in (50, 70)]]
    assert all(s["technique"]["mode"] == "one_shot" and s["loss"] > 0 for s in shots)
    assert [round(s["sparsity"]["global"], 3) for s in shots] == [0.5, 0.7] * 4
    assert [s["technique"]["damp"] for s in shots[:4]] == [1e-7, 1e-7, 1e-5, 1e-5]
    steps = [s["pruning_steps"][0] for s in shots[:2]]
    assert steps[0]["fisher_seconds"] == steps[1]["fisher_seconds"]  # one Fisher serves every sparsity
