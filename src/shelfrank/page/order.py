"""Collection ordering: the vertical order of the page."""

from __future__ import annotations

import time

import numpy as np

from shelfrank.page.slate import Slate, StageTrace


def top_k_mean(scores: np.ndarray, k: int) -> np.ndarray:
    """(C,) mean of each row's k best finite scores; -inf for a row with none."""
    finite = np.where(np.isfinite(scores), scores, -np.inf)
    k = min(k, scores.shape[1])
    top = -np.sort(-finite, axis=1)[:, :k]
    present = np.isfinite(top)
    total = np.where(present, top, 0.0).sum(axis=1)
    count = present.sum(axis=1)
    return np.where(count > 0, total / np.maximum(count, 1), -np.inf)


class OrderByTopKMean:
    """Rows sorted by the mean of their top-K item scores (the items a user sees first)."""

    def __init__(self, k: int = 5) -> None:
        if k < 1:
            raise ValueError("k must be at least 1")
        self.k = k

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        value = np.where(slate.live_collections, top_k_mean(slate.scores, self.k), -np.inf)
        order = np.argsort(-value, kind="stable")
        return slate.with_trace(
            StageTrace("order_by_top_k_mean", seconds=time.perf_counter() - started),
            collection_ids=slate.collection_ids[order],
            items=slate.items[order],
            scores=slate.scores[order],
            collection_scores=value[order],
            pinned_rows=slate.pinned_rows[order],
        )
