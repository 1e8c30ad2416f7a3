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
