"""The paper's findings checked against our records, every one by the same rule.

Each finding is one or more comparisons; each comparison carries its difference, a 95%
interval and what the interval rests on (`paired`: seeds shared by both sides, lineage, the
bootstrap over sentences for one seed), and a verdict by `intervals.verdict`: confirmed when the
interval lies on the paper's side of the no-effect value, refuted when on the other side, open
when it contains it or when nothing could be judged. A finding's verdict comes from the
comparisons that decide it (`intervals.overall`). Only runs made as the paper makes them take
part: english-only data, and for 03 runs pruned as the paper prunes each method. Records of
different CPU classes are never compared: every finding is checked within each class.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mmakit.report import combined as combined_report
from mmakit.report import distillation as distillation_report
from mmakit.report.bootstrap import Bootstrap
from mmakit.report.groups import by_cpu, is_zero_shot
from mmakit.report.intervals import (MORE, NO_EFFECT, OPEN, Estimate, overall, pooled_difference, ratio_interval,
                                     unjudged, verdict)
from mmakit.report.paired import Study, value
from mmakit.report.pruning import as_the_paper_prunes

OBS_MAGNITUDE = "OBS keeps es/nl better than magnitude pruning (same sparsity)"
OBS_MOVEMENT = "OBS keeps es/nl better than movement pruning (same sparsity)"
CUBIC = "A cubic sparsity schedule beats a linear one at the end (OBS 90%)"
QUANTIZATION = "Quantization barely touches mls"
SPARSE_DEEPSPARSE = "Unstructured sparsity speeds up deepsparse"
SPARSE_ORT = "Unstructured sparsity does not speed up onnxruntime"
TEACHER = "A teacher keeps multilinguality (the 6-layer student decides)"
COMBINATION = "Pruning + QAT adds nothing beyond its parts"
COLUMNS = ["claim", "difference", "ci_low", "ci_high", "null", "basis", "verdict", "decides"]


def _row(finding: str, comparison: str, estimate: Estimate, claim: str, decides: bool = True) -> dict:
    return {"finding": finding, "comparison": comparison, "claim": claim, "difference": estimate.value,
            "ci_low": estimate.low, "ci_high": estimate.high, "null": estimate.null, "basis": estimate.basis,
            "verdict": verdict(estimate, claim), "decides": decides}


def _not_run(finding: str, needs: str, claim: str = MORE) -> dict:
    return _row(finding, needs, unjudged(None, "not run"), claim)


def _setting(records: Sequence[Mapping], **match) -> Mapping | None:
    """The one setting (a seed aggregate, else a single run) of 03's gradual runs pruned as the
    paper prunes, with the given technique values."""
    found = [r for r in records if r["notebook"] == "03_obs" and r["technique"].get("mode") == "gradual"
             and as_the_paper_prunes(r["technique"]) and is_zero_shot(r)
             and all(abs(r["technique"].get(k) - v) < 1e-9 if isinstance(v, float) else r["technique"].get(k) == v
                     for k, v in match.items())]
    aggregates = [r for r in found if r.get("aggregate_of")]
    return (aggregates or found or [None])[0]


def _sparsities(records: Sequence[Mapping], method: str) -> set[float]:
    return {round(r["technique"]["sparsity"], 4) for r in records if r["notebook"] == "03_obs"
            and r["technique"].get("method") == method and r["technique"].get("mode") == "gradual"}


def pruning_criterion(study: Study, rival: str, finding: str) -> list[dict]:
    """OBS (cubic) minus `rival` in test mls at each sparsity both were pruned to as the paper
    prunes them (movement in Sanh et al.'s regime, whose schedule is its own)."""
    rows = []
    for sparsity in sorted(_sparsities(study.records, "obs") & _sparsities(study.records, rival)):
        obs = _setting(study.records, method="obs", sparsity=sparsity, schedule="cubic")
        other = _setting(study.records, method=rival, sparsity=sparsity, **({} if rival == "movement" else {"schedule": "cubic"}))
        if obs and other:
            rows.append(_row(finding, f"obs {sparsity:.0%} minus {rival} {sparsity:.0%}", study.difference(obs, other), MORE))
    return rows or [_not_run(finding, f"needs 03's obs and {rival} at one sparsity, each pruned as the paper prunes it")]


def cubic_beats_linear(study: Study) -> list[dict]:
    """OBS 90%: cubic minus linear schedule in test mls."""
    cubic, linear = (_setting(study.records, method="obs", sparsity=0.9, schedule=s) for s in ("cubic", "linear"))
    if not (cubic and linear):
        return [_not_run(CUBIC, "needs 03's obs-90-cubic and obs-90-linear")]
    return [_row(CUBIC, "obs 90% cubic minus linear", study.difference(cubic, linear), MORE)]


def _fp32_of(study: Study, record: Mapping) -> Mapping | None:
    """05's fp32 graph of the checkpoint a quantized record was made from."""
    key = (record.get("baseline") or {}).get("key")
    return next((r for r in study.records if r["notebook"] == "05_quantization" and r["technique"]["method"] == "fp32"
                 and (r.get("baseline") or {}).get("key") == key), None)


def quantized_pairs(study: Study, method: str, exclude: Sequence[str] | None = None) -> list[tuple[Mapping, Mapping]]:
    """(int8 graph, its fp32 graph) per baseline seed quantized with `method` (and, if given, these float ops)."""
    pairs = []
    for r in study.records:
        t = r["technique"]
        if r["notebook"] == "05_quantization" and t.get("int8") and t["method"] == method and (
                exclude is None or sorted((t.get("settings") or {}).get("exclude") or []) == sorted(exclude)):
            fp32 = _fp32_of(study, r)
            if fp32:
                pairs.append((r, fp32))
    return pairs


def quantization_keeps_mls(study: Study) -> list[dict]:
    """Each int8 method's test mls change against the fp32 graph of the same checkpoint, paired
    over the baseline seeds quantized. The paper claims no effect."""
    methods = sorted({r["technique"]["method"] for r in study.records
                      if r["notebook"] == "05_quantization" and r["technique"].get("int8")})
    rows = [_row(QUANTIZATION, f"{m} int8 minus fp32", study.paired(quantized_pairs(study, m)), NO_EFFECT)
            for m in methods if quantized_pairs(study, m)]
    return rows or [_not_run(QUANTIZATION, "needs 05's int8 graphs and their fp32 graph", NO_EFFECT)]


def _speed_ratio(record: Mapping, runtime: str, batch: int) -> float | None:
    """The pruned graph's items/s over the dense graph's, same runtime and batch, timed in one run."""
    rates = {t.get("model"): t.get("items_per_s") for t in record.get("throughput") or []
             if t.get("runtime") == runtime and t.get("batch") == batch and t.get("status") == "ok"}
    return rates["pruned"] / rates["dense"] if rates.get("pruned") and rates.get("dense") else None


def sparsity_speedups(study: Study, batch: int = 4) -> list[dict]:
    """The paper's "sparsity pays only in deepsparse" as two findings: per sparsity, the sparse
    graph over the dense one in the same runtime and run (batch 4), over every 03 gradual run:
    a speedup in deepsparse (more), none in onnxruntime (no effect)."""
    sparsities = sorted(_sparsities(study.records, "obs") | _sparsities(study.records, "magnitude"))
    rows = []
    for runtime, finding, claim in (("deepsparse", SPARSE_DEEPSPARSE, MORE), ("onnxruntime", SPARSE_ORT, NO_EFFECT)):
        found = []
        for sparsity in sparsities:
            runs = [r for r in study.records if r["notebook"] == "03_obs" and r["technique"].get("mode") == "gradual"
                    and not r.get("aggregate_of") and abs(r["technique"]["sparsity"] - sparsity) < 1e-9]
            ratios = [x for x in (_speed_ratio(r, runtime, batch) for r in runs) if x]
            if ratios:
                found.append(_row(finding, f"{sparsity:.0%} sparse over dense, {runtime}, batch {batch}",
                                  ratio_interval(ratios), claim))
        rows += found or [_not_run(finding, f"needs 03's gradual runs timed in {runtime}", claim)]
    return rows


def teacher_keeps_languages(study: Study) -> list[dict]:
    """Per student size: with minus without the teacher in test mls, paired by seed. The claim is
    the paper's distilmBERT's (6 layers), so the 6-layer row decides; the others inform."""
    settings: dict[tuple, dict[bool, Mapping]] = {}
    for r in distillation_report.aggregates(study.records):
        t = r["technique"]
        if is_zero_shot(r) and not t.get("intermediate"):
            settings.setdefault((t["num_layers"], t.get("student_model") or ""), {})[bool(t["teacher"])] = r
    rows = [_row(TEACHER, f"L{layers}{' ' + model if model else ''} student: teacher minus none",
                 study.difference(sides[True], sides[False]), MORE, decides=layers == 6)
            for (layers, model), sides in sorted(settings.items()) if len(sides) == 2]
    if not any(row["decides"] for row in rows):
        rows.append(_not_run(TEACHER, "needs 04's 6-layer student with and without the teacher"))
    return rows


def _qat_on_dense(study: Study, float_ops: Sequence[str]) -> list[float]:
    pairs = quantized_pairs(study, "qat", float_ops)
    return [value(q) - value(fp32) for q, fp32 in pairs]


def combination_is_additive(study: Study) -> list[dict]:
    """Each QAT pipeline of 06 (QAT on English cross-entropy, as the paper's) against the model it
    quantized, seed by seed, as an interaction with QAT's effect on the dense baselines (05, same
    float exclusions): mean over the pipeline's seeds of (pipeline - its source) minus the mean of
    (QAT - fp32), a pooled two-sample t interval. Pipelines whose source has no record (students
    pruned inside 06) or whose coverage 05 did not quantize (every MatMul int8) cannot be split
    into parts and are left out."""
    rows = []
    for r in combined_report.runs(study.records):
        t = r["technique"]
        dense = _qat_on_dense(study, t.get("float_ops") or [])
        if t.get("quantization") != "qat" or t.get("qat_distill") or not is_zero_shot(r) or not dense:
            continue
        pairs = [(run, study.source(run)) for run in study.seeds(r).values()]
        pairs = [(a, b) for a, b in pairs if b is not None and None not in (value(a), value(b))]
        if pairs:
            sources = ", ".join(b["run"] for _, b in pairs)
            rows.append(_row(COMBINATION, f"({r['run']} - {sources}) - (QAT - fp32 on the dense baselines)",
                             pooled_difference([value(a) - value(b) for a, b in pairs], dense), NO_EFFECT))
    return rows or [_not_run(COMBINATION, "needs a 06 QAT pipeline with its source's record and 05's QAT on the "
                             "dense baselines", NO_EFFECT)]


def findings(records: Sequence[Mapping], bootstrap: Bootstrap | None = None) -> pd.DataFrame:
    """Every comparison behind the paper's findings, per CPU class: index (cpu, finding,
    comparison); columns claim (more / no effect), difference (test mls, or a speed ratio),
    ci_low, ci_high (95%), basis, verdict, decides (whether it counts for the finding)."""
    rows = []
    for cpu, group in sorted(by_cpu(records).items()):
        study = Study(group, bootstrap)
        checks = [pruning_criterion(study, "magnitude", OBS_MAGNITUDE), pruning_criterion(study, "movement", OBS_MOVEMENT),
                  cubic_beats_linear(study), quantization_keeps_mls(study), sparsity_speedups(study),
                  teacher_keeps_languages(study), combination_is_additive(study)]
        rows += [row | {"cpu": cpu} for check in checks for row in check]
    return pd.DataFrame(rows, columns=["cpu", "finding", "comparison", *COLUMNS]).set_index(["cpu", "finding", "comparison"])


def verdicts(table: pd.DataFrame) -> pd.DataFrame:
    """One row per CPU class and finding: the verdict of its deciding comparisons and their evidence."""
    rows = []
    for (cpu, finding), group in table.groupby(level=["cpu", "finding"], sort=False):
        deciding = group[group.decides]
        evidence = "; ".join(_evidence(comparison, row) for (_, _, comparison), row in deciding.iterrows())
        rows.append({"cpu": cpu, "finding": finding, "verdict": overall(list(deciding.verdict)) if len(deciding) else OPEN,
                     "evidence": evidence})
    return pd.DataFrame(rows).set_index(["cpu", "finding"])


def as_estimate(row: pd.Series) -> Estimate:
    """A row of `findings` back as an Estimate (for its text)."""
    def number(x: float) -> float | None:
        return None if pd.isna(x) else float(x)
    return Estimate(number(row.difference), number(row.ci_low), number(row.ci_high), row.basis, float(row.null))


def _evidence(comparison: str, row: pd.Series) -> str:
    shown = as_estimate(row).text()
    return f"{comparison}: {shown} ({row.basis})" if shown else f"{comparison} ({row.basis})"
