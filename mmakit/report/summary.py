"""The study's summary, read only from result records: every run's quality and speed side by
side with what each technique costs against our own baseline, each notebook beside the paper's
table (only runs made as the paper makes them; the rest in `variants`), and the frontier between
quality and CPU throughput with the paper's combined models as reference points. Data settings
(groups.setting) and CPU classes (groups.cpu_class) are kept apart everywhere: a separate
series, panel or index level each, never one comparison."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import tables
from mmakit.report.bootstrap import Bootstrap
from mmakit.report.groups import by_cpu, cpu_class, is_zero_shot, setting
from mmakit.report.paired import Study
from mmakit.report.pruning import PAPER, regime
from mmakit.study.data_setting import DATA_SETTINGS, ENGLISH_ONLY
from mmakit.study.provenance import library_mismatches

COMBINED_TABLE, COMBINED_SPEED = "table8_combined", "table10_final_throughput"  # the paper's points on the frontier
PAPER_TABLE_OF = {
    "01_baselines": "table1_baselines",
    "03_obs": "table3_unstructured_pruning",
    "04_distillation": "table4_distillation",
    "05_quantization": "table6_quantization",
    "06_combined": "table8_combined",
}


def own_timings(record: dict) -> list[dict]:
    """The run's timings of its own model: without the dense reference timed beside it (03 and 04
    time both in one run), unless the dense model is all the run has."""
    timed = [t for t in record.get("throughput") or [] if t.get("status") == "ok" and t.get("speedup") is not None]
    own = [t for t in timed if t.get("model") != "dense"]
    return own or timed


def best_speedup(record: dict, runtime: str) -> float | None:
    """The largest measured speedup of a run's model in `runtime` over its dense fp32 onnxruntime reference."""
    ratios = [t["speedup"] for t in own_timings(record) if t.get("runtime") == runtime]
    return max(ratios) if ratios else None


def is_dirty(record: dict) -> bool:
    """Whether the run's code had uncommitted changes (older records mark it in the commit name)."""
    env = record.get("env", {})
    return bool(env.get("dirty")) or str(env.get("git_commit") or "").endswith("-dirty")


def other_stack(record: dict) -> str:
    """The libraries that move numbers whose versions differ from those installed now, e.g.
    "transformers 5.25.0 (installed 5.23.0)"; empty when the record was made with this stack."""
    return ", ".join(f"{name} {made} (installed {now})" for name, (made, now) in library_mismatches(record.get("env") or {}).items())


def at_chosen_point(record: dict) -> dict:
    """A 02 record as the point a user would deploy: its `chosen` iteration (the most pruned
    one over the quality line on dev; F1, mls and timings of that graph), or, when no iteration
    reached the line, its last iteration named so. Other records are returned as they are."""
    if record["notebook"] != "02_heads" or "chosen" not in record:
        return record
    chosen = record["chosen"]
    if chosen is None:
        return record | {"run": f"{record['run']} (last iteration: none over the line)"}
    timings = [t for t in record.get("throughput") or [] if t.get("model") == chosen["graph"]]
    return record | {"run": f"{record['run']} @ {chosen['heads_removed']} heads", "f1": chosen["f1"],
                     "mls": chosen["mls"], "throughput": timings}


def headline(records: list[dict]) -> list[dict]:
    """The records a summary shows (02's at their chosen point): one-shot probes and per-seed
    runs that a seed aggregate summarises are left out, as are 01's tagged checks (lr, precision)."""
    aggregated = {run for r in records for run in r.get("aggregate_of", ())}
    return [at_chosen_point(r) for r in records if r["technique"].get("mode") != "one_shot" and r["run"] not in aggregated
            and not (r["notebook"] == "01_baselines" and r.get("params", {}).get("run_tag"))]


def studies(records: Sequence[Mapping], bootstrap: Bootstrap | None = None) -> dict[str, Study]:
    """One Study (records indexed for pairing) per CPU class."""
    return {cpu: Study(group, bootstrap) for cpu, group in by_cpu(records).items()}


def summary(records: list[dict], bootstrap: Bootstrap | None = None) -> pd.DataFrame:
    """One row per headline run: its data setting and CPU class, the number of seeds behind the
    numbers, test F1 per language, mls (against the paper's mlbert row) with its 95% interval over
    seeds, `vs baseline` the change in mls against our own dense baseline with its interval and
    basis (paired.Study.cost), best speedups per runtime, the commit, whether that tree was
    dirty, and the libraries whose versions differ from the installed ones (such a record is stale)."""
    by_class = studies(records, bootstrap)
    rows = []
    for r in headline(records):
        study = by_class[cpu_class(r)]
        mls, cost = study.mean(r), study.cost(r)
        row = {"notebook": r["notebook"], "run": r["run"], "setting": setting(r), "cpu": cpu_class(r),
               "method": r["technique"].get("method"), "seeds": len(r.get("aggregate_of") or [r["run"]])}
        row |= {f"f1_{lang}_test": r["f1"].get(lang, {}).get("test") for lang in ("en", "es", "nl")}
        row |= {"mls_test": r["mls"].get("test"), "mls_low": mls.low, "mls_high": mls.high,
                "vs baseline": cost.value, "vs baseline low": cost.low, "vs baseline high": cost.high,
                "vs baseline basis": cost.basis}
        row |= {f"speedup_{rt}": best_speedup(r, rt) for rt in ("onnxruntime", "deepsparse")}
        row |= {"commit": r.get("env", {}).get("git_commit"), "dirty": is_dirty(r), "other libraries": other_stack(r)}
        rows.append(row)
    return pd.DataFrame(rows).set_index(["notebook", "run"]) if rows else pd.DataFrame()


def as_the_paper_runs(record: Mapping) -> bool:
    """Whether a run is made as the paper makes its runs, so it may stand beside the paper's
    rows: english-only data without a task-agnostic stage on generic text, and for 03's gradual
    runs pruned as the paper prunes that method."""
    if not is_zero_shot(record) or record["technique"].get("generic_langs"):
        return False
    gradual = record["notebook"] == "03_obs" and record["technique"].get("mode") == "gradual"
    return not gradual or regime(record["technique"]) == PAPER


def _with_interval(frame: pd.DataFrame, records: Sequence[Mapping], study: Study) -> pd.DataFrame:
    """`frame` (a seed or side-by-side table) with the 95% interval of our rows' test mls (t over seeds)."""
    shown = {r["run"]: study.mean(r).text() for r in records}
    return frame.assign(**{"mls_test 95%": [shown.get(label, "") for label in frame.index.get_level_values("label")]})


def comparisons(records: list[dict]) -> dict[str, pd.DataFrame]:
    """Each notebook's headline runs made as the paper makes them (`as_the_paper_runs`) beside
    its paper table, per CPU class, keyed `<notebook> vs paper <table> on <cpu class>`: seed
    aggregates with their sd and the 95% interval of test mls. The other runs are in `variants`."""
    out = {}
    for cpu, study in sorted(studies(records).items()):
        for notebook, table in PAPER_TABLE_OF.items():
            ours = [r for r in headline(study.records) if r["notebook"] == notebook and as_the_paper_runs(r)]
            if ours:
                seeded = any(r.get("aggregate_of") for r in ours)
                frame = tables.seed_table(ours, table) if seeded else tables.side_by_side(ours, table)
                out[f"{notebook} vs paper {table} on {cpu}"] = _with_interval(frame, ours, study)
    return out


def variants(records: list[dict], bootstrap: Bootstrap | None = None) -> pd.DataFrame:
    """The headline runs kept away from the paper's rows, each with `why`: another data setting
    (e.g. target-unlabelled), or for 03 another pruning regime (pruning.regime)."""
    kept = {(r["notebook"], r["run"]): r for r in headline(records) if not as_the_paper_runs(r)}
    if not kept:
        return pd.DataFrame()
    frame = summary(records, bootstrap).loc[list(kept)]
    why = [_why_apart(r) for r in kept.values()]
    return frame.assign(why=why)


def _why_apart(record: Mapping) -> str:
    """Why a run is not set beside the paper's rows: its data setting, its task-agnostic stage, or 03's regime."""
    if not is_zero_shot(record):
        return setting(record)
    if record["technique"].get("generic_langs"):
        return f"task-agnostic stage on generic {','.join(record['technique']['generic_langs'])} text"
    return f"03 regime: {regime(record['technique'])}"


def per_type_frame(records: list[dict], split: str = "test") -> pd.DataFrame:
    """Entity F1 per type (rows: run; columns: language / type) on `split`, from the records."""
    rows = {}
    for r in headline(records):
        cells = {f"{lang} {kind}": f1 for lang, splits in (r.get("per_type") or {}).items()
                 for kind, f1 in splits.get(split, {}).items()}
        if cells:
            rows[f"{r['notebook'][:2]} {r['run']}"] = cells
    return pd.DataFrame.from_dict(rows, orient="index").sort_index(axis=1)


def per_type_heatmap(frame: pd.DataFrame, title: str) -> go.Figure:
    """`per_type_frame` as a heatmap: where each run loses which entity type in which language."""
    fig = px.imshow(frame, text_auto=".2f", zmin=0, zmax=1, color_continuous_scale="Viridis", aspect="auto",
                    title=title, labels={"x": "language / entity type", "y": "run", "color": "F1"})
    return fig.update_layout(height=max(300, 28 * len(frame) + 150))


def speedup_at(record: dict, runtime: str, batch: int = 4) -> float | None:
    """A run's measured speedup over dense fp32 onnxruntime in `runtime` at `batch`."""
    found = [t["speedup"] for t in own_timings(record) if t.get("runtime") == runtime and t.get("batch") == batch]
    return max(found) if found else None


def frontier_frame(records: list[dict], batch: int = 4) -> pd.DataFrame:
    """One point per headline run (seed aggregates in place of their seeds) and runtime: test mls
    against speedup over dense onnxruntime at `batch`, with its data setting and CPU class, and
    `frontier` marking the runs no other run of the same setting and CPU class beats on both."""
    rows = []
    for r in headline(records):
        mls_test = (r.get("mls") or {}).get("test")
        for runtime in ("onnxruntime", "deepsparse"):
            ratio = speedup_at(r, runtime, batch)
            if mls_test is not None and ratio is not None:
                rows.append({"run": f"{r['notebook'][:2]} {r['run']}", "notebook": r["notebook"], "runtime": runtime,
                             "speedup": ratio, "mls_test": mls_test, "setting": setting(r), "cpu": cpu_class(r)})
    frame = pd.DataFrame(rows)
    if frame.empty:
        return frame
    frame["frontier"] = False
    for _, group in frame.groupby(["cpu", "setting"]):
        for i, s, m in zip(group.index, group.speedup, group.mls_test):
            beaten = (group.speedup >= s) & (group.mls_test >= m) & ((group.speedup > s) | (group.mls_test > m))
            frame.loc[i, "frontier"] = not beaten.any()
    return frame


def fastest_meeting(records: list[dict], line: float | None = None, batches: tuple[int, ...] = (1, 4, 8)) -> pd.DataFrame:
    """Per CPU class, data setting, batch and runtime, the fastest run whose test mls is `line`
    or better (default the paper's `xlm 90 q`), with its speedup and mls."""
    line = paper.quality_line() if line is None else line
    rows = []
    for batch in batches:
        frame = frontier_frame(records, batch)
        if frame.empty:
            continue
        meeting = frame[frame.mls_test >= line]
        for (cpu, data, runtime), group in meeting.groupby(["cpu", "setting", "runtime"]):
            best = group.loc[group.speedup.idxmax()]
            rows.append({"cpu": cpu, "setting": data, "batch": batch, "runtime": runtime, "run": best.run,
                         "speedup": best.speedup, "mls_test": best.mls_test})
    columns = ["cpu", "setting", "batch", "runtime", "run", "speedup", "mls_test"]
    return pd.DataFrame(rows, columns=columns).set_index(["cpu", "setting", "batch", "runtime"]).sort_index()


def paper_points() -> pd.DataFrame:
    """The paper's three combined models: test mls and deepsparse speedup over its dense xlm in onnxruntime (batch 4)."""
    f1 = paper.f1_table(COMBINED_TABLE)
    speed = paper.throughput_table(COMBINED_SPEED)
    ds = speed[(speed["runtime"] == "deepsparse") & (speed["batch"] == 4)].set_index("row")["items_per_s"]
    return pd.DataFrame([{"run": f"paper {name}", "speedup": ds[name] / paper.dense_throughput(), "mls_test": f1.loc[name, "mls_test"]}
                         for name in f1.index if name in ds.index])


def frontier_figure(records: list[dict], batch: int = 4) -> go.Figure:
    """Test mls against speedup over dense fp32 onnxruntime for every run of the study, a marker
    per runtime, one panel per data setting (and a row per CPU class when there are several),
    each panel's frontier drawn; the paper's combined models, all english-only, as labelled
    reference points in the english-only panels."""
    frame = frontier_frame(records, batch)
    if frame.empty:
        return go.Figure(layout={"title": "no timed runs with test mls yet"})
    settings = [s for s in DATA_SETTINGS if s in set(frame.setting)]
    cpus = sorted(set(frame.cpu))
    fig = px.scatter(frame, x="speedup", y="mls_test", color="notebook", symbol="runtime", hover_name="run",
                     facet_col="setting", facet_row="cpu" if len(cpus) > 1 else None,
                     category_orders={"setting": settings, "cpu": cpus},
                     title=f"Quality against speed (batch {batch}); only english-only runs are zero-shot",
                     labels={"speedup": "speedup over dense fp32 onnxruntime", "mls_test": "test mls"})
    ref = paper_points()
    for i, cpu in enumerate(cpus):
        row = len(cpus) - i  # plotly express draws the first facet row on top, which is subplot row n
        for col, data in enumerate(settings, start=1):
            edge = frame[frame.frontier & (frame.cpu == cpu) & (frame.setting == data)].sort_values("speedup")
            fig.add_trace(go.Scatter(x=edge.speedup, y=edge.mls_test, mode="lines", name=f"frontier ({data}, {cpu})",
                                     line={"dash": "dot", "color": "grey"}), row=row, col=col)
            if data == ENGLISH_ONLY:
                fig.add_trace(go.Scatter(x=ref.speedup, y=ref.mls_test, mode="markers+text", text=ref.run,
                                         name="paper (deepsparse, english-only)", textposition="top center",
                                         showlegend=i == 0, marker={"symbol": "star", "size": 12, "color": "black"}),
                              row=row, col=col)
    fig.add_hline(y=paper.quality_line(), line={"dash": "dash", "color": "grey"},
                  annotation_text="quality line", annotation_position="top left")
    fig.update_traces(cliponaxis=False, selector={"type": "scatter"})
    return fig.update_layout(height=500 * len(cpus), margin={"t": 90, "b": 150},
                             legend={"orientation": "h", "yanchor": "top", "y": -0.18, "xanchor": "left", "x": 0})
