"""Tables of the study: our runs beside the paper's rows, each row labelled with its source."""
from __future__ import annotations

import pandas as pd

from mmakit.core import paper

F1_COLUMNS = ["es_dev", "es_test", "en_dev", "en_test", "nl_dev", "nl_test", "mls_dev", "mls_test"]


def record_row(record: dict, label: str | None = None) -> dict:
    """One record as a flat row in the paper's column order."""
    row = {"label": label or record["run"], "source": f"ours ({record['profile']})"}
    for col in F1_COLUMNS:
        kind, split = col.split("_")
        value = record["mls"].get(split) if kind == "mls" else record["f1"].get(kind, {}).get(split)
        row[col] = value
    return row


def side_by_side(records: list[dict], paper_table: str, paper_rows: list[str] | None = None) -> pd.DataFrame:
    """Our records and the named rows of a paper table, in one frame with a `source` column."""
    ours = [record_row(r) for r in records]
    ref = paper.f1_table(paper_table)
    rows = paper_rows if paper_rows is not None else list(ref.index)
    theirs = [{"label": name, "source": f"paper ({paper_table})"} | ref.loc[name].to_dict() for name in rows]
    frame = pd.DataFrame(ours + theirs).set_index(["source", "label"])
    return frame.reindex(columns=[c for c in F1_COLUMNS if c in frame])


def seed_table(aggregates: list[dict], paper_table: str, paper_rows: list[str] | None = None) -> pd.DataFrame:
    """Seed aggregates (results.aggregate) as mean and standard deviation (`sd`) of every F1
    and mls column with the number of seeds, beside the named rows of a paper table."""
    rows = []
    for r in aggregates:
        row = record_row(r) | {"seeds": len(r.get("aggregate_of") or [r["run"]])}
        for col in F1_COLUMNS:
            kind, split = col.split("_")
            sd = (r.get("mls_std") or {}).get(split) if kind == "mls" else (r.get("f1_std") or {}).get(kind, {}).get(split)
            row[f"{col} sd"] = sd
        rows.append(row)
    frame = pd.concat([pd.DataFrame(rows).set_index(["source", "label"]), side_by_side([], paper_table, paper_rows)])
    ordered = ["seeds"] + [c for col in F1_COLUMNS for c in (col, f"{col} sd")]
    return frame.reindex(columns=ordered)


def per_seed_f1(aggregates: list[dict]) -> pd.DataFrame:
    """Each seed's F1 (label, seed, lang, split, f1) from seed aggregates, for dot plots."""
    return pd.DataFrame([
        {"label": r["run"], "seed": str(run["seed"]), "lang": lang, "split": split, "f1": v}
        for r in aggregates for run in (r.get("per_seed") or {}).values()
        for lang, splits in run["f1"].items() for split, v in splits.items()
    ])


def long_f1(records: list[dict]) -> pd.DataFrame:
    """F1 in long form (label, source, lang, split, f1) for plotting."""
    rows = [
        {"label": r["run"], "source": f"ours ({r['profile']})", "lang": lang, "split": split, "f1": v}
        for r in records for lang, splits in r["f1"].items() for split, v in splits.items()
    ]
    return pd.DataFrame(rows)


def paper_long_f1(paper_table: str, rows: list[str]) -> pd.DataFrame:
    """A paper F1 table in the same long form as `long_f1`."""
    ref = paper.f1_table(paper_table)
    out = []
    for name in rows:
        for col, v in ref.loc[name].items():
            lang, split = col.split("_")
            if lang != "mls":
                out.append({"label": f"paper {name}", "source": f"paper ({paper_table})", "lang": lang, "split": split, "f1": v})
    return pd.DataFrame(out)


def throughput_wide(rows: list[dict]) -> pd.DataFrame:
    """Benchmark rows (mmakit.bench) as items/s per model x runtime, a column per batch size,
    plus speedup columns where the rows have them and the reason of any failed measurement."""
    frame = pd.DataFrame(rows)
    index = ["model", "runtime"]
    wide = frame.pivot_table(index=index, columns="batch", values="items_per_s", aggfunc="first", dropna=False)
    wide.columns = [f"b{b} items/s" for b in wide.columns]
    if "speedup" in frame:
        ratios = frame.pivot_table(index=index, columns="batch", values="speedup", aggfunc="first", dropna=False)
        wide = wide.join(ratios.set_axis([f"b{b} speedup" for b in ratios.columns], axis=1))
    notes = frame[frame.status != "ok"].groupby(index)["error"].first()
    wide["note"] = notes.reindex(wide.index).fillna("").str.slice(0, 160)
    return wide.reindex(pd.MultiIndex.from_frame(frame[index].drop_duplicates()))


def baseline_throughput_vs_paper(records: list[dict], batch: int = 4) -> pd.DataFrame:
    """Table 2: items/s of our baselines at `batch` in each runtime, with deepsparse over
    onnxruntime, beside the paper's base model (i7-11800H, 8 cores: compare the ratio)."""
    rows = []
    for r in records:
        rates = {t["runtime"]: t["items_per_s"] for t in r.get("throughput", []) if t["batch"] == batch}
        rows.append({"source": f"ours ({r['profile']})", "model": r["run"], **rates})
    for model, rates in paper.tables()["table2_baseline_throughput"].items():
        rows.append({"source": f"paper ({paper.tables()['cpu']})", "model": model, **rates})
    frame = pd.DataFrame(rows).set_index(["source", "model"])
    if {"deepsparse", "onnxruntime"} <= set(frame):
        frame["deepsparse / onnxruntime"] = frame["deepsparse"] / frame["onnxruntime"]
    return frame
