"""Property-based: whatever the catalog and stock, the page rules are never violated."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from shelfrank.page.order import OrderByTopKMean
from shelfrank.page.rules import (
    DedupeItemsAcrossPage,
    DemoteMissingImages,
    DropOutOfStock,
    DropThinCollections,
    InsertPinnedCollections,
)
from shelfrank.page.slate import Slate


@st.composite
def pages(draw):
    n_items = draw(st.integers(5, 40))
    in_stock = np.array(draw(st.lists(st.booleans(), min_size=n_items, max_size=n_items)))
    has_image = np.array(draw(st.lists(st.booleans(), min_size=n_items, max_size=n_items)))
    n_rows = draw(st.integers(1, 6))
    width = draw(st.integers(1, 12))
    rng = np.random.default_rng(draw(st.integers(0, 2**31)))
    items = rng.integers(-1, n_items, size=(n_rows, width))
    scores = np.where(items >= 0, rng.normal(size=items.shape), -np.inf)
    pinned = np.where(rng.random(n_rows) < 0.3, rng.integers(0, n_rows, n_rows), -1)
    slate = Slate(np.asarray([f"c{i}" for i in range(n_rows)], dtype=object), items, scores,
                  np.zeros(n_rows), pinned.astype(np.int64))
    return slate, in_stock, has_image, draw(st.integers(1, 5)), draw(st.integers(1, 12))


@settings(max_examples=200, deadline=None)
@given(pages())
def test_rules_hold_on_any_catalog_and_stock_state(case):
    slate, in_stock, has_image, min_items, visible = case
    out = OrderByTopKMean(3).apply(slate)
    out = DropOutOfStock(in_stock).apply(out)
    out = DemoteMissingImages(has_image).apply(out)
    out = DedupeItemsAcrossPage(visible=visible).apply(out)
    out = DropThinCollections(min_items).apply(out)
    out = InsertPinnedCollections().apply(out)
    rows = out.rows()
    shown: list[int] = []
    for cid, items in rows:
        # No out-of-stock item, and every surviving collection has enough items.
        assert all(in_stock[i] for i in items)
        assert len(items) >= min_items
        # Items without an image come after every item with one.
        flags = [bool(has_image[i]) for i in items]
        assert flags == sorted(flags, reverse=True)
        # No item twice among what is visible on the page.
        visible_items = items[:visible]
        assert not set(visible_items) & set(shown), (cid, items, shown)
        shown.extend(visible_items)
    # A surviving pinned collection sits at its row; when the page is too short it is as low as it can be
    # (only pinned rows below it), and when another pinned one claims the same row it comes right after it.
    live_ids = [cid for cid, _ in rows]
    pinned_of = dict(zip(out.collection_ids, out.pinned_rows, strict=True))
    for position, c in enumerate(live_ids):
        row = pinned_of[c]
        if row < 0 or position == row:
            continue
        if position < row:
            assert all(pinned_of[x] >= 0 for x in live_ids[position + 1:]), (live_ids, c, row)
        else:
            assert pinned_of[live_ids[position - 1]] >= 0, (live_ids, c, row)
