"""The zero-shot targets as a table from the records: each row names the run that decides it,
and a target is met only when that run passes both its quality and its speed bar."""
from mmakit.report import targets
from tests.report_records import run


def timed(speedups: dict[str, float]) -> list[dict]:
    return [{"model": "student", "runtime": runtime, "batch": 4, "speedup": ratio, "status": "ok"}
            for runtime, ratio in speedups.items()]


def test_each_target_is_decided_by_the_run_that_comes_closest():
    student = run("04_distillation", "L6-generic", {"method": "distil", "num_layers": 6}, -0.30,
                  setting="generic-multilingual", throughput=timed({"onnxruntime": 1.9}))
    fast = run("06_combined", "L6-obs80-q", {"method": "combined", "student": 6}, -0.35,
               throughput=timed({"onnxruntime": 2.7, "deepsparse": 5.2}))
    faster_but_poor = run("06_combined", "L6-obs90-q", {"method": "combined", "student": 6}, -0.45,
                          throughput=timed({"deepsparse": 6.1}))
    small = run("06_combined", "L3-obs80-q", {"method": "combined", "student": 3}, -0.69,
                throughput=timed({"deepsparse": 10.0}))
    not_zero_shot = run("06_combined", "L6-unlab-q", {"method": "combined", "student": 6}, -0.30,
                        setting="target-unlabelled", throughput=timed({"deepsparse": 7.0}))
    table = targets.targets([student, fast, faster_but_poor, small, not_zero_shot])
    rows = table.to_dict("index")
    six, fastest, stretch, text = rows.values()
    assert (six["best run"], six["met"]) == ("04 L6-generic", "no")
    assert (fastest["best run"], fastest["speed"], fastest["met"]) == ("06 L6-obs80-q", "5.20x (deepsparse, batch 4)", "yes")
    assert (stretch["best run"], stretch["met"]) == ("none", "no") and "no run reaches mls -0.60" in stretch["speed"]
    assert (text["speed"], text["met"]) == ("no bench-text record", "no")


def test_real_text_speed_counts_zero_shot_models_only():
    rows = [{"model": m, "runtime": "deepsparse", "lang": "all", "batch": 32, "sentences_per_s": v, "words_per_s": 14 * v,
             "speedup": s, "status": "ok"} for m, v, s in (("06_combined/zs", 900.0, 3.9), ("06_combined/unlab", 1200.0, 5.2))]
    models = {"06_combined/zs": {"data_setting": "english-only", "mls": {"test": -0.5}},
              "06_combined/unlab": {"data_setting": "target-unlabelled", "mls": {"test": -0.3}}}
    bench = {"run": "text-1", "text_throughput": rows, "models": models}
    text = targets.targets([], bench).iloc[-1]
    assert (text["best run"], text["met"]) == ("06 zs", "no") and text["speed"].startswith("3.90x (deepsparse, batch 32")


def test_targets_are_read_per_cpu_class_with_that_class_s_real_text_bench():
    fast = {"throughput": timed({"deepsparse": 5.5})}
    records = [run("06_combined", "bf16", {"method": "combined", "student": 6}, -0.35, **fast),
               run("06_combined", "avx2", {"method": "combined", "student": 6}, -0.35, cpu="avx2", **fast)]
    bench = {"run": "text-avx2", "text_throughput": [], "models": {}, "env": {"cpu_flags": ["avx2"]}}
    table = targets.targets_by_cpu(records, [bench])
    assert set(table.index.get_level_values("cpu")) == {"avx2", "avx512-bf16"}
    text = table.xs("avx2")["speed"].iloc[-1]
    assert "text-avx2" in text and "text-avx2" not in table.xs("avx512-bf16")["speed"].iloc[-1]


def test_the_targets_section_gives_the_students_teacher_mls():
    from mmakit.report.paired import Study
    from mmakit.report.results import targets_section
    from tests.report_records import baselines

    student = run("04_distillation", "L6-kd", {"method": "distil", "num_layers": 6}, -0.40)
    with_teacher = targets_section(Study(baselines({42: -0.35, 43: -0.33, 44: -0.37}) + [student]), [])
    assert "dense 12-layer baseline, has test mls -0.350 [" in with_teacher
    assert "teacher" not in targets_section(Study([student]), [])
