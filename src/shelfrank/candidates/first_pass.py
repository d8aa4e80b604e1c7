"""The first pass: from every source's proposals to a few hundred candidate collections, cheaply.

Steps, cheapest first: drop collections with too few in-stock items; merge proposals with
the same id (the strongest prior wins, the generators are kept as signals); score each by
its source prior plus, when the user has a taste vector, the cosine between it and the
collection's vector (the mean embedding of its leading items); keep pinned collections and
the `max_candidates` best. The ML sources already used approximate nearest-neighbour search
to propose theirs; here the candidates are at most a few thousand, so one matrix-vector
product scores them all.
"""

from __future__ import annotations

from collections import Counter

import numpy as np

from shelfrank.arrays import group_sums
from shelfrank.candidates.base import CandidateCollection

LEADING_ITEMS = 10
TASTE_WEIGHT = 1.0


def first_pass(candidates: list[CandidateCollection], in_stock: np.ndarray, max_candidates: int, min_items: int,
               taste: np.ndarray | None = None, item_vectors: np.ndarray | None = None,
               ) -> tuple[list[CandidateCollection], np.ndarray, Counter]:
    """(kept candidates with their in-stock items only, their first-pass scores, removal counts)."""
    removed: Counter = Counter()
    best: dict[str, CandidateCollection] = {}
    # One stock read for every candidate's items; only collections that hold an out-of-stock item
    # are rebuilt (the sources mostly propose in-stock items already).
    sizes = np.asarray([len(c.items) for c in candidates], dtype=np.int64)
    flat = np.concatenate([c.items for c in candidates]).astype(np.int64) if len(candidates) else sizes
    stocked = in_stock[flat]
    ends = np.cumsum(sizes)
    running = np.concatenate([[0], np.cumsum(stocked)])
    n_stocked = (running[ends] - running[ends - sizes]).tolist()
    for c, size, start, n_ok in zip(candidates, sizes.tolist(), (ends - sizes).tolist(), n_stocked, strict=True):
        if n_ok < min_items and c.pinned_row < 0:
            removed["too_few_in_stock"] += 1
            continue
        if n_ok != size:
            c = _with_items(c, c.items[stocked[start: start + size]])
        other = best.get(c.collection_id)
        if other is not None:
            removed["duplicate_id"] += 1
            if other.prior >= c.prior:
                continue
        best[c.collection_id] = c
    kept = list(best.values())
    if not kept:
        return [], np.zeros(0), removed
    score = np.asarray([c.prior for c in kept], dtype=np.float64)
    if taste is not None and item_vectors is not None:
        leading = [c.items[:LEADING_ITEMS] for c in kept]
        lengths = np.asarray([len(x) for x in leading], dtype=np.int64)
        flat = np.concatenate(leading)
        # a pinned row may have no item in stock: its vector stays 0
        sums = group_sums(item_vectors[flat], lengths).astype(np.float64, copy=False)
        norms = np.sqrt((sums * sums).sum(axis=1))  # np.linalg.norm's own formula, without its wrapper
        score = score + TASTE_WEIGHT * np.where(norms > 0, (sums @ taste) / np.maximum(norms, 1e-12), 0.0)
    pinned = np.asarray([c.pinned_row >= 0 for c in kept])
    order = np.lexsort((-score, ~pinned))  # pinned first, then by score
    keep = order[:max(max_candidates, int(pinned.sum()))]
    removed["first_pass_cut"] += len(kept) - len(keep)
    return [kept[i] for i in keep], score[keep], removed


def _with_items(c: CandidateCollection, items: np.ndarray) -> CandidateCollection:
    from dataclasses import replace

    return replace(c, items=items)
