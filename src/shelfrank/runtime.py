"""Process settings for serving pages: what a long-lived engine process does once it is built.

The engine holds a few hundred thousand long-lived Python objects (catalog strings, feature-space
and model objects, per-user maps). With CPython's default collector settings every few pages
trigger a collection that walks them again, which costs page latency (p99 45 -> 29 ms at
standard scale, docs/benchmarks.md). The serving convention (as at Instagram, and CPython's
own advice for forking servers) is to freeze what start-up built into the permanent
generation and to collect the young generation less often.
"""

from __future__ import annotations

import gc

YOUNG_THRESHOLD = 10_000  # allocations between young collections (CPython's default: 700)
OLDER_THRESHOLDS = (50, 50)  # young (then middle) collections between older ones (default: 10, 10)


def settle_after_start() -> None:
    """Collect once, move every object alive now out of the collector's reach, and space out
    collections. Call after the engine is built, before serving. A second call (a new engine in
    the same process) first returns the frozen objects, so a replaced engine can be collected."""
    gc.unfreeze()
    gc.collect()
    gc.freeze()
    gc.set_threshold(YOUNG_THRESHOLD, *OLDER_THRESHOLDS)
