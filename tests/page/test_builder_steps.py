"""The page runner's vectorized steps against plain per-row references: item exploration, the refill
after the page-wide dedupe, and the dedupe when valid slots are not a prefix of the display order."""

from __future__ import annotations

from types import SimpleNamespace

import numpy as np
import pytest

from shelfrank.page.builder import _explore_items, _refill
from shelfrank.page.explore import explore_slots
from shelfrank.page.pipeline import DEFAULT
from shelfrank.page.rules import DedupeItemsAcrossPage
from shelfrank.page.slate import Slate

DAY = 86_400.0


def _reference_explore(items, relevance, lengths, candidates, eligible, epsilon, first_position, rng):
    """The per-row loop the vectorized step replaced: one explore_slots call per row, an item explored
    into a row no longer eligible below it."""
    draws = rng.random(len(items))
    out_items, out_rel, out_explored, out_p = items.copy(), relevance.copy(), np.zeros(items.shape, bool), \
        np.ones(items.shape)
    placed: set[int] = set()
    for r in range(len(items)):
        k = int(lengths[r])
        pickable = np.asarray([c for c, ok in zip(candidates[r], eligible[r], strict=True)
                               if ok and c not in placed], dtype=np.int64)
        place = explore_slots(items[r, :k], pickable, epsilon, min(first_position, max(k - 1, 0)), rng, draws[r])
        out_items[r, :k], out_explored[r, :k], out_p[r, :k] = place.shown, place.explored, place.propensity
        if place.slot >= 0:
            rel = np.full(k, np.nan)
            rel[~place.explored] = relevance[r, : k - 1]
            out_rel[r, :k] = rel
            placed.add(int(place.shown[place.slot]))
    return out_items, out_rel, out_explored, out_p


@pytest.mark.parametrize("seed", range(40))
def test_item_exploration_equals_the_per_row_reference(seed):
    rng = np.random.default_rng(seed)
    n_items, R, W, P = 60, int(rng.integers(1, 7)), 6, 9
    t = 100 * DAY
    cat = SimpleNamespace(created_t=np.where(rng.random(n_items) < 0.3, t - DAY, 0.0),
                          in_stock=rng.random(n_items) < 0.9)
    # Shown rows (distinct items per row; rows may share new items through their pools).
    items = np.stack([rng.choice(40, W, replace=False) for _ in range(R)]).astype(np.int64)
    lengths = rng.integers(0, W + 1, R)
    relevance = rng.normal(size=(R, W))
    pool_items = np.stack([np.r_[items[r], rng.choice(np.arange(40, n_items), P - W, replace=False)]
                           for r in range(R)]).astype(np.int64)
    pool = Slate(np.asarray([f"c{r}" for r in range(R)], dtype=object), pool_items, np.zeros((R, P)),
                 np.zeros(R), np.full(R, -1, dtype=np.int64))
    pipeline = DEFAULT.with_(explore_items=float(rng.choice([0.3, 0.6, 1.0])), explore_first_position=1)
    # The reference's eligibility: new, in stock, not among the shown items.
    shown = {int(i) for r in range(R) for i in items[r, : lengths[r]]}
    eligible = np.array([[t - cat.created_t[c] < pipeline.new_item_days * DAY and cat.in_stock[c]
                          and int(c) not in shown for c in row] for row in pool_items])
    expected = _reference_explore(items, relevance, lengths, pool_items, eligible, pipeline.explore_items,
                                  pipeline.explore_first_position, np.random.default_rng(seed))
    got_items, got_rel, got_explored, got_p = items.copy(), relevance.copy(), np.zeros((R, W), bool), np.ones((R, W))
    _explore_items(got_items, got_rel, got_explored, got_p, lengths, np.arange(R), [f"c{r}" for r in range(R)],
                   pool, pipeline, t, cat, np.random.default_rng(seed))
    mask = np.arange(W)[None, :] < lengths[:, None]
    for got, want in zip((got_items, got_rel, got_explored, got_p), expected, strict=True):
        np.testing.assert_array_equal(got[mask], want[mask])


def test_refill_tops_up_short_rows_in_order_without_repeating_an_item():
    # Rows a and b lost items to the dedupe and share pool item 9; c has nothing left to add.
    slate = Slate.from_lists(["a", "b", "c"], items=[[1, 2], [3, 4], [6]], scores=[[0.9, 0.8], [0.7, 0.6], [0.4]])
    pool = Slate.from_lists(["a", "b", "c"],
                            items=[[1, 2, 7, 8, 9, 10], [3, 4, 9, 8, 11], [6, 3]],
                            scores=[[0.9, 0.8, 0.7, -np.inf, 0.5, 0.4], [0.7, 0.6, 0.5, 0.45, 0.1], [0.4, 0.3]])
    in_stock = np.ones(12, dtype=bool)
    in_stock[10] = False
    out = dict(_refill(slate, pool, width=4, in_stock=in_stock).rows())
    assert out["a"] == [1, 2, 7, 9]  # 8 was removed from a's pool (-inf), 10 is out of stock
    assert out["b"] == [3, 4, 8, 11]  # 9 went to row a, above
    assert out["c"] == [6]  # its only other item (3) is on the page already
    full = Slate.from_lists(["a"], items=[[1, 2]], scores=[[0.9, 0.8]])
    assert _refill(full, pool, width=2, in_stock=in_stock) is full  # nothing short: unchanged


def test_dedupe_reads_valid_slots_wherever_the_display_order_puts_them():
    """Empty slots usually score -inf and sort last; one with a finite score (a caller's slate) sits
    among the valid ones. The result must equal that of the same slate with the slot at -inf."""
    items = [[1, -1, 2, 3], [2, 4, -1, 3], [5, 1, 6, 7]]
    scores = [[0.9, 0.8, 0.7, 0.6], [0.95, 0.5, 0.9, 0.4], [0.3, 0.2, 0.1, 0.05]]
    odd = Slate.from_lists(["a", "b", "c"], items=items, scores=scores)
    clean = Slate.from_lists(["a", "b", "c"], items=items,
                             scores=[[s if i >= 0 else -np.inf for i, s in zip(ri, rs, strict=True)]
                                     for ri, rs in zip(items, scores, strict=True)])
    for visible in (1, 2, 3):
        a, b = DedupeItemsAcrossPage(visible).apply(odd), DedupeItemsAcrossPage(visible).apply(clean)
        assert a.rows() == b.rows()
        assert a.trace[-1].removed == b.trace[-1].removed
