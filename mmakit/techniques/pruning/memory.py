"""Peak resident memory of this process over a block of code (Linux /proc), to report what
one OBS pruning step really costs rather than an estimate."""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

STATUS = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_mb(field: str) -> float | None:
    try:
        for line in STATUS.read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1]) / 1024  # kB
    except OSError:
        pass
    return None


@contextmanager
def peak_memory() -> Iterator[dict]:
    """Yield a dict that, after the block, holds `peak_rss_mb` (process peak during the block
    when the kernel lets the peak be reset, else since process start), `start_rss_mb`,
    `peak_above_start_mb` and `peak_reset` (whether the peak was reset at the start)."""
    try:
        CLEAR_REFS.write_text("5")  # resets VmHWM to the current RSS
        reset = True
    except OSError:
        reset = False
    out: dict = {"start_rss_mb": _status_mb("VmRSS"), "peak_reset": reset}
    yield out
    peak = _status_mb("VmHWM")
    out["peak_rss_mb"] = peak
    start = out["start_rss_mb"]
    out["peak_above_start_mb"] = peak - start if peak is not None and start is not None else None
