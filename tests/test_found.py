"""07's opening section: the answer in sentences with intervals, or the command that makes the records."""
from mmakit.report import found
from tests.report_records import baselines, pruned


def test_without_records_it_names_the_command_that_makes_them():
    text = found.what_we_found([], "quick")
    assert text.startswith(found.TITLE) and "python -m mmakit run --profile quick" in text


def test_each_finding_is_one_sentence_with_its_verdict_and_interval():
    records = baselines({42: -0.12, 43: -0.13, 44: -0.11}) + pruned("obs", 0.8, {42: -0.25, 43: -0.27, 44: -0.26}) \
        + pruned("magnitude", 0.8, {42: -0.55, 43: -0.56, 44: -0.57})
    text = found.what_we_found(records, "quick")
    line = next(s for s in text.splitlines() if "better than magnitude" in s)
    assert "confirmed" in line and "[+" in line and "3 seeds, paired" in line
    assert "**Baseline**" in text and "avx512-bf16" in text
    assert "No timed run reaches" in text  # the hand-made records carry no timings


def test_head_pruning_is_shown_at_its_chosen_point_or_marked_as_never_over_the_line():
    from mmakit.report import summary
    from tests.report_records import run

    timings = [{"model": g, "runtime": "onnxruntime", "batch": 4, "status": "ok", "speedup": x}
               for g, x in (("iter-00", 1.0), ("iter-04", 1.4), ("iter-11", 9.5))]
    chosen = {"iteration": 4, "heads_removed": 48, "graph": "iter-04", "f1": {"en": {"test": 0.88}}, "mls": {"test": -0.3}}
    record = run("02_heads", "me5-small-importance", {"method": "heads-importance"}, -1.4, throughput=timings, chosen=chosen)
    shown = summary.at_chosen_point(record)
    assert shown["mls"]["test"] == -0.3 and summary.speedup_at(shown, "onnxruntime") == 1.4 and "48 heads" in shown["run"]
    never = summary.at_chosen_point(record | {"chosen": None})
    assert "none over the line" in never["run"] and never["mls"]["test"] == -1.4
