"""The timing loop shared by the in-process benchmark and the deepsparse worker.

Standard library only: the deepsparse worker imports it from its own environment.
"""
from __future__ import annotations

import time
from collections.abc import Callable


def timed_calls(call: Callable[[], object], seconds: float, warmup: int, min_calls: int = 3) -> list[float]:
    """Seconds per call: `warmup` untimed calls, then calls until `seconds` have passed (at
    least `min_calls`: one where a call is itself long, such as a pass over a whole data set)."""
    for _ in range(warmup):
        call()
    times: list[float] = []
    end = time.perf_counter() + seconds
    while time.perf_counter() < end or len(times) < min_calls:
        start = time.perf_counter()
        call()
        times.append(time.perf_counter() - start)
    return times
