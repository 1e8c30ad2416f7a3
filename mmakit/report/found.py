""""What we found": the study's answer in a few sentences, generated from the records.

07 and RESULTS.md open with it so a reader learns the result before any table: the dense
baseline, one sentence per paper finding with the interval that decides it, and the fastest
model over the paper's quality line per data setting. Without records it says which command
makes them, instead of showing empty tables.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mmakit.core import paper
from mmakit.report import findings as findings_report
from mmakit.report import summary
from mmakit.report.bootstrap import Bootstrap
from mmakit.report.groups import cpu_models
from mmakit.report.paired import Study

TITLE = "## What we found"
LANGS = ("en", "es", "nl")


def make_records_hint(profile: str, notebook: str | None = None) -> str:
    """The command that creates missing records, for an empty table or figure."""
    which = f" {notebook}" if notebook else ""
    return (f"No records of the {profile} profile yet: `python -m mmakit run --profile {profile}{which}` "
            "runs the notebooks that make them (`python -m mmakit run --list` shows what is missing).")


def baseline_record(study: Study) -> Mapping | None:
    """Our dense 12-layer baseline as the paper runs it (fine-tuned on English only), or None."""
    return next((r for r in summary.headline(study.records)
                 if r["notebook"] == "01_baselines" and summary.as_the_paper_runs(r)), None)


def baseline_sentence(study: Study) -> str:
    """Our dense baseline's test F1 per language and mls, seed means with intervals."""
    r = baseline_record(study)
    if r is None:
        return "- No dense baseline record yet."
    scores = ", ".join(f"{lang} {study.mean(r, lang).text(signed=False)}" for lang in LANGS)
    return (f"- **Baseline** (`{r['run']}`, {len(study.seeds(r))} seed(s), fine-tuned on English only): test F1 "
            f"{scores}; mls {study.mean(r).text()} against the paper's mlbert row.")


def finding_sentences(table: pd.DataFrame) -> list[str]:
    """One line per finding: its verdict and the deciding comparisons with their intervals."""
    lines = []
    for (_, finding), row in findings_report.verdicts(table).iterrows():
        evidence = row.evidence or "nothing to judge yet"
        lines.append(f"- **{finding}: {row.verdict}.** {evidence}.")
    return lines


def fastest_sentences(records: Sequence[Mapping], batch: int = 4) -> list[str]:
    """Per data setting, the fastest run whose test mls reaches the paper's quality line."""
    table = summary.fastest_meeting(list(records), batches=(batch,))
    if table.empty:
        return [f"- No timed run reaches the paper's quality line (test mls >= {paper.quality_line():.2f}) yet."]
    lines = []
    for setting, group in table.groupby(level="setting"):
        where = group.speedup.idxmax()
        best, runtime = group.loc[where], where[-1]
        lines.append(f"- **Fastest {setting} model over the quality line** (test mls >= {paper.quality_line():.2f}, "
                     f"the paper's xlm 90 q): `{best.run}`, {best.speedup:.2f}x dense fp32 onnxruntime in {runtime} at "
                     f"batch {batch}, mls {best.mls_test:.3f}.")
    return lines


def what_we_found(records: Sequence[Mapping], profile: str, bootstrap: Bootstrap | None = None) -> str:
    """The section as Markdown, one block per CPU class the records come from."""
    if not records:
        return f"{TITLE}\n\n{make_records_hint(profile)}\n"
    table = findings_report.findings(records, bootstrap)
    parts = [TITLE, ""]
    for cpu, study in sorted(summary.studies(records, bootstrap).items()):
        parts += [f"On {cpu_models(study.records)} (CPU class {cpu}), {profile} profile, test split:", "",
                  baseline_sentence(study), *fastest_sentences(study.records),
                  *finding_sentences(table.xs(cpu, level="cpu", drop_level=False)), ""]
    parts.append("A finding is confirmed when the 95% interval of its difference lies on the paper's side of no "
                 "effect, refuted when on the other side, open when it contains it.")
    return "\n".join(parts) + "\n"


def or_hint(frame: pd.DataFrame, profile: str, notebook: str | None = None):
    """`frame` for display, or, when it is empty, the command that fills it (as Markdown)."""
    from IPython.display import Markdown

    return Markdown(make_records_hint(profile, notebook)) if frame.empty else frame
