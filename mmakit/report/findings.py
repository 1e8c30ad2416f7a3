"""The paper's findings checked against our records: each one confirmed, refuted or open, with
the numbers behind the verdict. A difference counts only beyond twice its noise: the sample
standard deviation over seeds where the runs have several (of the paired differences for
the teacher), else the seed spread of the dense baseline's mls (01's aggregate). A finding
with no records behind it is open and says which runs would decide it."""
from __future__ import annotations

import math

import numpy as np
import pandas as pd

from mmakit.report import distillation as distillation_report
from mmakit.report.pruning import as_the_paper_prunes

CONFIRMED, REFUTED, OPEN = "confirmed", "refuted", "open"
SPLIT = "test"


def _aggregates(records: list[dict], notebook: str) -> list[dict]:
    return [r for r in records if r["notebook"] == notebook and r.get("aggregate_of")]


def baseline_noise(records: list[dict]) -> float | None:
    """The seed standard deviation of the dense baseline's test mls (01's seed aggregate)."""
    found = [r["mls_std"][SPLIT] for r in _aggregates(records, "01_baselines")
             if not r.get("params", {}).get("run_tag") and (r.get("mls_std") or {}).get(SPLIT) is not None]
    return found[0] if found else None


def judge(difference: float, noise: float | None) -> str:
    """confirmed when `difference` (signed so that the paper's claim is positive) exceeds twice
    the noise, refuted when it is below minus twice the noise, else open."""
    if noise is None or math.isnan(noise):
        return OPEN
    if difference > 2 * noise:
        return CONFIRMED
    return REFUTED if difference < -2 * noise else OPEN


def _pruned(records: list[dict], method: str, sparsity: float, schedule: str = "cubic") -> dict | None:
    found = [r for r in _aggregates(records, "03_obs") if r["technique"].get("mode") == "gradual"
             and r["technique"]["method"] == method and abs(r["technique"]["sparsity"] - sparsity) < 1e-9
             and r["technique"]["schedule"] == schedule and as_the_paper_prunes(r["technique"])]
    return found[0] if found else None


def _noise(a: dict, b: dict, fallback: float | None) -> float | None:
    """The larger of two aggregates' seed sd of test mls, else the fallback."""
    spreads = [s for s in ((a.get("mls_std") or {}).get(SPLIT), (b.get("mls_std") or {}).get(SPLIT)) if s is not None]
    return max(spreads) if spreads else fallback


def _mls(r: dict) -> float:
    return r["mls"][SPLIT]


def obs_keeps_languages(records: list[dict], noise: float | None) -> dict:
    """OBS keeps es/nl far better than magnitude and movement at the same sparsity."""
    rows = []
    for sparsity in (0.8, 0.9):
        obs = _pruned(records, "obs", sparsity)
        for other in ("magnitude", "movement"):
            rival = _pruned(records, other, sparsity)
            if obs and rival:
                rows.append((f"{other} {sparsity:.0%}", _mls(obs) - _mls(rival), _noise(obs, rival, noise),
                             obs["f1"]["en"][SPLIT] - rival["f1"]["en"][SPLIT]))
    return _verdict("OBS keeps es/nl far better than magnitude and movement (same sparsity)", rows,
                    "03: obs and magnitude/movement runs at the same sparsity",
                    lambda label, d, n, en: f"vs {label}: mls {d:+.3f} (2 sd {2 * n:.3f}), en {en:+.3f}" if n is not None
                    else f"vs {label}: mls {d:+.3f}, en {en:+.3f}")


def cubic_beats_linear(records: list[dict], noise: float | None) -> dict:
    """Cubic beats linear at the end of the schedule (OBS, 90%)."""
    cubic, linear = _pruned(records, "obs", 0.9, "cubic"), _pruned(records, "obs", 0.9, "linear")
    rows = [("obs 90%", _mls(cubic) - _mls(linear), _noise(cubic, linear, noise),
             cubic["f1"]["en"][SPLIT] - linear["f1"]["en"][SPLIT])] if cubic and linear else []
    return _verdict("A cubic sparsity schedule beats a linear one at the end", rows, "03: obs-90-cubic and obs-90-linear",
                    lambda label, d, n, en: f"{label} cubic minus linear: mls {d:+.3f} (2 sd {2 * n:.3f}), en {en:+.3f}"
                    if n is not None else f"{label} cubic minus linear: mls {d:+.3f}, en {en:+.3f}")


def _quantization_changes(records: list[dict]) -> dict[str, list[float]]:
    """Per int8 method, 05's test mls change against the fp32 graph, one value per baseline seed quantized."""
    changes: dict[str, list[float]] = {}
    for r in records:
        if r["notebook"] == "05_quantization" and r["technique"].get("int8") and r.get("mls_vs_fp32"):
            changes.setdefault(r["technique"]["method"], []).append(r["mls_vs_fp32"][SPLIT])
    return changes


def quantization_keeps_mls(records: list[dict], noise: float | None) -> dict:
    """Quantization barely touches mls: every int8 method's mean test mls change against our own
    fp32 graph within twice its noise (the change's sd over baseline seeds where several were
    quantized, else the baseline's seed sd)."""
    changes = _quantization_changes(records)
    if not changes or noise is None:
        return {"finding": "Quantization barely touches mls", "verdict": OPEN,
                "evidence": "needs 05's records and 01's seed aggregate"}
    judged = {m: (float(np.mean(c)), float(np.std(c, ddof=1)) if len(c) > 1 else noise, len(c)) for m, c in changes.items()}
    verdict = CONFIRMED if all(abs(mean) <= 2 * sd for mean, sd, _ in judged.values()) else REFUTED
    detail = ", ".join(f"{m} {mean:+.3f} (2 sd {2 * sd:.3f}, {n} seed{'s' if n > 1 else ''})"
                       for m, (mean, sd, n) in judged.items())
    return {"finding": "Quantization barely touches mls", "verdict": verdict,
            "evidence": f"mean test mls change vs fp32: {detail}; one seed is judged by the baseline's sd"}


def sparsity_pays_in_deepsparse(records: list[dict], batch: int = 4) -> dict:
    """Unstructured sparsity gives no speedup in onnxruntime and a large one in deepsparse."""
    ratios: dict[str, list[float]] = {"onnxruntime": [], "deepsparse": []}
    for r in records:
        if r["notebook"] == "03_obs" and r["technique"].get("mode") == "gradual" and not r.get("aggregate_of"):
            for t in r.get("throughput") or []:
                if t["model"] == "pruned" and t["batch"] == batch and t.get("status") == "ok" and t["runtime"] in ratios:
                    ratios[t["runtime"]].append(t["speedup"])
    if not ratios["onnxruntime"] or not ratios["deepsparse"]:
        return {"finding": "Unstructured sparsity pays only in deepsparse", "verdict": OPEN,
                "evidence": "needs 03's gradual runs timed in both runtimes"}
    ort, ds = float(np.median(ratios["onnxruntime"])), float(np.median(ratios["deepsparse"]))
    verdict = CONFIRMED if ort < 1.2 and ds > 1.5 else (REFUTED if ort >= 1.2 or ds <= 1.0 else OPEN)
    return {"finding": "Unstructured sparsity pays only in deepsparse", "verdict": verdict,
            "evidence": f"pruned over dense onnxruntime at batch {batch}, median of {len(ratios['deepsparse'])} runs: "
                        f"onnxruntime {ort:.2f}x, deepsparse {ds:.2f}x (confirmed below 1.2x and above 1.5x)"}


def teacher_keeps_languages(records: list[dict]) -> dict:
    """A teacher keeps multilinguality: test mls with minus without the teacher, paired by seed."""
    effect = distillation_report.teacher_effect([r for r in records if r["notebook"] == "04_distillation"])
    if effect.empty:
        return {"finding": "A teacher keeps multilinguality", "verdict": OPEN,
                "evidence": "needs 04's students run with and without the teacher"}
    rows = effect.xs(f"mls_{SPLIT}", level="measure")
    verdicts = {s: judge(row["mean"], row["sd"]) for s, row in rows.iterrows()}
    overall = CONFIRMED if set(verdicts.values()) == {CONFIRMED} else (
        REFUTED if REFUTED in verdicts.values() else OPEN)
    detail = "; ".join(f"{s}: {row['mean']:+.3f} (sd {row['sd']:.3f} over {int(row['pairs'])} pairs)" if row["sd"] is not None
                       else f"{s}: {row['mean']:+.3f} (one pair)" for s, row in rows.iterrows())
    return {"finding": "A teacher keeps multilinguality", "verdict": overall, "evidence": f"test mls, teacher minus none: {detail}"}


def combination_is_additive(records: list[dict], noise: float | None) -> dict:
    """The combination adds nothing beyond its parts: OBS 90% + QAT loses what OBS 90% and QAT
    lose apart (test mls), within twice the larger of the baseline's and OBS 90%'s seed sd."""
    combined = [r for r in records if r["notebook"] == "06_combined" and r["technique"].get("coverage") == "exclusions"
                and r["technique"].get("sparsity") == 0.9 and not r["technique"].get("student")]
    pruned = _pruned(records, "obs", 0.9)
    qat = _quantization_changes(records).get("qat")
    if not (combined and pruned and qat) or noise is None:
        return {"finding": "Pruning + QAT adds nothing beyond its parts", "verdict": OPEN,
                "evidence": "needs 06's obs90-q, 03's obs-90-cubic, 05's qat and 01's seed aggregate"}
    qat_change = float(np.mean(qat))
    extra = (_mls(combined[0]) - _mls(pruned)) - qat_change
    noise = max(noise, _noise(pruned, {}, noise))  # the pruned run's seed spread dominates the baseline's
    verdict = CONFIRMED if abs(extra) <= 2 * noise else REFUTED
    return {"finding": "Pruning + QAT adds nothing beyond its parts", "verdict": verdict,
            "evidence": f"obs90-q minus obs-90 {_mls(combined[0]) - _mls(pruned):+.3f} test mls, QAT alone {qat_change:+.3f}: "
                        f"interaction {extra:+.3f} (2 sd {2 * noise:.3f})"}


def _verdict(finding: str, rows: list[tuple], needs: str, describe) -> dict:
    """One verdict over several comparisons: confirmed only if every one is, refuted if any is."""
    if not rows:
        return {"finding": finding, "verdict": OPEN, "evidence": f"needs {needs}"}
    verdicts = [judge(d, n) for _, d, n, _ in rows]
    overall = CONFIRMED if set(verdicts) == {CONFIRMED} else (REFUTED if REFUTED in verdicts else OPEN)
    return {"finding": finding, "verdict": overall, "evidence": "; ".join(describe(*row) for row in rows)}


def findings(records: list[dict]) -> pd.DataFrame:
    """Every checked finding of the paper with its verdict and evidence."""
    noise = baseline_noise(records)
    rows = [obs_keeps_languages(records, noise), quantization_keeps_mls(records, noise), cubic_beats_linear(records, noise),
            sparsity_pays_in_deepsparse(records), teacher_keeps_languages(records), combination_is_additive(records, noise)]
    return pd.DataFrame(rows).set_index("finding")
