import json

import pytest

from mmakit.study import records

FIELDS = dict(notebook="01_baselines", run="r1", profile="smoke", model="tiny", technique={"method": "fine-tune"},
              params={"lr": 0.1}, f1={"en": {"dev": 0.5}, "es": {"dev": 0.4}, "nl": {"dev": 0.3}},
              mls={"dev": -0.1}, started="2026-01-01T00:00:00+00:00", seconds=1.0)


def test_record_names_its_environment_and_smoke_warning():
    r = records.make_record(**FIELDS)
    assert {"torch", "onnxruntime", "cpu", "git_commit", "torch_threads"} <= set(r["env"])
    assert "mean nothing" in r["note"]


def test_write_is_atomic_and_readable_as_frame(tmp_path):
    path = records.write_record(records.make_record(**FIELDS), tmp_path)
    assert path == tmp_path / "01_baselines" / "r1.json"
    assert [p.name for p in path.parent.iterdir()] == ["r1.json"]  # no temp file left behind
    frame = records.load_records(tmp_path)
    assert frame.loc[0, "f1_es_dev"] == 0.4 and frame.loc[0, "mls_dev"] == -0.1


def test_failed_write_keeps_the_previous_file(tmp_path):
    path = records.write_record(records.make_record(**FIELDS), tmp_path)

    class Boom:
        def __str__(self):
            raise TypeError("cannot serialise")

    with pytest.raises(TypeError):
        records.write_json_atomic({"x": Boom()}, path)
    assert json.loads(path.read_text())["run"] == "r1"
    assert [p.name for p in path.parent.iterdir()] == ["r1.json"]


def test_missing_fields_are_refused(tmp_path):
    with pytest.raises(ValueError, match="lacks mls"):
        records.write_record({k: v for k, v in records.make_record(**FIELDS).items() if k != "mls"}, tmp_path)


def test_seed_aggregate_takes_only_runs_of_the_same_protocol():
    from mmakit.study.common import same_protocol

    base = {"lr": 1e-4, "epochs": 3, "seed": 42, "experiment": "me5-small-s42", "results_dir": "/a"}
    assert same_protocol(base, base | {"seed": 43, "experiment": "me5-small-s43", "results_dir": "/b"})
    assert not same_protocol(base, base | {"seed": 43, "lr": 5e-5})


def test_a_parameter_added_later_with_an_empty_default_keeps_runs_in_one_protocol():
    from mmakit.study.common import same_protocol

    old = {"lr": 1e-4, "seed": 42}
    new = {"lr": 1e-4, "seed": 43, "unlabelled_langs": [], "student_model": None}
    assert same_protocol(old, new)
    assert not same_protocol(new, new | {"seed": 44, "unlabelled_langs": ["es"]})
    assert not same_protocol(old, new | {"lr": 5e-5})
    assert same_protocol(old, new | {"student_size": 6})  # a parameter of a notebook added since


def test_parameters_of_other_notebooks_do_not_split_a_protocol():
    from mmakit.study.common import same_protocol

    a = {"lr": 1e-4, "seed": 42, "kd": False, "student_size": 6}
    b = {"lr": 1e-4, "seed": 43, "kd": True, "student_size": 6}  # kd is 03's, not 04's
    assert same_protocol(a, b, "04_distillation") and not same_protocol(a, b)
    assert not same_protocol(a, b | {"student_size": 3}, "04_distillation")
    assert not same_protocol(a | {"warmup_ratio": 0.0}, b | {"warmup_ratio": 0.1}, "04_distillation")  # shared


def test_benchmark_outputs_are_not_records(tmp_path):
    from mmakit.core.paths import write_json_atomic
    from mmakit.study.records import read_records

    write_json_atomic({"benchmark": "fisher_build", "profile": "quick"}, tmp_path / "bench" / "fisher_build.json")
    write_json_atomic({"notebook": "03_obs", "run": "x"}, tmp_path / "03_obs" / "x.json")
    assert [r["run"] for r in read_records(tmp_path)] == ["x"]


def _write_seed_run(root, seed: int, **fields) -> None:
    """A 03 run `x-s<seed>` of one protocol (lr 1.0), with `fields` (code versions, env) set."""
    from mmakit.study.records import write_record

    write_record({"notebook": "03_obs", "run": f"x-s{seed}", "profile": "quick", "model": "m", "technique": {"seed": seed},
                  "params": {"lr": 1.0, "seed": seed}, "f1": {"en": {"test": 0.9}}, "mls": {"test": -0.1},
                  "env": {}, "started": "t", "seconds": 1.0} | fields, root)


def test_a_seed_made_by_older_code_is_left_out_of_the_aggregate(tmp_path):
    from mmakit.study import common
    from mmakit.study.code_version import versions_for
    from mmakit.study.params import Params

    now = versions_for("03_obs")
    for seed, versions in ((42, now), (43, now | {"prune": now["prune"] - 1})):
        _write_seed_run(tmp_path, seed, code_versions=versions)
    P = Params({"notebook": "03_obs", "lr": 1.0, "seed": 42, "seeds": [42, 43], "results_dir": str(tmp_path)})
    assert common.write_seed_aggregate(P, "x")["aggregate_of"] == ["x-s42"]


def test_a_seed_made_on_another_cpu_model_is_left_out_of_the_aggregate(tmp_path):
    from mmakit.study import common
    from mmakit.study.code_version import versions_for
    from mmakit.study.params import Params

    for seed, cpu in ((44, "AMD EPYC"), (43, "Intel(R) Xeon(R) Processor"), (42, "AMD EPYC")):
        _write_seed_run(tmp_path, seed, code_versions=versions_for("03_obs"), env={"cpu": cpu, "cpu_flags": ["avx512_bf16"]})
    P = Params({"notebook": "03_obs", "lr": 1.0, "seed": 42, "seeds": [42, 43, 44], "results_dir": str(tmp_path)})
    assert common.write_seed_aggregate(P, "x")["aggregate_of"] == ["x-s42", "x-s44"]


def test_record_names_its_scorer_and_data_setting():
    r = records.make_record(**FIELDS)
    assert r["scorer"] == records.SCORER == "conlleval" and r["data_setting"] == "english-only"
    assert records.record_scorer({k: v for k, v in r.items() if k != "scorer"}) == records.LEGACY_SCORER


@pytest.mark.parametrize("notebook, params, setting", [
    ("01_baselines", {"unlabelled_langs": ["es"]}, "english-only"),  # 04's parameter, not 01's
    ("04_distillation", {"unlabelled_langs": []}, "english-only"),
    ("04_distillation", {"unlabelled_langs": ["es", "nl"]}, "target-unlabelled"),
    ("06_combined", {"combine_unlabelled_langs": ["nl"], "combine_student": None}, "english-only"),  # no student to teach
    ("06_combined", {"combine_unlabelled_langs": ["nl"], "combine_student": 6}, "target-unlabelled"),
])
def test_data_setting_follows_from_the_parameters(notebook, params, setting):
    from mmakit.study.data_setting import DATA_SETTINGS, data_setting, record_data_setting

    assert data_setting(notebook, params) == setting and setting in DATA_SETTINGS
    record = records.make_record(**FIELDS | {"notebook": notebook, "params": params})
    assert record["data_setting"] == setting
    assert record_data_setting({"notebook": notebook, "params": params}) == setting  # older records: derived


def test_seed_aggregate_averages_strict_f1_and_points_to_each_seeds_predictions():
    runs = [records.make_record(**FIELDS | {"run": f"r-s{seed}", "technique": {"seed": seed}},
                                f1_strict={"es": {"dev": v}}, ill_formed={"es": {"dev": n}},
                                predictions={"path": f"predictions/01_baselines/r-s{seed}.jsonl.gz"})
            for seed, v, n in ((42, 0.2, 3), (43, 0.4, 5))]
    agg = records.aggregate(runs, "r", ["r-s42", "r-s43"])
    assert agg["f1_strict"] == {"es": {"dev": pytest.approx(0.3)}} and agg["ill_formed"] == {"es": {"dev": 4.0}}
    assert "predictions" not in agg and agg["per_seed"]["r-s43"]["predictions"]["path"].endswith("r-s43.jsonl.gz")
