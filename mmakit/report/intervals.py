"""95% intervals for the study's comparisons and the one rule that turns an interval into a verdict.

Every comparison is an `Estimate`: the difference (or ratio), its interval and what the interval
rests on. Seeds are the unit of replication: runs that share seeds are paired and judged by a
t interval on the paired differences (n-1 degrees of freedom); a difference of differences is a
pooled two-sample t interval; speed ratios are intervals of the geometric mean over runs. The
bootstrap over test sentences, for sides with one seed, is in `bootstrap`.

The rule (`verdict`), the same for every finding: a claim that something is larger (smaller)
is confirmed when the whole interval lies above (below) the no-effect value, refuted when it
lies on the other side, open when it contains it. A claim of no effect has no side of its own:
it is refuted when the interval excludes the no-effect value and open otherwise, since no
interval can show an effect to be exactly zero (its width says how large an effect could hide).
"""
from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import stats

LEVEL = 0.95
CONFIRMED, REFUTED, OPEN = "confirmed", "refuted", "open"
MORE, LESS, NO_EFFECT = "more", "less", "no effect"  # what a claim says of a difference


@dataclass(frozen=True)
class Estimate:
    """A difference (or a mean, or a ratio) with its 95% interval and what the interval rests on;
    `low`/`high` are None when there is no interval (then `basis` says why), `null` is the
    no-effect value (0 for differences, 1 for ratios)."""

    value: float | None
    low: float | None
    high: float | None
    basis: str
    null: float = 0.0

    @property
    def judged(self) -> bool:
        return self.low is not None and self.high is not None

    def text(self, digits: int = 3, signed: bool = True) -> str:
        """e.g. `-0.006 [-0.013, +0.001]` (a difference), `0.885 [0.880, 0.890]` (a mean, `signed`
        False), `2.13x [1.90, 2.39]` (a ratio), or the value alone when there is no interval."""
        if self.value is None:
            return ""
        ratio = self.null == 1.0
        fmt = f"{{:{'+' if signed and not ratio else ''}.{digits}f}}"
        shown = fmt.format(self.value) + ("x" if ratio else "")
        return f"{shown} [{fmt.format(self.low)}, {fmt.format(self.high)}]" if self.judged else shown


def unjudged(value: float | None, basis: str, null: float = 0.0) -> Estimate:
    """An estimate without an interval; `basis` says why (one seed and no predictions, ...)."""
    return Estimate(None if value is None else float(value), None, None, basis, null)


def t_quantile(df: int, level: float = LEVEL) -> float:
    """The two-sided `level` quantile of Student's t with `df` degrees of freedom."""
    return float(stats.t.ppf(0.5 + level / 2, df))


def _t(mean: float, se: float, df: int, basis: str, null: float = 0.0) -> Estimate:
    half = t_quantile(df) * se
    return Estimate(mean, mean - half, mean + half, basis, null)


def seeds(n: int) -> str:
    return f"{n} seed{'s' if n != 1 else ''}"


def mean_interval(values: Sequence[float]) -> Estimate:
    """The mean over seeds with its t interval (n-1 df); one value has none."""
    values = np.asarray(values, dtype=float)
    if len(values) < 2:
        return unjudged(values[0] if len(values) else None, seeds(len(values)))
    return _t(float(values.mean()), float(values.std(ddof=1) / math.sqrt(len(values))), len(values) - 1,
              f"{seeds(len(values))}, t over seeds")


def paired_interval(differences: Sequence[float]) -> Estimate:
    """The mean of differences taken within seeds (one per shared seed) with its t interval."""
    diffs = np.asarray(differences, dtype=float)
    if len(diffs) < 2:
        return unjudged(diffs[0] if len(diffs) else None, f"{seeds(len(diffs))}, paired: no interval")
    return _t(float(diffs.mean()), float(diffs.std(ddof=1) / math.sqrt(len(diffs))), len(diffs) - 1,
              f"{seeds(len(diffs))}, paired")


def pooled_difference(xs: Sequence[float], ys: Sequence[float]) -> Estimate:
    """mean(xs) - mean(ys) for two independent samples (e.g. paired differences of two pairs
    of settings: a difference of differences) with the pooled-variance t interval,
    len(xs) + len(ys) - 2 df. With one value on a side, that side's noise is taken to be the
    other side's: the interval asks whether the single value could be one more draw of it."""
    x, y = np.asarray(xs, dtype=float), np.asarray(ys, dtype=float)
    df = len(x) + len(y) - 2
    if min(len(x), len(y)) < 1 or df < 1:
        return unjudged(x.mean() - y.mean() if len(x) and len(y) else None, "too few seeds for an interval")
    pooled = (((x - x.mean()) ** 2).sum() + ((y - y.mean()) ** 2).sum()) / df
    se = math.sqrt(pooled * (1 / len(x) + 1 / len(y)))
    return _t(float(x.mean() - y.mean()), se, df, f"{seeds(len(x))} against {seeds(len(y))}, pooled t ({df} df)")


def ratio_interval(ratios: Sequence[float], unit: str = "runs") -> Estimate:
    """The geometric mean of ratios (e.g. one speedup per run) with a t interval on their logs."""
    logs = np.log(np.asarray(ratios, dtype=float))
    if len(logs) < 2:
        return unjudged(float(np.exp(logs[0])) if len(logs) else None, f"{len(logs)} of {unit}: no interval", null=1.0)
    centre, se, df = float(logs.mean()), float(logs.std(ddof=1) / math.sqrt(len(logs))), len(logs) - 1
    log_est = _t(centre, se, df, "")
    return Estimate(math.exp(centre), math.exp(log_est.low), math.exp(log_est.high),
                    f"{len(logs)} {unit}, t over log ratios", null=1.0)


def verdict(estimate: Estimate, claim: str) -> str:
    """The rule: `claim` is MORE (the paper says the difference is above the no-effect value),
    LESS (below) or NO_EFFECT. An estimate without an interval is open."""
    if not estimate.judged:
        return OPEN
    above, below = estimate.low > estimate.null, estimate.high < estimate.null
    if claim == NO_EFFECT:
        return REFUTED if above or below else OPEN
    side, other = (above, below) if claim == MORE else (below, above)
    return CONFIRMED if side else (REFUTED if other else OPEN)


def overall(verdicts: Sequence[str]) -> str:
    """One verdict from those of the comparisons that decide a finding: refuted if any is,
    confirmed only if every one is, else open."""
    if REFUTED in verdicts:
        return REFUTED
    return CONFIRMED if verdicts and set(verdicts) == {CONFIRMED} else OPEN
