"""The numbers a 02_heads closing note quotes, read from a record: where F1 breaks per
language, how much English vs the zero-shot languages lose, and the speed-up at a fraction
of heads removed in each runtime."""
from __future__ import annotations

import pandas as pd

from .. import bench
from .experiment import graph_name
from .figures import curve_frame


def breaking_points(record: dict, points: float = 0.05) -> dict[str, float | None]:
    """Per language, the first fraction of heads removed at which dev F1 is more than `points`
    below the unpruned model's (None if it never is)."""
    frame = curve_frame(record)
    out: dict[str, float | None] = {}
    for lang, rows in frame.groupby("lang"):
        broken = rows[rows["drop"] > points].sort_values("fraction_removed")
        out[str(lang)] = float(broken.fraction_removed.iloc[0]) if len(broken) else None
    return out


def drops(record: dict) -> pd.DataFrame:
    """Dev F1 lost since the unpruned model, one row per iteration, one column per language."""
    return curve_frame(record).pivot(index="fraction_removed", columns="lang", values="drop")


def speedups(record: dict, fraction: float = 0.5) -> pd.DataFrame:
    """Per runtime and batch, the benchmarked graph nearest `fraction` of heads removed against
    the unpruned graph of the same benchmark run: `gain` over the unpruned graph in the same
    runtime, `speedup` over the unpruned graph in onnxruntime (the paper's convention)."""
    columns = ["runtime", "batch", "fraction_removed", "items_per_s", "dense_items_per_s", "gain", "speedup"]
    frame = pd.DataFrame(record["throughput"])
    if frame.empty or not (frame.status == "ok").any():
        return pd.DataFrame(columns=columns)
    rows = pd.concat([pd.DataFrame(bench.speedups(group.to_dict("records"), graph_name(0)))
                      for _, group in frame.groupby("bench_run")])
    ok = rows[rows.status == "ok"]
    nearest = ok.fraction_removed.iloc[(ok.fraction_removed - fraction).abs().argsort().iloc[0]]
    keys = ["bench_run", "runtime", "batch"]
    dense = ok[ok.iteration == 0][keys + ["items_per_s"]].rename(columns={"items_per_s": "dense_items_per_s"})
    out = ok[ok.fraction_removed == nearest].merge(dense, on=keys)
    out = out.assign(gain=out.items_per_s / out.dense_items_per_s)[columns]
    return out.sort_values(["runtime", "batch"], ignore_index=True)
