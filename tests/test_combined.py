"""06_combined on the smoke profile: a distilled student, 4-block OBS with KD, QAT with the masks
kept, two int8 graphs (float exclusions, every MatMul int8) scored and timed beside the dense graph."""
import pandas as pd
import pytest

from mmakit.core import paper
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
    from mmakit.study.data_setting import data_setting
    from mmakit.study.params import Params

    P = Params(dict(smoke) | {"combine_student": 6, "combine_unlabelled_langs": ["es", "nl"], "combine_sparsity": 0.8,
                              "combine_group_size": 4})
    assert combined.pipeline_name(P) == "tiny-L6-kd-unlab_es_nl-obs80-4block-q"
    assert combined.student_params(P)["unlabelled_langs"] == ["es", "nl"]  # 04's cached student of that name
    assert data_setting(combined.NOTEBOOK, P) == "target-unlabelled"
    info = {"settings": {"exclude": ["attention_scores"]}}
    record = {"technique": combined.technique(P, "exclusions", {}, info)}
    assert combined_report.label(record).startswith("L6 student + unlabelled es,nl (beyond the paper), OBS 80% 4-block")
    plain = Params(P | {"combine_unlabelled_langs": []})
    assert combined.pipeline_name(plain) == "tiny-L6-kd-obs80-4block-q"
    assert combined.student_params(plain)["unlabelled_langs"] == []
    assert data_setting(combined.NOTEBOOK, plain) == "english-only"


def test_a_staged_student_with_its_seed_and_qat_distillation_names_its_pipeline(smoke):
    from mmakit.study import combined
    from mmakit.study.data_setting import data_setting
    from mmakit.study.params import Params

    P = Params(dict(smoke) | {"combine_student": 6, "combine_generic_langs": ["en", "es", "nl", "de", "fr"],
                              "combine_sparsity": 0.8, "combine_group_size": 4, "qat_distill": True,
                              "combine_seed": 43})
    assert combined.pipeline_name(P) == "tiny-L6-generic_en_es_nl_de_fr-kd-obs80-4block-qkd"
    assert combined.record_names(P, "exclusions") == ("tiny-L6-generic_en_es_nl_de_fr-kd-obs80-4block-qkd-s43",
                                                      "tiny-L6-generic_en_es_nl_de_fr-kd-obs80-4block-qkd")
    assert combined.record_names(P, combined.ALL_INT8)[0].endswith(f"-qkd-{combined.ALL_INT8}-s43")
    student, pruning = combined.student_params(P), combined.pruning_params(P)
    assert student["generic_langs"] == ["en", "es", "nl", "de", "fr"] and student["seed"] == pruning["seed"] == 43
    assert data_setting(combined.NOTEBOOK, P) == "generic-multilingual"
    english = Params(P | {"combine_generic_langs": ["en"], "combine_seed": None, "qat_distill": False})
    assert combined.pipeline_name(english) == "tiny-L6-generic_en-kd-obs80-4block-q"
    assert combined.record_names(english, "exclusions") == ("tiny-L6-generic_en-kd-obs80-4block-q", None)
    seeds = combined.student_params(english)["seed"], combined.pruning_params(english)["seed"]
    assert seeds == (smoke["baseline_seed"],) * 2
    assert data_setting(combined.NOTEBOOK, english) == "english-only"


def test_a_student_fine_tuned_with_the_hidden_state_loss_is_04s_kd_hid_student(smoke):
    from mmakit.study import combined, distillation
    from mmakit.study.params import Params

    P = Params(dict(smoke) | {"combine_student": 6, "combine_generic_langs": ["en", "es", "nl", "de", "fr"],
                              "combine_intermediate": True, "combine_sparsity": 0.8, "combine_group_size": 4,
                              "qat_distill": True, "combine_seed": 42})
    assert combined.pipeline_name(P) == "tiny-L6-generic_en_es_nl_de_fr-kd-hid-obs80-4block-qkd"
    student = combined.student_params(P)
    assert distillation.run_name(student, [1, 3, 5, 7, 9, 11]) == "tiny-L6-generic_en_es_nl_de_fr-kd-hid-s42"
    record = {"technique": combined.technique(P, "exclusions", {}, {"settings": {"exclude": []}})}
    assert combined_report.label(record).startswith("L6 student after generic en,es,nl,de,fr text (hidden MSE), OBS 80%")
    plain = Params(P | {"combine_intermediate": False})
    assert combined.pipeline_name(plain) == "tiny-L6-generic_en_es_nl_de_fr-kd-obs80-4block-qkd"
    assert not combined.student_params(plain)["intermediate"]


@pytest.fixture(scope="module")
def qkd_pipeline(smoke):
    """(parameters, {run: record}) of a smoke pipeline: a staged 1-layer student of seed 43, QAT
    distilling from the dense baseline."""
    from mmakit.study import combined, common, params

    given = {"profile": "smoke", "cache_dir": smoke["cache_dir"], "results_dir": smoke["results_dir"],
             "combine_student": 1, "combine_generic_langs": "en,es", "qat_distill": True, "combine_seed": 43, "seeds": "42,43",
             "runtimes": "onnxruntime", "batches": "1", "bench_seconds": 0.1, "bench_rounds": 1}
    P = params.resolve(given, "06_combined")
    common.setup(P)
    return P, {r["run"]: r for r in combined.run(P)}


def test_qat_distils_from_the_dense_baseline_into_a_staged_student_of_its_seed(smoke, qkd_pipeline):
    from mmakit.study import common
    from mmakit.study.records import read_records

    P, records = qkd_pipeline
    assert set(records) == {"tiny-L1-generic_en_es-kd-qkd-s43", "tiny-L1-generic_en_es-kd-qkd-int8all-s43"}
    q = records["tiny-L1-generic_en_es-kd-qkd-s43"]
    made = q["technique"]["made"]
    assert q["data_setting"] == "generic-multilingual" and q["params"]["seed"] == 43 and q["technique"]["qat_distill"]
    assert made["start"]["generic_langs"] == ["en", "es"] and made["start"]["task_agnostic"]
    assert made["qat_teacher"]["teacher"] == common.fine_tuned(P)[2]["key"] and made["qat_teacher"]["kd"]["hardness"] == 1.0
    assert q["quantization"]["qat"]["steps"] > 0
    aggregate = {r["run"]: r for r in read_records(smoke["results_dir"], "06_combined")}["tiny-L1-generic_en_es-kd-qkd"]
    assert aggregate["aggregate_of"] == ["tiny-L1-generic_en_es-kd-qkd-s43"]  # the seeds present so far


def test_export_rebuilds_the_pipeline_its_record_timed_with_qat_distillation(smoke, qkd_pipeline, monkeypatch):
    from mmakit.study import combined, common, rebuild

    _, records = qkd_pipeline
    record = records["tiny-L1-generic_en_es-kd-qkd-s43"]
    P = rebuild.run_params(record)
    common.setup(P)
    seen = []
    build = combined.quantized

    def quantized(P, model, tokenizer, folder, hooks=None):
        seen.append((int(P.seed), [type(h).__name__ for h in hooks or ()]))
        return build(P, model, tokenizer, folder, hooks)

    monkeypatch.setattr(combined, "quantized", quantized)
    folder = rebuild.graph_folder(record, P)
    assert seen == [(43, ["WordKDHook"])]  # QAT distils and trains with the pipeline's seed, as the run did
    check = rebuild.verify(record, P, folder, smoke["results_dir"])
    assert check["matches"] and check["max_abs_diff"] == 0.0
    assert check["tags"]["sentences"] > 0 and check["tags"]["differing"] == 0


def _timed(run: str, mls: float, speedups: dict[int, float], unlabelled: list[str] | None = None,
           cpu_flags: tuple[str, ...] = ("avx2", "avx512f", "avx512_bf16")) -> dict:
    return {"notebook": "06_combined", "run": run, "profile": "quick", "f1": {},
            "technique": {"method": "combined", "unlabelled_langs": unlabelled},
            "params": {"combine_student": 6, "combine_unlabelled_langs": unlabelled}, "mls": {"test": mls},
            "env": {"cpu_flags": list(cpu_flags)},
            "throughput": [{"runtime": "deepsparse", "batch": b, "status": "ok", "speedup": s} for b, s in speedups.items()]}


def test_the_fastest_run_over_the_quality_line_is_found_per_batch_and_setting():
    records = [_timed("slow-good", -0.20, {1: 2.0, 4: 2.5}), _timed("fast-bad", -0.60, {1: 9.0, 4: 9.0}),
               _timed("mid", -0.30, {1: 3.0, 4: 2.0}), _timed("unlab", -0.25, {1: 5.0, 4: 5.5}, ["es", "nl"])]
    assert paper.quality_line() == pytest.approx(-0.37)
    table = summary.fastest_meeting(records).loc["avx512-bf16"]
    assert table.loc[("english-only", 1, "deepsparse"), "run"] == "06 mid"
    assert table.loc[("english-only", 4, "deepsparse"), "run"] == "06 slow-good"
    assert table.loc[("target-unlabelled", 4, "deepsparse"), "speedup"] == pytest.approx(5.5)
    assert "06 fast-bad" not in set(table.run) and 8 not in table.index.get_level_values("batch")
    assert summary.fastest_meeting(records, line=-0.1).empty


def test_target_unlabelled_runs_never_join_the_zero_shot_series():
    records = [_timed("zero-shot", -0.30, {4: 2.0}), _timed("unlab", -0.10, {4: 5.0}, ["es", "nl"])]
    frame = summary.frontier_frame(records)
    assert frame.set_index("run")["setting"].to_dict() == {"06 zero-shot": "english-only", "06 unlab": "target-unlabelled"}
    assert frame.frontier.all()  # the unlabelled run beats it on both, but in its own series
    fig = summary.frontier_figure(records)
    panels = {trace.xaxis for trace in fig.data if trace.name == "paper (deepsparse, english-only)"}
    zero_shot = {trace.xaxis for trace in fig.data if trace.hovertext is not None and "06 zero-shot" in trace.hovertext}
    assert len(panels) == 1 and panels == zero_shot and "unlab" not in summary.comparisons(records).get(
        "06_combined vs paper table8_combined on avx512-bf16", pd.DataFrame()).to_string()


def test_two_cpu_classes_are_separate_frontiers_and_rows():
    records = [_timed("fast-cpu", -0.30, {4: 3.0}), _timed("slow-cpu", -0.20, {4: 2.0}, cpu_flags=("avx2",))]
    frame = summary.frontier_frame(records)
    assert set(frame.cpu) == {"avx512-bf16", "avx2"} and frame.frontier.all()
    assert set(summary.fastest_meeting(records).index.get_level_values("cpu")) == {"avx512-bf16", "avx2"}


def test_a_runs_speedup_is_its_own_models_not_the_dense_reference_timed_beside_it():
    record = _timed("student", -0.5, {4: 1.1})
    record["throughput"] = [t | {"model": "student"} for t in record["throughput"]] + \
        [{"runtime": "deepsparse", "batch": 4, "status": "ok", "speedup": 1.2, "model": "dense"}]
    assert summary.speedup_at(record, "deepsparse") == pytest.approx(1.1)
    assert summary.best_speedup(record, "deepsparse") == pytest.approx(1.1)
    dense_only = {"throughput": [{"runtime": "deepsparse", "batch": 4, "status": "ok", "speedup": 1.2, "model": "dense"}]}
    assert summary.speedup_at(dense_only, "deepsparse") == pytest.approx(1.2)
