"""The paper's findings judged by one rule: a 95% interval on the paper's side of no effect
confirms, on the other side refutes, containing it leaves the finding open; seeds pair runs,
one-seed sides need stored predictions, CPU classes never meet."""
import math

import pytest

from mmakit.report import findings, groups, intervals
from mmakit.report.intervals import MORE, NO_EFFECT, Estimate
from mmakit.report.paired import Study
from tests.report_records import baselines, pipeline, pruned, quantized, run, seeded

BASE = baselines({42: -0.124, 43: -0.121, 44: -0.125})


def test_the_paired_t_interval_is_the_hand_computed_one():
    est = intervals.paired_interval([0.010, 0.030, 0.020])  # mean 0.02, sd 0.01, t(0.975, 2 df) = 4.302653
    half = 4.302652729911275 * 0.01 / math.sqrt(3)
    assert est.value == pytest.approx(0.02) and est.basis == "3 seeds, paired"
    assert (est.low, est.high) == pytest.approx((0.02 - half, 0.02 + half))
    assert not intervals.paired_interval([0.5]).judged


def test_a_difference_of_differences_with_one_value_on_a_side_borrows_the_other_sides_noise():
    est = intervals.pooled_difference([-0.06], [0.006, 0.009, -0.005])
    sd = 0.0073711147958319935  # sample sd of the three
    half = 4.302652729911275 * sd * math.sqrt(1 + 1 / 3)
    assert est.value == pytest.approx(-0.06 - 0.003333333) and est.high - est.value == pytest.approx(half)
    assert "2 df" in est.basis


def test_one_rule_for_every_claim():
    above, around, below = Estimate(0.2, 0.1, 0.3, ""), Estimate(0.0, -0.1, 0.1, ""), Estimate(-0.2, -0.3, -0.1, "")
    assert [intervals.verdict(e, MORE) for e in (above, around, below)] == ["confirmed", "open", "refuted"]
    assert [intervals.verdict(e, intervals.LESS) for e in (above, around, below)] == ["refuted", "open", "confirmed"]
    assert [intervals.verdict(e, NO_EFFECT) for e in (above, around, below)] == ["refuted", "open", "refuted"]
    assert intervals.verdict(intervals.unjudged(0.5, "no predictions stored: not judged"), MORE) == "open"
    ratio = intervals.ratio_interval([1.4, 1.5, 1.6])
    assert ratio.null == 1.0 and ratio.low > 1 and intervals.verdict(ratio, MORE) == "confirmed"
    assert intervals.overall(["confirmed", "open"]) == "open" and intervals.overall(["confirmed", "refuted"]) == "refuted"


def _finding(records, finding):
    return findings.findings(records).xs(finding, level="finding").droplevel("cpu")


def test_obs_against_magnitude_is_paired_by_seed():
    apart = BASE + pruned("obs", 0.8, {42: -0.28, 43: -0.25, 44: -0.31}) + pruned("magnitude", 0.8, {42: -0.56, 43: -0.55, 44: -0.57})
    row = _finding(apart, findings.OBS_MAGNITUDE).iloc[0]
    assert row.verdict == "confirmed" and row.basis == "3 seeds, paired" and row.ci_low > 0
    # the seed spread is large but shared: paired by seed the difference is clear
    shared = BASE + pruned("obs", 0.8, {42: -0.20, 43: -0.40, 44: -0.30}) + pruned("magnitude", 0.8, {42: -0.25, 43: -0.45, 44: -0.36})
    assert _finding(shared, findings.OBS_MAGNITUDE).iloc[0].verdict == "confirmed"
    close = BASE + pruned("obs", 0.8, {42: -0.40, 43: -0.45}) + pruned("magnitude", 0.8, {42: -0.45, 43: -0.38})
    assert _finding(close, findings.OBS_MAGNITUDE).iloc[0].verdict == "open"
    worse = BASE + pruned("obs", 0.8, {42: -0.9, 43: -0.92, 44: -0.88}) + pruned("magnitude", 0.8, {42: -0.4, 43: -0.41, 44: -0.42})
    assert _finding(worse, findings.OBS_MAGNITUDE).iloc[0].verdict == "refuted"


def test_a_one_seed_side_needs_stored_predictions_and_missing_runs_stay_open():
    records = BASE + pruned("obs", 0.9, {42: -0.5, 43: -0.45}) + pruned("obs", 0.9, {42: -0.8}, schedule="linear")
    row = _finding(records, findings.CUBIC).iloc[0]
    assert row.verdict == "open" and row.basis == "no predictions stored: not judged"
    assert row.difference == pytest.approx(0.3)
    table = findings.findings(BASE)
    assert set(table.verdict) == {"open"} and (table.basis == "not run").all()


def test_quantization_barely_touches_mls_is_judged_on_the_paired_baseline_seeds():
    def verdict(*changes):
        records = BASE + [r for seed, c in zip((42, 43, 44), changes) for r in quantized("static", seed, c)]
        return _finding(records, findings.QUANTIZATION).iloc[0]

    consistent = verdict(-0.0035, -0.0091, -0.0058)  # 07's static int8: paired t, 2 df, p ~0.06
    assert consistent.verdict == "open" and consistent.ci_low < 0 < consistent.ci_high
    assert verdict(-0.006, -0.0062, -0.0058).verdict == "refuted"  # a loss far beyond its spread
    assert verdict(-0.006, 0.004, 0.0).verdict == "open"  # no claim of no effect is ever "confirmed"


def _qat_parts(pipeline_change: float) -> list[dict]:
    """Dense baselines quantized with QAT (+0.004 +- 0.007 over three seeds), OBS 90% of seed 42
    and its QAT pipeline `pipeline_change` mls away from it."""
    dense = [r for seed, c in ((42, 0.006), (43, 0.009), (44, -0.004)) for r in quantized("qat", seed, c)]
    source = pruned("obs", 0.9, {42: -0.433, 43: -0.392})
    return BASE + dense + source + [pipeline("obs90-q", -0.433 + pipeline_change, "obs-90-cubic-s42")]


def test_pruning_plus_qat_is_an_interaction_with_its_own_source_and_never_confirmed():
    beyond = _finding(_qat_parts(-0.06), findings.COMBINATION).iloc[0]  # QAT costs the pruned model 0.06, dense ones nothing
    assert beyond.verdict == "refuted" and beyond.ci_high < 0
    assert "obs-90-cubic-s42" in beyond.name and "1 seed against 3 seeds" in beyond.basis
    within = _finding(_qat_parts(0.002), findings.COMBINATION).iloc[0]
    assert within.verdict == "open" and within.ci_low < 0 < within.ci_high
    assert "confirmed" not in set(_finding(_qat_parts(0.004), findings.COMBINATION).verdict)


def test_the_teacher_is_judged_per_student_and_the_six_layer_one_decides():
    def students(layers, with_teacher, without):
        technique = {"method": "distil", "num_layers": layers, "layers": list(range(layers)), "student_model": None}
        return (seeded("04_distillation", f"L{layers}-kd", technique | {"teacher": True}, with_teacher)
                + seeded("04_distillation", f"L{layers}-ce", technique | {"teacher": False}, without))

    records = (BASE + students(6, {42: -0.49, 43: -0.50, 44: -0.50}, {42: -0.48, 43: -0.51, 44: -0.49})
               + students(3, {42: -0.99, 43: -0.98, 44: -1.00}, {42: -0.92, 43: -0.93, 44: -0.92}))
    rows = _finding(records, findings.TEACHER)
    assert rows.loc["L3 student: teacher minus none"].verdict == "refuted"
    assert not rows.loc["L3 student: teacher minus none"].decides
    assert rows.loc["L6 student: teacher minus none"].verdict == "open"
    verdict = findings.verdicts(findings.findings(records)).xs(findings.TEACHER, level="finding").verdict.iloc[0]
    assert verdict == "open"


def test_target_unlabelled_students_take_no_part_in_the_papers_findings():
    technique = {"method": "distil", "num_layers": 6, "layers": [1, 3, 5], "student_model": None}
    records = BASE + seeded("04_distillation", "L6-kd-unlab", technique | {"teacher": True}, {42: -0.1, 43: -0.1, 44: -0.12},
                            setting="target-unlabelled") + seeded("04_distillation", "L6-ce", technique | {"teacher": False},
                                                                  {42: -0.5, 43: -0.49, 44: -0.5})
    rows = _finding(records, findings.TEACHER)
    assert list(rows.basis) == ["not run"]


def test_two_cpu_classes_never_meet_in_one_comparison():
    records = (BASE + pruned("obs", 0.8, {42: -0.28, 43: -0.25, 44: -0.31})
               + pruned("magnitude", 0.8, {42: -0.56, 43: -0.55, 44: -0.57}, cpu="avx2"))
    table = findings.findings(records)
    assert set(table.index.get_level_values("cpu")) == {"avx512-bf16", "avx2"}
    assert (table.xs(findings.OBS_MAGNITUDE, level="finding").basis == "not run").all()
    obs, magnitude = (next(r for r in records if r["run"] == f"{m}-80-cubic-s42") for m in ("obs", "magnitude"))
    assert Study(records).paired([(obs, magnitude)]).basis.startswith("different CPU classes")


def test_one_instruction_set_on_two_vendors_is_two_classes():
    obs, magnitude = (run("03_obs", name, {"method": name}, -0.3, seed=42) for name in ("obs", "magnitude"))
    obs["env"]["cpu"], magnitude["env"]["cpu"] = "AMD EPYC", "Intel(R) Xeon(R) Processor"
    assert (groups.cpu_class(obs), groups.cpu_class(magnitude)) == ("avx512-bf16 (AMD)", "avx512-bf16 (Intel)")
    assert Study([obs, magnitude]).paired([(obs, magnitude)]).basis.startswith("different CPU classes")


def test_cost_against_our_baseline_pairs_each_seed_with_the_baseline_it_came_from():
    obs = pruned("obs", 0.8, {42: -0.28, 43: -0.25, 44: -0.31})
    study = Study(BASE + obs)
    cost = study.cost(obs[-1])
    assert cost.value == pytest.approx(-0.28 - (-0.124)) and cost.basis == "3 seeds, paired"
    student = run("04_distillation", "L6-s43", {"method": "distil"}, -0.5, seed=43, training={"key": "L6-s43"})
    assert Study(BASE + [student]).baseline(student)["run"] == "base-s43"  # fine-tuned with that seed, like base-s43
    assert Study(BASE + [student]).cost(student).basis == "no predictions stored: not judged"
