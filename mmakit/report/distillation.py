"""Tables and figures of 04_distillation from its records: Table 4 (F1 and mls per student and
teacher, mean and spread over seeds, beside the paper's rows), Table 5 (items/s and speedup over
the dense 12-layer graph in onnxruntime, from the same interleaved runs), F1 against speedup,
and the teacher's effect on mls measured against the seed spread."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.core import paper
from mmakit.report import tables

PAPER_TABLE = "table4_distillation"
PAPER_SPEED = "table5_distilled_throughput"
DENSE, STUDENT = "dense", "student"


def runs(records: list[dict]) -> list[dict]:
    """The per-seed distillation runs (no seed aggregates)."""
    return [r for r in records if r["technique"].get("method") == "distil" and not r.get("aggregate_of")]


def aggregates(records: list[dict]) -> list[dict]:
    """The seed aggregates (one per student x teacher x KD setting)."""
    return [r for r in records if r["technique"].get("method") == "distil" and r.get("aggregate_of")]


def student_of(record: dict) -> str:
    """e.g. `L6 [1,3,5,7,9,11]`, or a hub student's name with its layer count."""
    t = record["technique"]
    if t.get("student_model"):
        return f"{t['student_model']} (L{t['num_layers']})"
    return f"L{t['num_layers']} [{','.join(map(str, t['layers']))}]"


def label(record: dict) -> str:
    """e.g. `L6 [1,3,5,7,9,11] kd (h=1.0, T=2.0)`, `L3 [3,7,11] no teacher`, or with
    `+ unlabelled es,nl (beyond the paper)`."""
    t = record["technique"]
    how = f"kd (h={t['hardness']}, T={t['temperature']})" if t["teacher"] else "no teacher"
    if t.get("intermediate"):
        how += f" + hidden MSE x{t['intermediate']}"
    if t.get("student_steps"):
        how += f", {t['student_steps']} steps"
    if t.get("unlabelled_langs"):
        how += f" + unlabelled {','.join(t['unlabelled_langs'])} (beyond the paper)"
    steps = stage_steps(record)
    stage = (f" after generic {','.join(t['generic_langs'])} text" + (f" ({steps} stage steps)" if steps else "")
             if t.get("generic_langs") else "")
    return f"{student_of(record)}{stage} {how}"


def _stage(record: dict) -> dict:
    """The record of a student's task-agnostic stage (steps, passes, curve...), empty without one."""
    return record.get("task_agnostic") or {}


def stage_steps(record: dict) -> int | None:
    """The optimizer steps of a student's task-agnostic stage, None without one."""
    return _stage(record).get("steps")


SAME_STUDENT = ("num_layers", "teacher", "hardness", "temperature", "student_steps")


def stage_choices(records: list[dict]) -> list[tuple[str, dict, dict]]:
    """(what changed, student, reference) for each task-agnostic stage choice made alone: the
    reference is the same student (size, teacher, KD settings) taught on the widest generic text
    with output KD only for the shortest stage; a choice is the hidden-state loss on that text,
    fewer generic languages (the ablations: does Spanish and Dutch text matter?) or a longer stage."""
    generic = [r for r in aggregates(records) if r["technique"].get("generic_langs")]
    widest = max((len(r["technique"]["generic_langs"]) for r in generic), default=0)
    plain = [r for r in generic if len(r["technique"]["generic_langs"]) == widest and not r["technique"].get("intermediate")]
    shortest = min((stage_steps(r) or 0 for r in plain), default=0)
    out = []
    for ref in (r for r in plain if (stage_steps(r) or 0) == shortest):
        for r in generic:
            same_student = all(r["technique"].get(k) == ref["technique"].get(k) for k in SAME_STUDENT)
            what = _stage_choice(r, ref) if same_student and r is not ref else None
            if what:
                out.append((what, r, ref))
    return out


def _stage_choice(student: dict, reference: dict) -> str | None:
    """What `student`'s stage changes from `reference`'s, when it changes exactly one thing."""
    t, ref = student["technique"], reference["technique"]
    same_text, same_steps = t["generic_langs"] == ref["generic_langs"], stage_steps(student) == stage_steps(reference)
    if t.get("intermediate") and same_text and same_steps:
        return f"L{t['num_layers']}: + hidden MSE x{t['intermediate']}"
    if t.get("intermediate"):
        return None
    if same_steps and not same_text:
        return f"L{t['num_layers']}: generic {','.join(t['generic_langs'])} only"
    if same_text and not same_steps:
        return f"L{t['num_layers']}: {stage_steps(student)} stage steps ({_stage(student).get('passes')} passes)"
    return None


def table4(records: list[dict]) -> pd.DataFrame:
    """F1 per language and split and mls, mean and sd over seeds per student and teacher
    setting, then the paper's rows (labelled `paper`)."""
    found = aggregates(records)
    if not found:  # no aggregate yet (e.g. run_name given): single runs as they are
        return tables.side_by_side([r | {"run": label(r)} for r in runs(records)], PAPER_TABLE)
    return tables.seed_table([r | {"run": label(r)} for r in found], PAPER_TABLE)


def _speed_rows(records: list[dict]) -> pd.DataFrame:
    rows = []
    for r in runs(records):
        for t in r.get("throughput") or []:
            if t.get("status") == "ok":
                graph = (f"L{r['technique']['num_layers']} student" if t["model"] == STUDENT
                         else f"dense L{r.get('dense_layers', 12)}")
                rows.append({"graph": graph, "runtime": t["runtime"], "batch": t["batch"],
                             "items_per_s": t["items_per_s"], "speedup": t.get("speedup"), "run": r["run"]})
    return pd.DataFrame(rows)


def table5(records: list[dict]) -> pd.DataFrame:
    """Items/s per graph, runtime and batch, and speedup over the dense (12-layer) graph in onnxruntime at
    the same batch measured in the same run: the median over every run (each run times its student
    beside the dense graph; on shared cores single runs swing by a quarter), the lowest and highest
    speedup, and `runs` how many."""
    frame = _speed_rows(records)
    if frame.empty:
        return frame
    grouped = frame.groupby(["graph", "runtime", "batch"]).agg(
        items_per_s=("items_per_s", "median"), speedup=("speedup", "median"), lowest=("speedup", "min"),
        highest=("speedup", "max"), runs=("run", "nunique"))
    return grouped.unstack("batch")


def paper_table5() -> pd.DataFrame:
    """The paper's Table 5 (items/s, bert-base-sized students on an 8-core i7) for reference."""
    return paper.throughput_table(PAPER_SPEED).pivot_table(index=["row", "runtime"], columns="batch",
                                                           values="items_per_s")


def speedup_of(record: dict, batch: int = 4, runtime: str = "onnxruntime") -> float | None:
    """The student's speedup over dense onnxruntime at `batch` (else the largest batch timed)."""
    rows = [t for t in record.get("throughput") or [] if t["model"] == STUDENT and t["runtime"] == runtime
            and t.get("status") == "ok" and t.get("speedup") is not None]
    chosen = [t for t in rows if t["batch"] == batch] or sorted(rows, key=lambda t: t["batch"])[-1:]
    return chosen[0]["speedup"] if chosen else None


def f1_speed_frame(records: list[dict], batch: int = 4, split: str = "test") -> pd.DataFrame:
    """One row per run and zero-shot language: F1 on `split`, speedup, teacher, student."""
    return pd.DataFrame([
        {"run": r["run"], "student": f"L{r['technique']['num_layers']}", "teacher": bool(r["technique"]["teacher"]),
         "seed": r["technique"].get("seed"), "lang": lang, "f1": r["f1"][lang][split], "speedup": speedup_of(r, batch)}
        for r in runs(records) for lang in ("es", "nl") if lang in r["f1"]
    ])


def f1_speed_figure(records: list[dict], batch: int = 4, split: str = "test") -> go.Figure:
    """es and nl F1 against the student's speedup over dense onnxruntime, teacher vs no teacher
    (one point per run and language)."""
    frame = f1_speed_frame(records, batch, split)
    if frame.empty:
        return go.Figure(layout={"title": "no distillation runs yet"})
    frame = frame.assign(teacher=frame["teacher"].map({True: "with teacher", False: "no teacher"}))
    return px.scatter(frame, x="speedup", y="f1", color="teacher", symbol="lang", hover_data=["run", "student", "seed"],
                      title=f"Zero-shot F1 ({split}) against speedup over the dense model (onnxruntime, batch {batch})",
                      labels={"speedup": "speedup over dense L12 (onnxruntime)", "f1": f"entity F1 ({split})"})


def teacher_effect(records: list[dict]) -> pd.DataFrame:
    """With minus without the teacher, per student, split and measure (mls and F1 per
    language), paired by seed: mean, sample sd over seeds, number of pairs, and the mean in
    units of that sd. Only settings run both ways with the same seed count."""
    out = []
    by_student: dict[str, dict[bool, dict[int, dict]]] = {}
    for r in runs(records):
        t = r["technique"]
        if t.get("unlabelled_langs") or t.get("intermediate"):
            continue  # compared with output KD on English alone, not here
        by_student.setdefault(student_of(r), {}).setdefault(bool(t["teacher"]), {})[t.get("seed")] = r
    for student, sides in by_student.items():
        seeds = sorted(set(sides.get(True, {})) & set(sides.get(False, {})))
        if not seeds:
            continue
        on, off = sides[True], sides[False]
        measures = {f"mls_{split}": lambda r, s=split: r["mls"].get(s) for split in ("dev", "test")}
        measures |= {f"{lang}_{split}": lambda r, lang=lang, s=split: r["f1"].get(lang, {}).get(s)
                     for lang in ("en", "es", "nl") for split in ("dev", "test")}
        for name, get in measures.items():
            diffs = [get(on[s]) - get(off[s]) for s in seeds if get(on[s]) is not None and get(off[s]) is not None]
            if not diffs:
                continue
            sd = float(np.std(diffs, ddof=1)) if len(diffs) > 1 else None
            mean = float(np.mean(diffs))
            out.append({"student": student, "measure": name, "mean": mean,
                        "sd": sd, "pairs": len(diffs), "mean / sd": mean / sd if sd else None})
    return pd.DataFrame(out).set_index(["student", "measure"]) if out else pd.DataFrame()


def staged(records: list[dict]) -> list[dict]:
    """The per-seed runs whose student went through the task-agnostic stage."""
    return [r for r in records if r.get("task_agnostic") and not r.get("aggregate_of")]


def stage_curve_figure(records: list[dict]) -> go.Figure | None:
    """The task-agnostic stage's loss against the pretrained encoder (train and held out) over
    its steps, a line per run; None without staged runs."""
    runs = staged(records)
    if not runs:
        return None
    curves = pd.DataFrame([p | {"run": r["run"]} for r in runs for p in r["task_agnostic"]["curve"]])
    curves = curves.melt(id_vars=["run", "step"], value_vars=["train", "held_out"], var_name="loss").dropna()
    return px.line(curves, x="step", y="value", color="run", line_dash="loss", markers=True,
                   title="Task-agnostic stage: student vs pretrained encoder (hidden MSE + attention/value KL)")


def stage_table(records: list[dict]) -> pd.DataFrame:
    """Per staged run: languages, sentences, steps, passes over the text, minutes, final held-out loss."""
    return pd.DataFrame([{"run": r["run"], **{k: r["task_agnostic"][k] for k in ("langs", "sentences", "steps", "passes")},
                          "minutes": r["task_agnostic"]["wall_s"] / 60,
                          "held-out loss": r["task_agnostic"]["curve"][-1]["held_out"]} for r in staged(records)])
