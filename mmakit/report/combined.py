"""Tables of 06_combined, read from result records only: Table 8 (F1 and mls beside the paper's
combined models) and Tables 9 and 10 (items/s per runtime and batch, speedup over the dense fp32
graph in onnxruntime from the same run). The study-wide quality/speed frontier is in summary."""
from __future__ import annotations

import pandas as pd

from mmakit.core import paper
from mmakit.report import tables

PAPER_TABLE = "table8_combined"
PAPER_SPEED = "table10_final_throughput"


def runs(records: list[dict]) -> list[dict]:
    """06's pipelines, seed aggregates in place of the seeds they summarise."""
    aggregated = {run for r in records for run in r.get("aggregate_of", ())}
    return [r for r in records if r["technique"].get("method") == "combined" and r["run"] not in aggregated]


def label(record: dict) -> str:
    """e.g. `L6 student, OBS 80% 4-block, QAT (every MatMul int8)`, or `L6 student + unlabelled
    es,nl (beyond the paper), ...`."""
    t = record["technique"]
    parts = [f"L{t['student']} student" if t.get("student") else "12 layers"]
    if t.get("generic_langs"):
        parts[0] += f" after generic {','.join(t['generic_langs'])} text"
    if t.get("student_intermediate"):
        parts[0] += " (hidden MSE)"
    if t.get("student_steps"):
        parts[0] += f" ({t['student_steps']} steps)"
    if t.get("unlabelled_langs"):
        parts[0] += f" + unlabelled {','.join(t['unlabelled_langs'])} (beyond the paper)"
    if t.get("sparsity"):
        parts.append(f"OBS {round(100 * t['sparsity'])}%" + (" 4-block" if t.get("group_size") == 4 else ""))
    coverage = "every MatMul int8" if t.get("coverage") != "exclusions" else "float: " + ", ".join(t.get("float_ops", []))
    return ", ".join(parts) + f", QAT{' with KD' if t.get('qat_distill') else ''} ({coverage})"


def table8(records: list[dict]) -> pd.DataFrame:
    """F1 per language and split and mls of every pipeline, then the paper's rows."""
    return tables.side_by_side([r | {"run": label(r)} for r in runs(records)], PAPER_TABLE)


def throughput(records: list[dict]) -> pd.DataFrame:
    """Tables 9 and 10: items/s and speedup over dense fp32 onnxruntime per pipeline, runtime and
    batch (each pipeline timed beside the dense graph in one run), with the best batch per runtime."""
    rows = [{"pipeline": label(r), "runtime": t["runtime"], "batch": t["batch"], "items_per_s": t["items_per_s"],
             "speedup": t.get("speedup")}
            for r in runs(records) for t in r.get("throughput") or [] if t.get("status") == "ok"]
    if not rows:
        return pd.DataFrame()
    frame = pd.DataFrame(rows).pivot_table(index=["pipeline", "runtime"], columns="batch",
                                           values=["items_per_s", "speedup"])
    best = frame["items_per_s"].idxmax(axis=1)
    return frame.assign(best_batch=best)


def paper_throughput() -> pd.DataFrame:
    """The paper's Table 10 (items/s per batch; its CPU) with speedups over its dense xlm in onnxruntime."""
    frame = paper.throughput_table(PAPER_SPEED).pivot_table(index=["row", "runtime"], columns="batch",
                                                            values="items_per_s")
    return frame.assign(**{"speedup b4 vs dense ort": frame[4] / paper.dense_throughput()})
