"""06_combined on the smoke profile: a distilled student, 4-block OBS with KD, QAT with the masks
kept, two int8 graphs (float exclusions, every MatMul int8) scored and timed beside the dense graph."""
import pytest

from mmakit.report import combined as combined_report
from mmakit.report import summary
from mmakit.study import runner
from mmakit.study.records import read_records


@pytest.mark.notebook
def test_a_student_pruned_in_4_blocks_then_qat_gives_two_int8_records(work_dirs, tmp_path):
    dirs = {k: str(v) for k, v in work_dirs.items()}
    pipeline = {"combine_student": 1, "combine_sparsity": 0.8, "combine_group_size": 4, "combine_initial_sparsity": 0.3}
    runner.run_notebooks("smoke", ["06_combined"], dirs | pipeline, out_dir=tmp_path)
    records = {r["run"]: r for r in read_records(work_dirs["results_dir"], "06_combined")}
    assert set(records) == {"tiny-L1-kd-obs80-4block-q", "tiny-L1-kd-obs80-4block-q-int8all"}
    q, full = records["tiny-L1-kd-obs80-4block-q"], records["tiny-L1-kd-obs80-4block-q-int8all"]
    assert q["technique"]["made"]["start"]["kind"] == "student" and q["technique"]["made"]["start"]["layers"] == [1]
    assert q["technique"]["made"]["pruning"]["sparsity"] == pytest.approx(0.8, abs=0.01)
    assert "attention_scores" in q["technique"]["float_ops"] and full["technique"]["float_ops"] == []
    assert q["quantization"]["qat"] and full["quantization"]["method"] == "static"
    for r in (q, full):
        assert set(r["f1"]) == {"en", "es", "nl"} and r["mls"]["test"] is not None
        assert {(t["runtime"], t["batch"]) for t in r["throughput"]} >= {("onnxruntime", 1)}
        assert all(t["model"] != "dense" for t in r["throughput"]) and r["dense_throughput"]
    assert not combined_report.table8(list(records.values())).empty
    frame = summary.frontier_frame(list(records.values()))
    assert frame["frontier"].any()


def test_a_student_taught_on_unlabelled_languages_names_and_labels_its_pipeline(smoke):
    from mmakit.study import combined
    from mmakit.study.params import Params

    P = Params(dict(smoke) | {"combine_student": 6, "combine_unlabelled_langs": ["es", "nl"], "combine_sparsity": 0.8,
                              "combine_group_size": 4})
    assert combined.pipeline_name(P) == "tiny-L6-kd-unlab_es_nl-obs80-4block-q"
    assert combined.student_params(P)["unlabelled_langs"] == ["es", "nl"]  # 04's cached student of that name
    info = {"settings": {"exclude": ["attention_scores"]}}
    record = {"technique": combined.technique(P, "exclusions", {}, info)}
    assert combined_report.label(record).startswith("L6 student + unlabelled es,nl (beyond the paper), OBS 80% 4-block")
    plain = Params(P | {"combine_unlabelled_langs": []})
    assert combined.pipeline_name(plain) == "tiny-L6-kd-obs80-4block-q"
    assert combined.student_params(plain)["unlabelled_langs"] == []


def _timed(run: str, mls: float, speedups: dict[int, float], unlabelled: list[str] | None = None) -> dict:
    return {"notebook": "06_combined", "run": run, "technique": {"method": "combined", "unlabelled_langs": unlabelled},
            "mls": {"test": mls}, "throughput": [{"runtime": "deepsparse", "batch": b, "status": "ok", "speedup": s}
                                                   for b, s in speedups.items()]}


def test_the_fastest_run_over_the_quality_line_is_found_per_batch_and_setting():
    records = [_timed("slow-good", -0.20, {1: 2.0, 4: 2.5}), _timed("fast-bad", -0.60, {1: 9.0, 4: 9.0}),
               _timed("mid", -0.30, {1: 3.0, 4: 2.0}), _timed("unlab", -0.25, {1: 5.0, 4: 5.5}, ["es", "nl"])]
    assert summary.quality_line() == pytest.approx(-0.37)
    table = summary.fastest_meeting(records)
    assert table.loc[(1, "deepsparse", "zero-shot"), "run"] == "06 mid"
    assert table.loc[(4, "deepsparse", "zero-shot"), "run"] == "06 slow-good"
    assert table.loc[(4, "deepsparse", "beyond the paper"), "speedup"] == pytest.approx(5.5)
    assert "06 fast-bad" not in set(table.run) and 8 not in table.index.get_level_values("batch")
    assert summary.fastest_meeting(records, line=-0.1).empty


def test_a_runs_speedup_is_its_own_models_not_the_dense_reference_timed_beside_it():
    record = _timed("student", -0.5, {4: 1.1})
    record["throughput"] = [t | {"model": "student"} for t in record["throughput"]] + \
        [{"runtime": "deepsparse", "batch": 4, "status": "ok", "speedup": 1.2, "model": "dense"}]
    assert summary.speedup_at(record, "deepsparse") == pytest.approx(1.1)
    assert summary.best_speedup(record, "deepsparse") == pytest.approx(1.1)
    dense_only = {"throughput": [{"runtime": "deepsparse", "batch": 4, "status": "ok", "speedup": 1.2, "model": "dense"}]}
    assert summary.speedup_at(dense_only, "deepsparse") == pytest.approx(1.2)
