"""Tables and figures of 03_obs, read from result records only: Table 3 beside the paper, the
one-shot comparison, F1-during-pruning curves (the paper's Figures 3-5), sparsity per layer
and throughput with speedups."""
from __future__ import annotations

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.report import plots, tables

PAPER_TABLE = "table3_unstructured_pruning"
# The paper's curve figures: (method, schedule) at 90% sparsity.
PAPER_FIGURES = {"Figure 3: OBS, cubic": ("obs", "cubic"), "Figure 4: OBS, linear": ("obs", "linear"),
                 "Figure 5: magnitude, cubic": ("magnitude", "cubic")}


def gradual(records: list[dict]) -> list[dict]:
    return [r for r in records if r["technique"].get("mode") == "gradual"]


def table3(records: list[dict]) -> pd.DataFrame:
    """Our gradual runs beside every row of the paper's Table 3 (F1 per language and split, mls)."""
    return tables.side_by_side(gradual(records), PAPER_TABLE)


def one_shot_table(records: list[dict]) -> pd.DataFrame:
    """Dev F1 per language and English loss of one-shot pruning (no retraining), dense first."""
    shots = [r for r in records if r["technique"].get("mode") == "one_shot"]
    if not shots:
        return pd.DataFrame()
    first = shots[0]
    rows = [{"method": "dense", "sparsity": 0.0, "loss_en": first["dense_loss"],
             **{f"f1_{lang}": s["dev"] for lang, s in first["dense_f1"].items()}}]
    rows += [{"method": r["technique"]["method"], "sparsity": r["technique"]["sparsity"], "loss_en": r["loss"],
              **{f"f1_{lang}": s["dev"] for lang, s in r["f1"].items()}} for r in shots]
    return pd.DataFrame(rows).set_index(["method", "sparsity"]).sort_index()


def curve_frame(records: list[dict]) -> pd.DataFrame:
    """Curve points of gradual runs in long form: run, step, phase, sparsity, lang, f1."""
    rows = []
    for r in gradual(records):
        for p in r.get("curve") or []:
            for lang, f1 in p["f1"].items():
                rows.append({"run": r["run"], "step": p["step"], "phase": p["phase"], "pruning_step": p["pruning_step"],
                             "sparsity": p["sparsity"], "lang": lang, "f1": f1})
    return pd.DataFrame(rows)


def curve_figure(records: list[dict], x: str = "step", title: str = "Dev F1 during gradual pruning") -> go.Figure:
    """F1 per language against optimizer step (or sparsity), one panel per run; each pruning step
    shows as a drop between its "before" and "after" points."""
    frame = curve_frame(records)
    fig = px.line(frame, x=x, y="f1", color="lang", facet_col="run", facet_col_wrap=3, markers=True,
                  hover_data=["phase", "pruning_step", "sparsity"], range_y=[0, 1], title=title,
                  labels={"step": "optimizer step", "f1": "dev entity F1", "sparsity": "global sparsity"})
    return plots.value_facet_titles(fig)


def paper_figure_records(records: list[dict], sparsity: float = 0.9) -> dict[str, dict]:
    """The latest gradual run matching each of the paper's Figures 3-5 (unstructured, no KD)."""
    found = {}
    for label, (method, schedule) in PAPER_FIGURES.items():
        match = [r for r in gradual(records) if r["technique"]["method"] == method
                 and r["technique"]["schedule"] == schedule and abs(r["technique"]["sparsity"] - sparsity) < 1e-9
                 and r["technique"].get("group_size", 1) == 1 and not r["technique"].get("kd")]
        if match:
            found[label] = max(match, key=lambda r: r["started"])
    return found


def paper_figures(records: list[dict]) -> go.Figure | None:
    """Figures 3-5 side by side from whichever of their runs exist (None if none does)."""
    chosen = paper_figure_records(records)
    if not chosen:
        return None
    relabelled = [r | {"run": label} for label, r in chosen.items()]
    return curve_figure(relabelled, title="Figures 3-5: dev F1 per language while pruning to 90%")


def sparsity_figure(records: list[dict]) -> go.Figure:
    """Achieved sparsity per transformer layer of each gradual run (global sparsity differs by layer)."""
    rows = [{"run": r["run"], "layer": int(layer), "sparsity": s}
            for r in gradual(records) for layer, s in r["sparsity"]["per_layer"].items()]
    return px.line(pd.DataFrame(rows), x="layer", y="sparsity", color="run", markers=True, range_y=[0, 1],
                   title="Sparsity per layer (global pruning decides how much each layer loses)")


def throughput_table(record: dict) -> pd.DataFrame:
    """Items/s and speedup over the dense graph in onnxruntime, per graph, runtime and batch."""
    frame = pd.DataFrame(record["throughput"])
    ok = frame[frame["status"] == "ok"]
    if ok.empty:
        return frame[["model", "runtime", "batch", "status", "error"]]
    return ok.pivot_table(index=["model", "runtime"], columns="batch", values=["items_per_s", "speedup"])
