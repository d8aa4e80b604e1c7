"""Business rules, applied after the models. Each is a selector that says what it removed.

They run on the ordered slate and never reorder collections except
:class:`InsertPinnedCollections`, which moves pinned ones to their rows.
"""

from __future__ import annotations

import time

import numpy as np

from shelfrank.arrays import in_sorted, unique_inverse, unique_sorted
from shelfrank.page.slate import Slate, StageTrace


def _catalog_lookup(flags: np.ndarray, items: np.ndarray, default: bool) -> np.ndarray:
    return np.where(items >= 0, flags[np.maximum(items, 0)], default)


class DropOutOfStock:
    """Items not in stock (now, or predicted out) never reach the page."""

    def __init__(self, in_stock: np.ndarray) -> None:
        self.in_stock = np.asarray(in_stock, dtype=bool)

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        out = slate.valid & ~_catalog_lookup(self.in_stock, slate.items, True)
        n_out = int(out.sum())
        scores = np.where(out, -np.inf, slate.scores) if n_out else slate.scores
        trace = StageTrace("drop_out_of_stock", {"out_of_stock": n_out},
                           seconds=time.perf_counter() - started)
        return slate.with_trace(trace, scores=scores)


class DropJustCarted:
    """Items the user has just put in the cart (or bought) are not offered again on this page."""

    def __init__(self, just_carted: np.ndarray) -> None:
        """just_carted: the catalog indices of those items (any order, repeats allowed)."""
        just_carted = np.asarray(just_carted)
        if just_carted.dtype == bool:
            raise TypeError("DropJustCarted takes the carted items' catalog indices, not a mask over the catalog")
        self.just_carted = unique_sorted(just_carted.astype(np.int64))

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        if len(self.just_carted):
            out = slate.valid & in_sorted(slate.items.ravel(), self.just_carted).reshape(slate.items.shape)
            scores, n_out = np.where(out, -np.inf, slate.scores), int(out.sum())
        else:  # the usual case: nothing carted in the last day
            scores, n_out = slate.scores, 0
        trace = StageTrace("drop_just_carted", {"just_carted": n_out}, seconds=time.perf_counter() - started)
        return slate.with_trace(trace, scores=scores)


class DemoteMissingImages:
    """Items without an image drop below every item with one in their row (or are removed)."""

    def __init__(self, has_image: np.ndarray, remove: bool = False) -> None:
        self.has_image = np.asarray(has_image, dtype=bool)
        self.remove = remove

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        missing = slate.valid & ~_catalog_lookup(self.has_image, slate.items, True)
        if not missing.any():  # nothing to move
            return slate.with_trace(StageTrace("demote_missing_images", {"no_image": 0} if self.remove
                                               else {}, seconds=time.perf_counter() - started))
        if self.remove:
            trace = StageTrace("demote_missing_images", {"no_image": int(missing.sum())},
                               seconds=time.perf_counter() - started)
            return slate.with_trace(trace, scores=np.where(missing, -np.inf, slate.scores))
        # Shift below the row's worst imaged item, keeping their order among themselves.
        finite = np.where(slate.valid, slate.scores, np.inf)
        floor = np.where(missing, np.inf, finite).min(axis=1, keepdims=True)
        floor = np.where(np.isfinite(floor), floor, 0.0)
        top_missing = np.where(missing, slate.scores, -np.inf).max(axis=1, keepdims=True)
        shifted = slate.scores - np.where(np.isfinite(top_missing), top_missing, 0.0) + floor - 1.0
        scores = np.where(missing, shifted, slate.scores)
        trace = StageTrace("demote_missing_images", demoted=int(missing.sum()), seconds=time.perf_counter() - started)
        return slate.with_trace(trace, scores=scores)


class DedupeItemsAcrossPage:
    """An item is shown once per page: at its first place in reading order (top row first).

    Only the first `visible` items of a row count as shown, so an item deep in a long
    row does not block it from a higher place in a later row.
    """

    def __init__(self, visible: int = 10) -> None:
        self.visible = visible

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        scores = slate.scores.copy()
        items = slate.items
        # Each row's slots by descending score, sorted once: removing an item (-inf) only moves it
        # last, so the order of the others stays valid. Rows are tens of slots: plain Python over
        # lists beats a dozen numpy calls per row.
        order = slate.display_order
        live = np.flatnonzero(slate.live_collections)
        # Valid slots lead the display order (removed and empty ones score -inf), so a row's
        # candidates are usually a prefix of its sorted items.
        at = (live[:, None], order[live])
        sorted_valid = slate.valid[at]
        n_valid = sorted_valid.sum(axis=1)
        prefix = bool((sorted_valid[:, :-1] >= sorted_valid[:, 1:]).all())  # no valid slot after an invalid one
        valid_lists = None if prefix else sorted_valid.tolist()
        sorted_items = items[at].tolist()
        shown: set[int] = set()
        drop_rows, drop_slots = [], []
        visible = self.visible
        for r, (row_items, n) in enumerate(zip(sorted_items, n_valid.tolist(), strict=True)):
            slots = range(n) if valid_lists is None else [k for k, ok in enumerate(valid_lists[r]) if ok]
            row = [row_items[k] for k in slots] if valid_lists is not None else row_items[:n]
            repeated = shown.intersection(row)
            if not repeated:  # the usual case: nothing of this row is on the page yet
                shown.update(row[:visible])
                continue
            dropped = [k for k, item in zip(slots, row, strict=True) if item in repeated]
            drop_rows.extend([r] * len(dropped))
            drop_slots.extend(dropped)
            shown.update([item for item in row if item not in repeated][:visible])
        if drop_rows:
            rows = live[drop_rows]
            scores[rows, order[rows, drop_slots]] = -np.inf
        removed = len(drop_rows)
        trace = StageTrace("dedupe_items_across_page", {"repeated_on_page": removed},
                           seconds=time.perf_counter() - started)
        return slate.with_trace(trace, scores=scores)


class DropThinCollections:
    """A collection left with fewer than `min_items` items is dropped from the page."""

    def __init__(self, min_items: int = 4) -> None:
        self.min_items = min_items

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        thin = slate.live_collections & (slate.valid.sum(axis=1) < self.min_items)
        trace = StageTrace("drop_thin_collections", {"too_few_items": int(thin.sum())},
                           seconds=time.perf_counter() - started)
        return slate.with_trace(trace, collection_scores=np.where(thin, -np.inf, slate.collection_scores))


class InsertPinnedCollections:
    """Pinned (promoted) collections take their configured row; the others keep their order around them."""

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        live = np.flatnonzero(slate.live_collections).tolist()
        pinned_rows = slate.pinned_rows.tolist()
        pinned = [c for c in live if pinned_rows[c] >= 0]
        order: list[int] = [c for c in live if pinned_rows[c] < 0]
        for c in sorted(pinned, key=pinned_rows.__getitem__):
            order.insert(min(pinned_rows[c], len(order)), c)
        is_live = set(live)
        order += [c for c in range(len(slate.collection_ids)) if c not in is_live]
        index = np.asarray(order, dtype=np.int64)
        trace = StageTrace("insert_pinned_collections", seconds=time.perf_counter() - started)
        return slate.reorder_collections(index, trace)


class DropSimilarCollections:
    """A collection whose shown items are too like those of a collection above it is dropped.

    Similarity of two rows: cosine of their category histograms over the first `visible`
    items (1 = the same categories in the same proportions), plus exact overlap of items.
    Curated pinned collections are never dropped by this rule.
    """

    def __init__(self, category: np.ndarray, max_similarity: float = 0.9, visible: int = 10) -> None:
        self.category = np.asarray(category)
        self.max_similarity = max_similarity
        self.visible = visible

    def apply(self, slate: Slate) -> Slate:
        started = time.perf_counter()
        live = np.flatnonzero(slate.live_collections)
        dropped = np.zeros(len(slate.collection_ids), dtype=bool)
        if len(live) > 1:
            similarity = (self.row_similarity(slate, live) > self.max_similarity).tolist()
            pinned = (slate.pinned_rows[live] >= 0).tolist()
            kept: list[int] = []
            for i, c in enumerate(live.tolist()):
                too_similar = similarity[i]
                if not pinned[i] and any(map(too_similar.__getitem__, kept)):
                    dropped[c] = True
                    continue
                kept.append(i)
        trace = StageTrace("drop_similar_collections", {"similar_collection": int(dropped.sum())},
                           seconds=time.perf_counter() - started)
        return slate.with_trace(trace, collection_scores=np.where(dropped, -np.inf, slate.collection_scores))

    def row_similarity(self, slate: Slate, rows: np.ndarray) -> np.ndarray:
        """(R, R) cosine of the rows' category histograms over their first `visible` shown items,
        as one product over the categories present on the page (not the catalog's thousands)."""
        top = slate.display_order[rows, : self.visible]
        picked = np.arange(len(rows))[:, None]
        items = slate.items[rows][picked, top]
        shown = slate.valid[rows][picked, top]
        category = np.where(shown, self.category[np.maximum(items, 0)] + 1, -1)  # +1: "no category" counts
        row_of, col = np.nonzero(shown)
        present, code = unique_inverse(category[row_of, col])
        hist = np.bincount(row_of * len(present) + code, minlength=len(rows) * len(present)).astype(np.float64)
        hist = hist.reshape(len(rows), len(present))
        norm = np.sqrt((hist * hist).sum(axis=1, keepdims=True))  # np.linalg.norm's formula, no wrapper
        hist = np.divide(hist, norm, out=np.zeros_like(hist), where=norm > 0)
        return hist @ hist.T
