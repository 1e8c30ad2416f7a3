"""Tables and figures of 03_obs, read from result records only: Table 3 (mean and spread over
seeds, runs pruned as the paper prunes each method) beside the paper and every other setting
labelled by its regime, the one-shot curve and the OBS damp sweep, every method against the
random control, OBS's cost per pruning step, F1-during-pruning curves (the paper's Figures 3-5),
sparsity per layer, throughput with speedups, and the diagnostics of movement in both regimes
(benchmarks/movement_diagnostics.py's result)."""
from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.express as px
import plotly.graph_objects as go

from mmakit.report import plots, tables

PAPER_TABLE = "table3_unstructured_pruning"
# The paper's curve figures: (method, schedule) at 90% sparsity.
PAPER_FIGURES = {"Figure 3: OBS, cubic": ("obs", "cubic"), "Figure 4: OBS, linear": ("obs", "linear"),
                 "Figure 5: magnitude, cubic": ("magnitude", "cubic")}
SWEEP_SPARSITIES = (0.5, 0.6, 0.7)  # where METHODS.md tunes the damp
LANGS = ("en", "es", "nl")
PAPER, NOT_APPLICABLE = "paper", "not applicable from a converged model"


def gradual(records: list[dict]) -> list[dict]:
    """Per-seed gradual runs (seed aggregates left out)."""
    return [r for r in records if r["technique"].get("mode") == "gradual" and not r.get("aggregate_of")]


def aggregates(records: list[dict]) -> list[dict]:
    """Seed aggregates of gradual runs (one per method x sparsity x schedule)."""
    return [r for r in records if r["technique"].get("mode") == "gradual" and r.get("aggregate_of")]


def label(record: dict) -> str:
    """e.g. `me5-small obs 80% cubic`, `me5-small movement 80% cubic per-tensor trained scores,
    from pretrained (from0)`, `xlm magnitude 90% cubic 4-block, no KD` or `me5-small movement 80%
    cubic, not applicable from a converged model`."""
    t = record["technique"]
    text = f"{record['params']['model']} {t['method']} {round(100 * t['sparsity'])}% {t['schedule']}"
    text += " per-tensor" if t.get("selection") == "per_tensor" else ""
    text += " trained scores" if t.get("scores") == "trained" else ""
    text += (" 4-block" if t.get("group_size", 1) == 4 else "") + ("" if t.get("kd") else ", no KD")
    text += ", from pretrained" if t.get("start") == "pretrained" else ""
    text += f", {NOT_APPLICABLE}" if regime(t) == NOT_APPLICABLE else ""
    return text + (f" ({t['variant']})" if t.get("variant") else "")


def as_the_paper_prunes(technique: dict) -> bool:
    """Whether a gradual run prunes as the paper's Table 3 and Figures 3-5 do, each method from
    its own article: unstructured with KD, and for OBS, magnitude (and the random control) the
    fine-tuned model, one global ranking, the profile's schedule (no variant); for movement Sanh
    et al.'s regime: trained scores, per-tensor TopK, from the pre-trained encoder, sparsity
    from 0 (the schedule is its own, so a variant label is allowed)."""
    t = technique
    if t.get("group_size", 1) != 1 or not t.get("kd"):
        return False
    if t["method"] == "movement":
        return (t.get("scores") == "trained" and t.get("selection") == "per_tensor" and t.get("start") == "pretrained"
                and not t.get("initial_sparsity"))
    return (t.get("selection", "global") == "global" and t.get("start", "baseline") == "baseline"
            and not t.get("variant"))


def regime(technique: dict) -> str:
    """"paper" for a run pruned as the paper prunes its method; "not applicable from a converged
    model" for movement pruning the fine-tuned baseline (its scores are noise there:
    movement_diagnostics_table); "from pretrained" for the other runs of Sanh et al.'s regime
    (the controls of movement); else "variant"."""
    if as_the_paper_prunes(technique):
        return PAPER
    if technique["method"] == "movement" and technique.get("start", "baseline") == "baseline":
        return NOT_APPLICABLE
    return "from pretrained" if technique.get("start") == "pretrained" else "variant"


def table3(records: list[dict]) -> pd.DataFrame:
    """Our gradual runs pruned as the paper prunes each method (`as_the_paper_prunes`; mean and
    sd over seeds, `seeds` how many) beside every row of the paper's Table 3; the rest are in
    `other_settings`."""
    found = [r for r in aggregates(records) if as_the_paper_prunes(r["technique"])]
    if not found:  # no aggregate yet (e.g. run_name given): single runs as they are
        return tables.side_by_side([r for r in gradual(records) if as_the_paper_prunes(r["technique"])], PAPER_TABLE)
    return tables.seed_table([r | {"run": label(r)} for r in sorted(found, key=label)], PAPER_TABLE)


def other_settings(records: list[dict], split: str = "test") -> pd.DataFrame:
    """The gradual settings left out of Table 3 (seed means, `seeds` how many), each with its
    `regime`: movement from the converged model, the controls of Sanh et al.'s regime, variants."""
    runs = aggregates(records) or gradual(records)
    rows = [{"run": label(r), "regime": regime(r["technique"]), "seeds": len(r.get("aggregate_of") or [r["run"]]),
             **{f"f1_{lang}": r["f1"][lang][split] for lang in LANGS}, "mls": r["mls"][split]}
            for r in sorted(runs, key=label) if not as_the_paper_prunes(r["technique"])]
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


def retention(records: list[dict], dense_f1: dict, split: str = "test") -> pd.DataFrame:
    """F1 kept per language (pruned / the dense baseline's `dense_f1`, same split), mean, sd and
    count over seeds: English should keep the most; the paper's contrast is how much es and nl
    keep beside it."""
    rows = [{"run": label(r), **{lang: r["f1"][lang][split] / dense_f1[lang][split] for lang in LANGS}}
            for r in gradual(records)]
    return pd.DataFrame(rows).groupby("run").agg(["mean", "std", "count"]) if rows else pd.DataFrame()


def against_random(records: list[dict], split: str = "test") -> pd.DataFrame:
    """Each method's mean F1 per language minus the random control's at the same sparsity,
    schedule and start (the control's seeds averaged), with the method's seed sd beside it."""
    runs = gradual(records)

    def key(r: dict) -> tuple:
        """Everything but the criterion: the same model, sparsity, schedule, distillation and start."""
        t = r["technique"]
        return (r["params"]["model"], t["sparsity"], t["schedule"], t.get("group_size", 1), t.get("kd"),
                t.get("initial_sparsity"), t.get("pruning_steps"), t.get("start", "baseline"))

    chance: dict[tuple, list[dict]] = {}
    for r in runs:
        if r["technique"]["method"] == "random":
            chance.setdefault(key(r), []).append(r)
    rows = []
    for r in runs:
        base = chance.get(key(r))
        if r["technique"]["method"] == "random" or not base:
            continue
        rows.append({"run": label(r), **{lang: r["f1"][lang][split] - np.mean([b["f1"][lang][split] for b in base])
                                         for lang in LANGS}})
    return pd.DataFrame(rows).groupby("run").agg(["mean", "std", "count"]) if rows else pd.DataFrame()


# --- one-shot: the curve and the damp sweep -------------------------------------------------

def one_shot_frame(records: list[dict]) -> pd.DataFrame:
    """Every one-shot record: method, damp (OBS), sparsity, English loss, dev F1 per language and
    its fraction of the dense model's, and the Fisher's degeneracy."""
    rows = []
    for r in records:
        if r["technique"].get("mode") != "one_shot":
            continue
        step = (r.get("pruning_steps") or [{}])[0]
        rows.append({"method": r["technique"]["method"], "damp": r["technique"].get("damp"),
                     "sparsity": r["technique"]["sparsity"], "loss_en": r["loss"], "dense_loss_en": r["dense_loss"],
                     **{f"f1_{lang}": s["dev"] for lang, s in r["f1"].items()},
                     **{f"kept_{lang}": s["dev"] / r["dense_f1"][lang]["dev"] for lang, s in r["f1"].items()
                        if r["dense_f1"][lang]["dev"]},
                     "degeneracy": step.get("degeneracy"), "eval_samples": r.get("eval_samples")})
    return pd.DataFrame(rows)


def damp_sweep(records: list[dict]) -> pd.DataFrame:
    """OBS one-shot English loss and dev F1 per damp (rows) and sparsity, with the Fisher's
    degeneracy: the sweep that picks the damp."""
    frame = one_shot_frame(records)
    if frame.empty or "obs" not in set(frame["method"]):
        return pd.DataFrame()
    obs = frame[frame["method"] == "obs"]
    return obs.pivot_table(index="damp", columns="sparsity", values=["loss_en", "f1_en", "degeneracy"]).sort_index()


def best_damp(records: list[dict]) -> float | None:
    """The damp with the lowest mean English loss after one-shot OBS to 50-70% (METHODS.md's rule)."""
    frame = one_shot_frame(records)
    obs = frame[(frame["method"] == "obs") & frame["sparsity"].round(3).isin(SWEEP_SPARSITIES)] if not frame.empty else frame
    if obs.empty:
        return None
    return float(obs.groupby("damp")["loss_en"].mean().idxmin())


def one_shot_table(records: list[dict], damp: float | None = None) -> pd.DataFrame:
    """Dev F1 per language and English loss after one-shot pruning (OBS at `damp`, default the
    sweep's best), by method and sparsity, dense first."""
    frame = one_shot_frame(records)
    if frame.empty:
        return frame
    damp = damp if damp is not None else best_damp(records)
    same_damp = np.isclose(frame["damp"].astype(float).fillna(-1.0), damp or -1.0, rtol=1e-6, atol=0.0)
    frame = frame[(frame["method"] != "obs") | same_damp]
    first = next(r for r in records if r["technique"].get("mode") == "one_shot")
    dense = pd.DataFrame([{"method": "dense", "sparsity": 0.0, "loss_en": first["dense_loss"],
                           **{f"f1_{lang}": s["dev"] for lang, s in first["dense_f1"].items()}}])
    columns = ["method", "sparsity", "loss_en", *[f"f1_{lang}" for lang in LANGS], *[f"kept_{lang}" for lang in LANGS]]
    both = pd.concat([dense, frame.reindex(columns=columns)])
    return both.reindex(columns=columns).set_index(["method", "sparsity"]).sort_index()


def initial_sparsity(records: list[dict], keep: float = 0.9) -> float | None:
    """The highest one-shot sparsity at which OBS (best damp) keeps at least `keep` of the dense
    model's English dev F1: a sound first pruning event for the gradual schedule."""
    table = one_shot_table(records)
    if table.empty or "obs" not in table.index.get_level_values(0):
        return None
    kept = table.loc["obs", "kept_en"]
    ok = kept[kept >= keep]
    return float(ok.index.max()) if not ok.empty else None


def one_shot_figure(records: list[dict], keep: float = 0.9) -> go.Figure:
    """Dev F1 per language against one-shot sparsity, OBS (best damp), magnitude and random,
    with the line at `keep` of dense English F1 that sets the schedule's start."""
    table = one_shot_table(records).reset_index()
    table = table[table["method"] != "dense"]
    long = table.melt(id_vars=["method", "sparsity"], value_vars=[f"f1_{lang}" for lang in LANGS],
                      var_name="lang", value_name="f1").assign(lang=lambda f: f["lang"].str[3:])
    fig = px.line(long, x="sparsity", y="f1", color="method", facet_col="lang", markers=True, range_y=[0, 1],
                  title="One-shot pruning from the dense model, no retraining (dev subsets)",
                  labels={"sparsity": "global sparsity", "f1": "dev entity F1"})
    first = next((r for r in records if r["technique"].get("mode") == "one_shot"), None)
    if first:
        fig.add_hline(y=keep * first["dense_f1"]["en"]["dev"], line_dash="dot", col=1,
                      annotation_text=f"{keep:.0%} of dense en")
    return plots.value_facet_titles(fig)


# --- OBS's cost ------------------------------------------------------------------------------

def obs_cost(records: list[dict]) -> pd.DataFrame:
    """Per gradual OBS run: mean seconds per pruning step (gradients, inverse, saliency and
    update), the Fisher's memory, peak memory above the start, and degeneracy per step."""
    rows = []
    for r in gradual(records):
        steps = [s for s in r.get("pruning_steps") or [] if "fisher_seconds" in s]
        if not steps:
            continue
        inverse = [s.get("inverse_seconds", 0.0) for s in steps]
        rows.append({
            "run": r["run"], "m": steps[0]["num_grads"], "B": steps[0]["block_size"], "damp": steps[0]["damp"],
            "build": steps[0].get("fisher_build"), "steps": len(steps),
            "gradients s": np.mean([s["fisher_seconds"] - i for s, i in zip(steps, inverse)]),
            "inverse s": np.mean(inverse), "prune s": np.mean([s["prune_seconds"] for s in steps]),
            "fisher MB": steps[0]["fisher_mb"], "peak above start MB": max(s.get("peak_above_start_mb") or 0 for s in steps),
            "degeneracy per step": [round(s["degeneracy"], 3) for s in steps if s.get("degeneracy") is not None],
        })
    return pd.DataFrame(rows).set_index("run") if rows else pd.DataFrame()


# --- curves ----------------------------------------------------------------------------------

def curve_frame(records: list[dict]) -> pd.DataFrame:
    """Curve points of gradual runs in long form: run, seed, step, phase, sparsity, lang, f1."""
    rows = []
    for r in gradual(records):
        for p in r.get("curve") or []:
            for lang, f1 in p["f1"].items():
                rows.append({"run": r["run"], "seed": str(r["technique"].get("seed", "")), "step": p["step"],
                             "phase": p["phase"], "pruning_step": p["pruning_step"], "sparsity": p["sparsity"],
                             "lang": lang, "f1": f1})
    return pd.DataFrame(rows)


def curve_figure(records: list[dict], x: str = "step", title: str = "Dev F1 during gradual pruning") -> go.Figure:
    """F1 per language against optimizer step (or sparsity), one panel per run, a line style per
    seed; each pruning step shows as a drop between its "before" and "after" points."""
    frame = curve_frame(records)
    several = frame["seed"].nunique() > 1
    fig = px.line(frame, x=x, y="f1", color="lang", line_dash="seed" if several else None, facet_col="run",
                  facet_col_wrap=3, markers=True, hover_data=["phase", "pruning_step", "sparsity", "seed"],
                  range_y=[0, 1], title=title,
                  labels={"step": "optimizer step", "f1": "dev entity F1", "sparsity": "global sparsity"})
    return plots.value_facet_titles(fig)


def paper_figure_records(records: list[dict], sparsity: float = 0.9) -> dict[str, list[dict]]:
    """Every seed's gradual run matching each of the paper's Figures 3-5 (`as_the_paper_prunes`)."""
    found = {}
    for name, (method, schedule) in PAPER_FIGURES.items():
        match = [r for r in gradual(records) if r["technique"]["method"] == method
                 and r["technique"]["schedule"] == schedule and abs(r["technique"]["sparsity"] - sparsity) < 1e-9
                 and as_the_paper_prunes(r["technique"])]
        if match:
            found[name] = sorted(match, key=lambda r: r["technique"].get("seed", 0))
    return found


def paper_figures(records: list[dict]) -> go.Figure | None:
    """Figures 3-5 side by side from whichever of their runs exist (None if none does)."""
    chosen = paper_figure_records(records)
    if not chosen:
        return None
    relabelled = [r | {"run": name} for name, runs in chosen.items() for r in runs]
    return curve_figure(relabelled, title="Figures 3-5: dev F1 per language while pruning to 90% (a line per seed)")


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


# --- movement: why it fails, in both regimes -------------------------------------------------

CONVERGED = "fine-tuned model, accumulated scores"


def movement_regimes(bench: dict) -> dict[str, dict]:
    """The benchmark's sections by regime: the fine-tuned model's accumulated scores, and (when
    measured) the pre-trained encoder's trained scores after its steps of fine-tuning."""
    regimes = {CONVERGED: bench}
    if bench.get("trained"):
        regimes[f"pre-trained encoder, trained scores after {bench['trained']['steps']} steps"] = bench["trained"]
    return regimes


def movement_scores_summary(bench: dict) -> pd.DataFrame:
    """How much of the movement scores is signal, per regime: share of negative scores, rank
    correlation of |S| and of sign(S) with importance w^2 E[g^2], the median signal-to-noise
    ratio of accumulated sums (benchmarks/movement_diagnostics.py's result)."""
    return pd.DataFrame({name: pd.Series(part["scores"]) for name, part in movement_regimes(bench).items()})


def movement_diagnostics_table(part: dict) -> pd.DataFrame:
    """Per criterion, one per-tensor cut of one regime's model (a section of the benchmark) to the
    benchmark's sparsity: the share of the most important weights it removes, the share of rows
    and columns it cuts more than twice as deep (whole units hit), and dev F1 per language without
    retraining, the uncut model first."""
    rows = [{"criterion": "dense", "top_removed": 0.0, "lines_over_2x": 0.0, **{f"f1_{k}": v for k, v in part["dense_f1"].items()}}]
    rows += [{"criterion": name, "top_removed": row["top_removed"], "lines_over_2x": row["lines_over_2x"],
              **{f"f1_{k}": v for k, v in row["f1"].items()}} for name, row in part["criteria"].items()]
    return pd.DataFrame(rows).set_index("criterion")


def movement_diagnostics_figure(bench: dict) -> go.Figure:
    """Bars per criterion, a row per regime: the share of the most important weights one
    per-tensor cut removes, the share of rows and columns it cuts more than twice as deep, and
    English dev F1 after it (the uncut model's as a dotted line): movement's cuts fall on the
    weights or whole units that matter, as do its sign flipped and its sizes with shuffled
    signs; magnitude spares them and random spreads its cut evenly."""
    measures = ((f"top {bench['top']:.0%} most important weights removed", "top_removed"),
                ("rows and columns cut over 2x deep", "lines_over_2x"), ("English dev F1", "f1_en"))
    regimes = movement_regimes(bench)
    frames = []
    for regime, part in regimes.items():
        table = movement_diagnostics_table(part).drop(index="dense")
        short = "from fine-tuned" if part is bench else f"from pre-trained, {part['steps']} steps"
        frames += [pd.DataFrame({"criterion": table.index, "regime": short, "measure": measure, "value": table[column]})
                   for measure, column in measures]
    long = pd.concat(frames)
    fig = px.bar(long, x="criterion", y="value", facet_col="measure", facet_row="regime" if len(regimes) > 1 else None,
                 range_y=[0, 1], text_auto=".2f", height=200 + 260 * len(regimes),
                 title=f"One {bench['sparsity']:.0%} per-tensor cut, no retraining")
    f1_col = list(long["measure"].unique()).index("English dev F1") + 1
    for row, part in enumerate(reversed(list(regimes.values())), start=1):
        fig.add_hline(y=part["dense_f1"]["en"], line_dash="dot", row=row, col=f1_col, annotation_text="uncut")
    return plots.value_facet_titles(fig)
