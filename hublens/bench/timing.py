"""Timing and peak-memory measurement: warm-up, interleaved repeats, medians of ratios.

Variants run round-robin (their order rotates every repeat), so slow drift of a shared machine
hits all of them alike; a ratio is the median over repeats of ``time(variant) / time(base)``
taken in the same round. Two clocks are kept: wall time and the process's CPU time. On a
shared machine with torch on one thread, CPU time leaves out the time other processes hold the
cores, so ratios default to it there (``clock="cpu"``); wall time stays in the results.
Peak memory is the process's resident-set high-water mark during one
call above its resident set just before it (Linux: ``/proc/self/clear_refs`` resets the mark;
freed heap is returned with ``malloc_trim`` first), so it counts everything a call allocates:
torch tensors, Python objects, caches.
"""

from __future__ import annotations

import ctypes
import gc
import re
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

_STATUS = Path("/proc/self/status")
_CLEAR_REFS = Path("/proc/self/clear_refs")


def _status_bytes(key: str) -> int | None:
    try:
        text = _STATUS.read_text()
    except OSError:
        return None
    found = re.search(rf"^{key}:\s+(\d+) kB", text, re.MULTILINE)
    return int(found.group(1)) * 1024 if found else None


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass


class PeakMemory:
    """Context manager: ``peak_bytes`` above the resident set at entry (None off Linux).

    Example:
        >>> with PeakMemory() as memory:
        ...     block = bytearray(50_000_000)
        >>> memory.peak_bytes is None or memory.peak_bytes > 40_000_000
        True
    """

    def __init__(self) -> None:
        self.peak_bytes: int | None = None
        self.peak_rss_bytes: int | None = None
        self._base: int | None = None

    def __enter__(self) -> PeakMemory:
        _trim()
        try:
            _CLEAR_REFS.write_text("5")  # reset the high-water mark (VmHWM) to the current RSS
            self._base = _status_bytes("VmRSS")
        except OSError:
            self._base = None
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._base is not None:
            peak = _status_bytes("VmHWM")
            if peak is not None:
                self.peak_rss_bytes = peak
                self.peak_bytes = max(0, peak - self._base)


@dataclass
class Timing:
    """Seconds per call (wall, process CPU) and peak memory above its start, one per repeat."""

    seconds: list[float] = field(default_factory=list)
    cpu_seconds: list[float] = field(default_factory=list)
    peak_bytes: list[int] = field(default_factory=list)

    @property
    def median_cpu_s(self) -> float:
        """Median CPU seconds."""
        return statistics.median(self.cpu_seconds)

    @property
    def median_s(self) -> float:
        """Median seconds."""
        return statistics.median(self.seconds)

    @property
    def peak_mb(self) -> float | None:
        """Largest peak over the repeats, MB (None where not measurable)."""
        return max(self.peak_bytes) / 1e6 if self.peak_bytes else None

    def to_dict(self) -> dict[str, Any]:
        """Plain data for the results file."""
        return {
            "median_s": self.median_s,
            "median_cpu_s": self.median_cpu_s,
            "seconds": self.seconds,
            "cpu_seconds": self.cpu_seconds,
            "peak_mb": self.peak_mb,
        }


def measure(
    variants: dict[str, Callable[[], Any]],
    *,
    warmup: int = 1,
    repeats: int = 5,
    memory: bool = True,
) -> dict[str, Timing]:
    """Time every variant ``repeats`` times, interleaved, after ``warmup`` untimed calls each.

    Args:
        variants: Name -> zero-argument callable.
        warmup: Untimed calls per variant first.
        repeats: Timed rounds.
        memory: Also record each call's peak memory.

    Returns:
        Name -> :class:`Timing`, in the order given.
    """
    if repeats < 1 or warmup < 0:
        raise ValueError(f"repeats={repeats}, warmup={warmup}: need repeats >= 1, warmup >= 0.")
    names = list(variants)
    for name in names:
        for _ in range(warmup):
            variants[name]()
    out = {name: Timing() for name in names}
    for r in range(repeats):
        shift = r % len(names)
        for name in names[shift:] + names[:shift]:
            mem = PeakMemory() if memory else None
            if mem is not None:
                mem.__enter__()
            started, started_cpu = time.perf_counter(), time.process_time()
            variants[name]()
            elapsed, cpu = time.perf_counter() - started, time.process_time() - started_cpu
            if mem is not None:
                mem.__exit__(None, None, None)
                if mem.peak_bytes is not None:
                    out[name].peak_bytes.append(mem.peak_bytes)
            out[name].seconds.append(elapsed)
            out[name].cpu_seconds.append(cpu)
    return out


def ratio(timings: dict[str, Timing], name: str, base: str, *, clock: str = "wall") -> float:
    """Median over repeats of ``time(name) / time(base)`` (same round) on ``clock``."""
    if clock not in ("wall", "cpu"):
        raise ValueError(f"clock={clock!r}: choose 'wall' or 'cpu'.")
    attr = "seconds" if clock == "wall" else "cpu_seconds"
    pairs = zip(getattr(timings[name], attr), getattr(timings[base], attr), strict=True)
    return statistics.median(a / b for a, b in pairs)
