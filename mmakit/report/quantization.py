"""Tables and figures of 05_quantization from its records, our numbers beside the paper's.

The paper quantized fine-tuned mlbert (its Table 6 for quality, Tables 7 and 11 for speed);
its F1 changes are taken against its mlbert baseline (Table 1), ours against our own fp32
graph of the same checkpoint. Absolute speeds are not comparable (bert-base on an 8-core
i7 there, a smaller model on 2 shared cores here), so speed is also shown as speedup over the
fp32 model in onnxruntime; the paper gives its fp32 onnxruntime speed at batch 4 only
(Table 2), so its speedups exist at batch 4 only.
"""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import tables
from mmakit.techniques.quantization.pipeline import FP32

PAPER_ROWS = {"dynamic": "dynamic", "static": "static", "qat": "qat", "data-free": "without data"}
PAPER_FP32 = ("table1_baselines", "mlbert")
PAPER_SPEED = "table11_quantized_throughput"
LANGS = ("en", "es", "nl")


def method_of(record: dict) -> str:
    return record["technique"]["method"]


def quality_table(records: list[dict]) -> pd.DataFrame:
    """Table 6: F1 per language and split and mls, our records and the paper's rows (with its fp32 mlbert)."""
    ours = [r for r in records if method_of(r) in (FP32, *PAPER_ROWS)]
    rows = [PAPER_ROWS[method_of(r)] for r in ours if method_of(r) in PAPER_ROWS]
    return pd.concat([tables.side_by_side(ours, "table6_quantization", rows),
                      tables.side_by_side([], PAPER_FP32[0], [PAPER_FP32[1]])])


def change_long(records: list[dict]) -> pd.DataFrame:
    """F1 change against fp32 in long form (source, method, lang, split, change, relative), ours and
    the paper's; `relative` is the change as a fraction of the fp32 F1."""
    out = [{"source": "ours", "method": method_of(r), "lang": lang, "split": split, "change": v,
            "relative": v / (r["f1"][lang][split] - v) if r["f1"][lang][split] != v else None}
           for r in records if method_of(r) != FP32
           for lang, splits in r["f1_change_vs_fp32"].items() for split, v in splits.items()]
    reference = paper.f1_nested(*PAPER_FP32)
    shown = {method_of(r) for r in records}
    for method, row in PAPER_ROWS.items():
        if method in shown:
            quantized = paper.f1_nested("table6_quantization", row)
            out += [{"source": "paper", "method": method, "lang": lang, "split": split,
                     "change": v - reference[lang][split], "relative": v / reference[lang][split] - 1}
                    for lang, splits in quantized.items() for split, v in splits.items()]
    return pd.DataFrame(out)


def change_summary(records: list[dict]) -> pd.DataFrame:
    """Mean F1 change over dev and test per method and language, absolute and relative to the
    fp32 F1: equal relative changes mean quantization moved the zero-shot languages in
    proportion to English, i.e. it did not hurt multilinguality."""
    frame = change_long(records).groupby(["source", "method", "lang"])[["change", "relative"]].mean().unstack("lang")
    return frame.reindex(columns=[(k, lang) for k in ("change", "relative") for lang in LANGS if (k, lang) in frame])


def change_figure(records: list[dict], title: str) -> go.Figure:
    """Bars of the F1 change per language, one colour per method, ours and the paper's side by side."""
    long = change_long(records)
    return px.bar(long, x="lang", y="change", color="method", barmode="group", facet_col="split", facet_row="source",
                  title=title, labels={"change": "F1 change vs fp32", "lang": "language"})


def speed_table(records: list[dict]) -> pd.DataFrame:
    """Tables 7 and 11: items/s and speedup over fp32 onnxruntime per model, runtime and batch, ours and the paper's.

    A runtime that failed on a graph shows its status instead of a number.
    """
    ours = pd.DataFrame([
        {"source": "ours", "model": method_of(r), "runtime": t["runtime"], "batch": t["batch"],
         "items_per_s": t["items_per_s"], "speedup": t.get("speedup"), "status": t["status"]}
        for r in records for t in r["throughput"]
    ])
    theirs = paper.throughput_table(PAPER_SPEED).rename(columns={"row": "model"})
    shown = {method_of(r) for r in records}
    theirs = theirs[theirs["model"].isin(shown)].assign(source="paper", status="ok")
    fp32_b4 = paper.tables()["table2_baseline_throughput"]["base_model"]["onnxruntime"]
    theirs["speedup"] = [round(v / fp32_b4, 2) if b == 4 else None for v, b in zip(theirs["items_per_s"], theirs["batch"])]
    frame = pd.concat([ours, theirs], ignore_index=True)
    return frame.pivot_table(index=["source", "model"], columns=["runtime", "batch"], values=["items_per_s", "speedup"],
                             aggfunc="first").round(2)


def failures(records: list[dict]) -> pd.DataFrame:
    """Benchmark rows that did not produce a number, with the reason."""
    rows = [{"model": method_of(r), "runtime": t["runtime"], "batch": t["batch"], "status": t["status"], "error": t["error"]}
            for r in records for t in r["throughput"] if t["status"] != "ok"]
    return pd.DataFrame(rows, columns=["model", "runtime", "batch", "status", "error"])


def speed_figure(records: list[dict], title: str) -> go.Figure:
    """items/s per model at each batch size, one panel per runtime."""
    rows = pd.DataFrame([{"model": method_of(r), "runtime": t["runtime"], "batch": str(t["batch"]),
                          "items_per_s": t["items_per_s"]}
                         for r in records for t in r["throughput"]])
    return px.bar(rows, x="batch", y="items_per_s", color="model", barmode="group", facet_col="runtime", title=title,
                  labels={"items_per_s": "items/s (seq. length 128)", "batch": "batch size"})
