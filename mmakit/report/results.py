"""RESULTS.md and README's headline block, written from the records so no number is typed by hand.

`results_markdown` renders the study's headline tables (baseline, Table 3, Tables 4-5, Tables
6-7, Tables 8-10 and the fastest model per setting) and every comparison behind the paper's
findings, each value with its 95% interval where it has one, the paper's numbers as labelled
reference columns, one part per CPU class. `readme_block` renders the short verdict table that
README.md shows between HEADLINE_START and HEADLINE_END; `update_readme` rewrites it there.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence
from pathlib import Path

import pandas as pd

from mmakit.core import paper
from mmakit.core.evaluation import ZERO_SHOT
from mmakit.report import combined as combined_report
from mmakit.report import distillation as distillation_report
from mmakit.report import findings as findings_report
from mmakit.report import found
from mmakit.report import pruning as pruning_report
from mmakit.report import summary, tables, targets, text_speed
from mmakit.report.bootstrap import Bootstrap
from mmakit.report.groups import cpu_class, cpu_models, cpu_names, is_zero_shot, setting
from mmakit.report.intervals import mean_interval, ratio_interval
from mmakit.report.paired import Study
from mmakit.study.data_setting import GENERIC_MULTILINGUAL, TARGET_UNLABELLED

HEADLINE_START, HEADLINE_END = "<!-- headline:start -->", "<!-- headline:end -->"
LANGS = ("en", "es", "nl")
RULE = ("confirmed when the 95% interval lies on the paper's side of no effect, refuted when on the other side, "
        "open when it contains it; a claim of no effect can only be refuted or stay open")


def markdown_table(frame: pd.DataFrame) -> str:
    """A DataFrame (index included as the first columns) as a GitHub Markdown table."""
    flat = frame.reset_index() if any(name is not None for name in frame.index.names) else frame
    cells = [[str(c) for c in flat.columns]] + [["" if pd.isna(v) else str(v) for v in row] for row in flat.itertuples(index=False)]
    lines = ["| " + " | ".join(c.replace("|", "/") for c in row) + " |" for row in cells]
    return "\n".join([lines[0], "|" + "---|" * len(flat.columns), *lines[1:]])


def _mean(study: Study, record: Mapping, measure: str) -> str:
    return study.mean(record, measure).text(signed=False)


def _scores(study: Study, record: Mapping) -> dict:
    """Seeds, test F1 per language and mls (means with 95% intervals), and the change in mls against our baseline."""
    cost = study.cost(record)
    cells = {"seeds": len(study.seeds(record))} | {lang: _mean(study, record, lang) for lang in LANGS}
    return cells | {"mls": study.mean(record).text(), "vs our baseline": cost.text(), "basis": cost.basis}


def _speed(runs: Sequence[Mapping], runtime: str, batch: int = 4) -> str:
    """Speedup over dense fp32 onnxruntime at `batch`: the geometric mean over runs with its interval."""
    ratios = [x for x in (summary.speedup_at(r, runtime, batch) for r in runs) if x]
    return ratio_interval(ratios).text(2) if ratios else ""


def _paper(table: str, rows: Sequence[str]) -> dict:
    """The paper's test F1 and mls of `rows` (several joined by " / ")."""
    if not rows:
        return {}
    ref = paper.f1_table(table)
    if "mls_test" not in ref:  # Table 1: mls against its own mlbert row
        mlbert = paper.mlbert_reference()
        ref = ref.assign(mls_test=sum(ref[f"{lang}_test"] - mlbert[lang]["test"] for lang in ZERO_SHOT))
    return {"paper row": " / ".join(rows)} | {
        f"paper {col}": " / ".join(f"{ref.loc[row, f'{col}_test']:.3f}" for row in rows) for col in (*LANGS, "mls")}


def _headline_runs(study: Study, notebook: str, paper_like: bool) -> list[Mapping]:
    return [r for r in summary.headline(study.records)
            if r["notebook"] == notebook and summary.as_the_paper_runs(r) == paper_like]


# what each setting beyond the paper's saw, as the titles of its own sections
BEYOND = {GENERIC_MULTILINGUAL: "generic-multilingual: zero-shot, also taught on generic text in other languages",
          TARGET_UNLABELLED: "target-unlabelled: also unlabelled es/nl CoNLL-2002 sentences, not zero-shot"}


def _beyond_sections(title: str, rows: Sequence[tuple[Mapping, dict]], index: str) -> str:
    """One section per data setting other than english-only that has runs, titled with what it
    saw: generic-multilingual runs are zero-shot, target-unlabelled ones are not."""
    by_setting: dict[str, list[dict]] = {}
    for record, row in rows:
        by_setting.setdefault(setting(record), []).append(row)
    return "\n".join(_section(f"{title} beyond the paper ({about})", by_setting[name], index)
                     for name, about in BEYOND.items() if name in by_setting)


def _section(title: str, frame_rows: list[dict], index: str, note: str = "") -> str:
    body = markdown_table(pd.DataFrame(frame_rows).set_index(index)) if frame_rows else "No records."
    return "\n\n".join([f"## {title}", *([note] if note else []), body]) + "\n"


def baseline_section(study: Study) -> str:
    """Table 1 (test F1 and mls, mean over seeds) and Table 2 (items/s at batch 4) beside the paper's."""
    rows = [{"run": r["run"]} | _scores(study, r) | _paper("table1_baselines", ["mlbert", "xlm"])
            for r in _headline_runs(study, "01_baselines", True)]
    speed = tables.baseline_throughput_vs_paper(_headline_runs(study, "01_baselines", True)).round(2)
    return (_section("Baseline (Tables 1 and 2)", rows, "run", "mls is against the paper's mlbert row (Table 1), so "
                     "the paper's own mlbert has mls 0 by definition.")
            + f"\nItems/s at batch 4 (the record's first seed) beside the paper's base model:\n\n{markdown_table(speed)}\n")


def _paper_pruning_rows(technique: Mapping) -> list[str]:
    ref = paper.f1_table(pruning_report.PAPER_TABLE).index
    wanted = [f"{model} {technique['method']} {round(100 * technique['sparsity'])}" for model in ("mlbert", "xlm")]
    return [row for row in wanted if row in ref]


def pruning_section(study: Study) -> str:
    """Table 3: runs pruned as the paper prunes each method, then every other regime and variant."""
    rows = [{"run": pruning_report.label(r)} | _scores(study, r)
            | {"deepsparse b4": _speed(study.seeds(r).values(), "deepsparse"),
               "onnxruntime b4": _speed(study.seeds(r).values(), "onnxruntime")}
            | _paper(pruning_report.PAPER_TABLE, _paper_pruning_rows(r["technique"]))
            for r in sorted(_headline_runs(study, "03_obs", True), key=pruning_report.label)]
    others = [{"run": pruning_report.label(r), "regime": pruning_report.regime(r["technique"])} | _scores(study, r)
              for r in sorted(_headline_runs(study, "03_obs", False), key=pruning_report.label)]
    return (_section("Unstructured pruning (Table 3)", rows, "run",
                     "Runs pruned as the paper prunes each method; speedups over dense fp32 onnxruntime at batch 4, "
                     "geometric mean over the seeds' runs.")
            + "\n" + _section("Unstructured pruning: other regimes and variants (not compared with the paper)", others, "run"))


PAPER_STUDENTS = {(6, True): "distilbert with teacher", (6, False): "distilbert without teacher"}


def distillation_section(study: Study) -> str:
    """Tables 4-5: students with and without the teacher, speed over the dense graph, the paper's distilmBERT."""
    def row(r: Mapping) -> dict:
        runs = study.seeds(r).values()
        matched = PAPER_STUDENTS.get((r["technique"]["num_layers"], bool(r["technique"]["teacher"])))
        return ({"student": distillation_report.label(r)} | _scores(study, r)
                | {"onnxruntime b4": _speed(runs, "onnxruntime"), "deepsparse b4": _speed(runs, "deepsparse")}
                | _paper(distillation_report.PAPER_TABLE,
                         [matched] if matched and summary.as_the_paper_runs(r) else []))
    ours = [row(r) for r in distillation_report.aggregates(study.records) if is_zero_shot(r)]
    beyond = [(r, row(r)) for r in distillation_report.aggregates(study.records) if not is_zero_shot(r)]
    speed = (paper.throughput_table(distillation_report.PAPER_SPEED).query("batch == 4")
             .assign(speedup=lambda f: (f.items_per_s / paper.dense_throughput()).round(2)).set_index(["row", "runtime"]))
    return (_section("Distillation (Tables 4 and 5)", ours, "student",
                     "Speedups of the student over the dense 12-layer graph in onnxruntime, timed in the same run; "
                     "geometric mean over the seeds' runs.")
            + f"\nThe paper's students at batch 4 (its CPU), speedup over its dense onnxruntime model:\n\n{markdown_table(speed)}\n\n"
            + _beyond_sections("Distillation", beyond, "student") + "\n" + stage_choices_section(study))


def stage_choices_section(study: Study) -> str:
    """Each choice of the task-agnostic stage against the student without it: test mls and
    English F1 differences with their 95% intervals."""
    rows = []
    for what, student, reference in distillation_report.stage_choices(study.records):
        mls, english = study.difference(student, reference), study.difference(student, reference, "en")
        rows.append({"choice": what, "against": distillation_report.label(reference), "mls difference": mls.text(),
                     "en difference": english.text(), "basis": mls.basis})
    return _section("Distillation beyond the paper: the task-agnostic stage's choices", rows, "choice",
                    "Each student minus the same student taught on the widest generic text with output KD only, for "
                    "the shortest stage, test split; paired by seed, or a bootstrap over sentences where one seed is shared.") if rows else ""


def quantization_section(study: Study) -> str:
    """Tables 6-7: each int8 method's mls change against the fp32 graph of the same checkpoint,
    paired over the baseline seeds quantized, and its speedups, beside the paper's."""
    rows = []
    for method in sorted({r["technique"]["method"] for r in study.records
                          if r["notebook"] == "05_quantization" and r["technique"].get("int8")}):
        pairs = findings_report.quantized_pairs(study, method)
        runs = [q for q, _ in pairs]
        change = study.paired(pairs)
        paper_row = {"data-free": "without data"}.get(method, method)
        ref = paper.f1_table("table6_quantization")
        speed = paper.throughput_table("table11_quantized_throughput").query("batch == 4 and row == @paper_row")
        rows.append({"method": method, "baseline seeds": len(runs)}
                    | {lang: _mean_of(runs, lang) for lang in LANGS}
                    | {"mls change vs fp32": change.text(), "basis": change.basis,
                       "onnxruntime b4": _speed(runs, "onnxruntime"), "deepsparse b4": _speed(runs, "deepsparse"),
                       "paper mls change": f"{ref.loc[paper_row, 'mls_test']:+.3f}" if paper_row in ref.index else "",
                       "paper deepsparse b4": _paper_speed(speed, "deepsparse"),
                       "paper onnxruntime b4": _paper_speed(speed, "onnxruntime")})
    return _section("Quantization (Tables 6 and 7)", rows, "method",
                    "Our changes are against each checkpoint's own fp32 graph; the paper's mls is against its fp32 "
                    "mlbert (Table 1), i.e. also a change. Paper speedups: over its dense onnxruntime model at batch 4.")


def _mean_of(runs: Sequence[Mapping], lang: str) -> str:
    return mean_interval([r["f1"][lang]["test"] for r in runs]).text(signed=False)


def _paper_speed(speed: pd.DataFrame, runtime: str) -> str:
    found = speed[speed.runtime == runtime].items_per_s
    return f"{found.iloc[0] / paper.dense_throughput():.2f}x" if len(found) else ""


def _paper_pipeline(technique: Mapping) -> list[str]:
    """The paper's Table 8 row our pipeline matches (float exclusions only)."""
    if technique.get("coverage") != "exclusions":
        return []
    if technique.get("student"):
        return ["distilbert q"] if technique["student"] == 6 and not technique.get("sparsity") else []
    return {0.8: ["xlm 80 q"], 0.9: ["xlm 90 q"]}.get(technique.get("sparsity"), [])


def combined_section(study: Study) -> str:
    """Tables 8-10: every pipeline's quality, cost against our baseline and speed, beside the paper's."""
    ds = summary.paper_points().set_index("run")["speedup"]

    def row(r: Mapping) -> dict:
        matched = _paper_pipeline(r["technique"]) if is_zero_shot(r) else []
        cells = {"pipeline": combined_report.label(r)} | _scores(study, r)
        cells |= {f"{rt} b{b}": _speed([r], rt, b) for rt in ("deepsparse", "onnxruntime") for b in (1, 4, 8)}
        return cells | _paper(combined_report.PAPER_TABLE, matched) | (
            {"paper deepsparse b4": f"{ds[f'paper {matched[0]}']:.2f}x"} if matched else {})
    ours = [row(r) for r in _headline_runs(study, "06_combined", True)]
    beyond = [(r, row(r)) for r in _headline_runs(study, "06_combined", False)]
    return (_section("Combined pipelines (Tables 8-10)", ours, "pipeline",
                     "One seed each; speedups over the dense fp32 graph in onnxruntime timed in the same run.")
            + "\n" + _beyond_sections("Combined pipelines", beyond, "pipeline"))


def fastest_section(records: Sequence[Mapping]) -> str:
    """The fastest run at or above the paper's quality line, per data setting, batch and runtime."""
    table = summary.fastest_meeting(list(records)).round(3)
    body = markdown_table(table) if not table.empty else "No run reaches the line."
    return (f"## The fastest model per setting\n\nPer data setting, batch and runtime, the fastest run whose test mls "
            f"reaches the paper's `xlm 90 q` ({paper.quality_line():.2f}).\n\n{body}\n")


def findings_section(table: pd.DataFrame) -> str:
    """The verdicts per finding, then every comparison behind them."""
    shown = table.reset_index().assign(
        **{"difference [95%]": [findings_report.as_estimate(row).text() for _, row in table.iterrows()]})
    detail = shown.set_index(["finding", "comparison"])[["claim", "difference [95%]", "basis", "verdict", "decides"]]
    return (f"## The paper's findings\n\nThe rule, the same for every finding: {RULE}. A finding's verdict comes from "
            f"the comparisons that decide it: refuted if any is, confirmed if all are, else open. Differences are in "
            f"test mls, speeds as ratios.\n\n{markdown_table(findings_report.verdicts(table).droplevel('cpu'))}\n\n"
            f"Every comparison:\n\n{markdown_table(detail)}\n")


def targets_section(study: Study, benches: Sequence[Mapping]) -> str:
    """Whether the zero-shot targets are met, from the records and the newest of `benches`, with
    the students' teacher (our dense baseline) that a student's mls is read against."""
    table = targets.targets(study.records, benches[0] if benches else None)
    teacher = found.baseline_record(study)
    teacher_sentence = (f" The students' teacher, our dense 12-layer baseline, has test mls {study.mean(teacher).text()}: a "
                        "student's distance from it is what distillation cost." if teacher else "")
    return ("## Targets of the zero-shot work (beyond the paper)\n\nZero-shot: english-only and generic-multilingual "
            "runs. Speed is over the dense fp32 model in onnxruntime, timed in the same run; mls of a seed aggregate is "
            f"its mean.{teacher_sentence}\n\n{markdown_table(table)}\n")


def text_speed_section(benches: Sequence[Mapping]) -> str:
    """The first of `benches` (bench-text records, newest first as study.text_speed.text_records
    gives them): sentences/s on the real test sets beside each model's fixed-length speedup
    (beyond the paper); empty without one."""
    if not benches:
        return ""
    newest = benches[0]
    table = markdown_table(text_speed.text_speed_table(newest).round(2))
    return (f"## Real text: sentences per second at real lengths (beyond the paper)\n\nFrom `{newest['run']}`: "
            "the en, es and nl test sets tagged at their real lengths, batched by length, every model timed in one "
            "run; `speedup (real text)` is over the dense fp32 model in onnxruntime, `speedup (fixed length)` the "
            f"model's own record's, on rows of 128 sub-tokens.\n\n{table}\n")


def results_markdown(records: Sequence[Mapping], profile: str, bootstrap: Bootstrap | None = None,
                     text_benches: Sequence[Mapping] = ()) -> str:
    """RESULTS.md: a part per CPU class with the findings, every headline table and, from the
    bench-text records `text_benches` (newest first, as study.text_speed.text_records gives them),
    the real-text speeds."""
    parts = [f"# Results ({profile} profile)\n\nGenerated by `python -m mmakit report` from {len(records)} result records; "
             "do not edit by hand. Each value is a mean over seeds with its 95% t interval where there are several "
             "seeds (`seeds` says how many), else the one run's value. F1 and mls on the test split; mls is the sum "
             "over es and nl of F1 minus the paper's mlbert F1 (Table 1). `vs our baseline`: the change in mls "
             "against our own dense baseline, each run paired with the baseline it came from (`basis`). Columns "
             f"named `paper` are the MMA paper's numbers, for reference only ({paper.CITATION}; its models, its "
             f"CPU: {paper.tables()['cpu']}).\n", found.what_we_found(records, profile, bootstrap)]
    table = findings_report.findings(records, bootstrap)
    for cpu, study in sorted(summary.studies(records, bootstrap).items()):
        benches = [r for r in text_benches if cpu_class(r) == cpu]
        parts += [f"# CPU class {cpu}: {cpu_models(study.records)}\n",
                  findings_section(table.xs(cpu, level="cpu", drop_level=False)), baseline_section(study),
                  pruning_section(study), distillation_section(study), quantization_section(study),
                  combined_section(study), fastest_section(study.records),
                  targets_section(study, benches), text_speed_section(benches)]
    return "\n".join(parts)


def readme_block(records: Sequence[Mapping], bootstrap: Bootstrap | None = None) -> str:
    """README's headline: one verdict per finding and CPU class with its deciding comparisons."""
    verdicts = findings_report.verdicts(findings_report.findings(records, bootstrap))
    cpus = cpu_names(records)
    if verdicts.index.get_level_values("cpu").nunique() == 1:
        verdicts = verdicts.droplevel("cpu")
    return "\n".join([HEADLINE_START,
                      f"The paper's findings against our records ({cpus}), generated by `python -m mmakit report "
                      f"--readme` from the committed records; every table with its intervals is in "
                      f"[outputs/RESULTS.md](outputs/RESULTS.md). The rule: {RULE}.", "",
                      markdown_table(verdicts), HEADLINE_END])


def readme_block_in(text: str) -> str | None:
    """The headline block of README's text, markers included, or None without markers."""
    if HEADLINE_START not in text or HEADLINE_END not in text:
        return None
    start = text.index(HEADLINE_START)
    return text[start:text.index(HEADLINE_END, start) + len(HEADLINE_END)]


def update_readme(path: str | Path, block: str) -> bool:
    """Put `block` between README's markers; True if the file changed."""
    path = Path(path)
    text = path.read_text()
    current = readme_block_in(text)
    if current is None:
        raise ValueError(f"{path} has no {HEADLINE_START} ... {HEADLINE_END} block")
    if current == block:
        return False
    path.write_text(text.replace(current, block))
    return True

