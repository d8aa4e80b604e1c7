"""Timing shared by the micro-benchmarks: a call repeated, min and median wall time in ms."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable


def timed(fn: Callable[[], object], repeat: int) -> tuple[float, float]:
    """(min, median) milliseconds of `repeat` calls of fn."""
    samples = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - started)
    return min(samples) * 1e3, statistics.median(samples) * 1e3
