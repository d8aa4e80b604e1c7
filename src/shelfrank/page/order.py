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
        relevance = np.where(np.isfinite(slate.scores), slate.relevance, -np.inf)
        value = np.where(slate.live_collections, top_k_mean(relevance, self.k), -np.inf)
        order = np.argsort(-value, kind="stable")
        trace = StageTrace("order_by_top_k_mean", seconds=time.perf_counter() - started)
        return slate.reorder_collections(order, trace, collection_scores=value[order])


class OrderByMarginalGain:
    """Greedy: the next row goes to the collection that adds most to the page given the rows above.

    A collection's value at row r is sum_j exam(r, j) * rel_j * (1 - beta * seen_j) over its
    shown items j in display order, where exam is the learned examination curve, rel the
    ranker's score and seen_j in [0, 1] how much of item j's category and brand the rows
    above already showed (category weight 0.6, brand 0.4, saturating after `saturation`
    items). It is the page-level analogue of MMR: rows that repeat what is above are worth less.
    """

    def __init__(self, examination: np.ndarray, category: np.ndarray, brand: np.ndarray, visible: int = 10,
                 beta: float = 0.5, saturation: int = 4) -> None:
        self.examination = np.asarray(examination, dtype=np.float64)  # (rows, positions)
        self.category = category
        self.brand = brand
        self.visible = visible
        self.beta = beta
        self.saturation = saturation

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        live = np.flatnonzero(slate.live_collections)
        C = len(slate.collection_ids)
        if len(live) == 0:
            return slate.with_trace(StageTrace("order_by_marginal_gain", seconds=time.perf_counter() - started))
        # Each live row's shown items in display order, and their relevance.
        display = np.argsort(-np.where(slate.valid, slate.scores, -np.inf), axis=1, kind="stable")[:, : self.visible]
        rows_idx = np.arange(C)[:, None]
        items = np.where(slate.valid[rows_idx, display], slate.items[rows_idx, display], -1)[live]
        rel = np.where(items >= 0, np.maximum(slate.relevance[rows_idx, display][live], 0.0), 0.0)
        present = items >= 0
        cat = np.where(present, self.category[np.maximum(items, 0)], -1)
        brand = np.where(present, self.brand[np.maximum(items, 0)], -1)
        n_rows_curve, n_pos = self.examination.shape
        width = items.shape[1]
        cat_seen = np.zeros(int(self.category.max(initial=0)) + 1)
        brand_seen = np.zeros(int(self.brand.max(initial=0)) + 1)
        remaining = np.ones(len(live), dtype=bool)
        order, gains = [], []
        for r in range(len(live)):
            exam = self.examination[min(r, n_rows_curve - 1), :width]
            if len(exam) < width:
                exam = np.r_[exam, np.full(width - len(exam), exam[-1] if len(exam) else 0.0)]
            seen_c = np.where(cat >= 0, cat_seen[np.maximum(cat, 0)], 0.0)
            seen_b = np.where(brand >= 0, brand_seen[np.maximum(brand, 0)], 0.0)
            seen = 0.6 * np.minimum(seen_c / self.saturation, 1.0) + 0.4 * np.minimum(seen_b / self.saturation, 1.0)
            value = (exam[None, :] * rel * (1.0 - self.beta * seen)).sum(axis=1)
            value = np.where(remaining, value, -np.inf)
            best = int(value.argmax())
            remaining[best] = False
            order.append(live[best])
            gains.append(float(value[best]))
            shown_c, shown_b = cat[best][cat[best] >= 0], brand[best][brand[best] >= 0]
            np.add.at(cat_seen, shown_c, 1.0)
            np.add.at(brand_seen, shown_b, 1.0)
        dead = np.setdiff1d(np.arange(C), live)
        index = np.concatenate([np.asarray(order, dtype=np.int64), dead])
        values = np.concatenate([np.asarray(gains), np.full(len(dead), -np.inf)])
        return slate.reorder_collections(index, StageTrace("order_by_marginal_gain",
                                                           seconds=time.perf_counter() - started),
                                         collection_scores=values)
