"""Real-text speed (bench-text records) beside the fixed-length figures of the same models.

The study's speed columns come from rows of 128 tokens; a CoNLL sentence has about 14 words.
`text_speed_table` sets a bench-text record's sentences/s and words/s, and the speedup over the
dense fp32 model in onnxruntime on real text, beside the speedup each model's own record
measured on fixed-length rows, per runtime.
"""
from __future__ import annotations

from pathlib import Path

import pandas as pd

from mmakit.study.text_speed import text_records


def latest_text_bench(results_dir: str | Path | None = None, name: str | None = None) -> dict | None:
    """The newest bench-text record (or the one named `name`), None when there is none."""
    records = [r for r in text_records(results_dir) if name is None or r["run"] == name]
    return records[0] if records else None


def _fixed_speedup(rows: list[dict], runtime: str, batch: int) -> tuple[int | None, float | None]:
    """(batch, speedup) of the fixed-length row of `runtime` at the largest batch up to `batch`
    (the smallest timed where none is that small)."""
    timed = sorted((r["batch"], r.get("speedup")) for r in rows if r["runtime"] == runtime and r.get("status") == "ok")
    below = [t for t in timed if t[0] <= batch]
    if below:
        return below[-1]
    return timed[0] if timed else (None, None)


def text_speed_table(record: dict, lang: str = "all") -> pd.DataFrame:
    """One row per model x runtime x batch of the bench-text `record` on data set `lang` ("all":
    the three test sets together): sentences/s, words/s, the real-text speedup, and the model's
    fixed-length speedup from its own record (at the batch named in `fixed batch`), with its
    data setting and test mls."""
    rows = []
    for r in record["text_throughput"]:
        if r["lang"] != lang:
            continue
        about = record["models"].get(r["model"], {})
        batch, fixed = _fixed_speedup(about.get("fixed_length") or [], r["runtime"], r["batch"])
        rows.append({"model": r["model"], "data setting": about.get("data_setting"),
                     "mls test": (about.get("mls") or {}).get("test"), "runtime": r["runtime"], "batch": r["batch"],
                     "sentences/s": r["sentences_per_s"], "words/s": r["words_per_s"],
                     "speedup (real text)": r.get("speedup"), "speedup (fixed length)": fixed, "fixed batch": batch,
                     "status": r["status"]})
    return pd.DataFrame(rows).set_index(["model", "runtime", "batch"])
