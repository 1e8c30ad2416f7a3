"""The zero-shot work's targets read from the records, so whether one is met is a table row, not
a claim: a 6-layer zero-shot student keeping mls, the fastest zero-shot model over the paper's
quality line, a 3-layer stretch, and real-text speed. Zero-shot here means no Spanish or Dutch
NER data and no CoNLL-2002 text: english-only and generic-multilingual runs."""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import pandas as pd

from mmakit.core import paper
from mmakit.report import summary, text_speed
from mmakit.report.groups import by_cpu, cpu_class, setting
from mmakit.study.data_setting import ENGLISH_ONLY, GENERIC_MULTILINGUAL

ZERO_SHOT_SETTINGS = (ENGLISH_ONLY, GENERIC_MULTILINGUAL)
STUDENT_MLS, FAST_SPEEDUP, SMALL_MLS, SMALL_SPEEDUP, TEXT_SPEEDUP = -0.25, 5.0, -0.6, 9.0, 4.0
BATCH = 4


def layers(record: Mapping) -> int:
    """The encoder layers of a run's model: a 04 student's, a 06 pipeline's student, else 12."""
    t = record.get("technique") or {}
    return int(t.get("num_layers") or t.get("student") or 12)


def _fastest(records: Sequence[Mapping]) -> tuple[Mapping, str, float] | None:
    """(run, runtime, speedup) of the highest speedup over dense fp32 onnxruntime at BATCH."""
    timed = [(r, rt, summary.speedup_at(r, rt, BATCH)) for r in records for rt in ("onnxruntime", "deepsparse")]
    timed = [t for t in timed if t[2] is not None]
    return max(timed, key=lambda t: t[2]) if timed else None


def _mls(record: Mapping | None) -> float | None:
    return (record.get("mls") or {}).get("test") if record else None


def _row(target: str, run: Mapping | None, met: bool, speed: str = "") -> dict:
    name = f"{run['notebook'][:2]} {run['run']}" if run else "none"
    mls = _mls(run)
    return {"target": target, "best run": name, "mls test": None if mls is None else round(mls, 3),
            "speed": speed, "met": "yes" if met else "no"}


def _speed_target(target: str, runs: Sequence[Mapping], quality: float, bar: float) -> dict:
    """The fastest of `runs` whose test mls reaches `quality`, met when its speedup reaches `bar`."""
    fastest = _fastest([r for r in runs if _mls(r) is not None and _mls(r) >= quality])
    if not fastest:
        return _row(target, None, False, f"no run reaches mls {quality:.2f}")
    run, runtime, ratio = fastest
    return _row(target, run, ratio >= bar, f"{ratio:.2f}x ({runtime}, batch {BATCH})")


def _text_target(bench: Mapping | None) -> dict:
    target = f"the fastest zero-shot model tags the test sets at >= {TEXT_SPEEDUP:g}x dense sentences/s"
    if not bench:
        return _row(target, None, False, "no bench-text record")
    frame = text_speed.text_speed_table(dict(bench)).reset_index() if bench.get("text_throughput") else pd.DataFrame()
    if not frame.empty:
        frame = frame[frame["data setting"].isin(ZERO_SHOT_SETTINGS) & (frame["status"] == "ok")]
    if frame.empty:
        return _row(target, None, False, f"no zero-shot model in {bench['run']}")
    best = frame.loc[frame["speedup (real text)"].idxmax()]
    model = {"notebook": best.model.split("/")[0], "run": best.model.split("/", 1)[-1], "mls": {"test": best["mls test"]}}
    speed = f"{best['speedup (real text)']:.2f}x ({best.runtime}, batch {best.batch}, {bench['run']})"
    return _row(target, model, best["speedup (real text)"] >= TEXT_SPEEDUP, speed)


def targets(records: Sequence[Mapping], bench: Mapping | None = None) -> pd.DataFrame:
    """One row per target: the best run the records hold for it, its test mls, speed, and `met`."""
    runs = [r for r in summary.headline(list(records)) if setting(r) in ZERO_SHOT_SETTINGS]
    students = [r for r in runs if r["notebook"] == "04_distillation" and layers(r) == 6 and _mls(r) is not None]
    best_student = max(students, key=_mls, default=None)
    line = paper.quality_line()
    rows = [_row(f"a 6-layer zero-shot student with test mls >= {STUDENT_MLS}", best_student,
                 best_student is not None and _mls(best_student) >= STUDENT_MLS),
            _speed_target(f"the fastest zero-shot model with mls >= {line:.2f} at >= {FAST_SPEEDUP:g}x", runs, line, FAST_SPEEDUP),
            _speed_target(f"stretch: a 3-layer zero-shot model with mls >= {SMALL_MLS} at >= {SMALL_SPEEDUP:g}x",
                          [r for r in runs if layers(r) == 3], SMALL_MLS, SMALL_SPEEDUP),
            _text_target(bench)]
    return pd.DataFrame(rows).set_index("target")


def targets_by_cpu(records: Sequence[Mapping], benches: Sequence[Mapping] = ()) -> pd.DataFrame:
    """`targets` per CPU class (two classes never meet), each with the newest of `benches`
    (bench-text records, newest first) made on that class."""
    tables = {cpu: targets(group, next((b for b in benches if cpu_class(b) == cpu), None))
              for cpu, group in sorted(by_cpu(records).items())}
    return pd.concat(tables, names=["cpu"]) if tables else pd.DataFrame()
