"""The homepage engine on a tiny simulated store with trained models."""

from __future__ import annotations

from datetime import UTC, datetime

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from shelfrank.contracts import PageRequest
from shelfrank.page.engine import HomepageEngine
from shelfrank.page.hydrate import FeatureHydrator

AT = datetime(2026, 10, 7, 12, tzinfo=UTC)


def _fresh_engine(tiny_world) -> HomepageEngine:
    """An engine of the test's own, for tests that change its state (stock, events)."""
    con = duckdb.connect(str(tiny_world["database"]), read_only=True)
    try:
        return HomepageEngine.from_store(con, tiny_world["models_dir"], as_of=AT)
    finally:
        con.close()


@pytest.fixture(scope="module")
def engine(tiny_world):
    return _fresh_engine(tiny_world)


@pytest.fixture(scope="module")
def active_user(tiny_world):
    con = duckdb.connect(str(tiny_world["database"]), read_only=True)
    try:
        return con.execute("SELECT user_id FROM events WHERE event_type = 'purchase' AND ts < $at "
                           "GROUP BY ALL ORDER BY count(*) DESC LIMIT 1", {"at": AT}).fetchall()[0][0]
    finally:
        con.close()


def _without_timings(page) -> dict:
    d = page.to_dict()
    d.pop("timings_ms")
    return d


def test_a_page_has_the_requested_shape_and_obeys_the_rules(engine, active_user):
    page = engine.build(PageRequest(active_user, AT, rows=6, items=8))
    assert len(page.rows) == 6 and all(4 <= len(r.items) <= 8 for r in page.rows)
    # Rows are full unless their source had fewer items (buy again: what the user bought).
    assert sum(len(r.items) == 8 for r in page.rows) >= 4
    ids = [s.item_id for r in page.rows for s in r.items]
    assert len(ids) == len(set(ids)), "an item appears twice on the page"
    index = engine.catalog.index_of(np.asarray(ids, dtype=object))
    assert engine.catalog.in_stock[index].all()
    assert all(0 < s.propensity <= 1 for r in page.rows for s in r.items)
    assert not page.fallback and page.model_version


def test_every_row_and_item_carries_a_reason_and_its_scores(engine, active_user):
    page = engine.build(PageRequest(active_user, AT))
    for row in page.rows:
        assert row.reason and row.source in ("curated", "rules", "ml") and row.generator
        assert "first_pass" in row.signals
        for slot in row.items:
            assert slot.reason
            assert slot.explore or slot.signals, slot


def test_a_page_is_deterministic_given_its_request_and_seed(engine, active_user):
    a = engine.build(PageRequest(active_user, AT, seed=3))
    b = engine.build(PageRequest(active_user, AT, seed=3))
    assert _without_timings(a) == _without_timings(b)


def test_a_brand_new_user_gets_a_sensible_non_empty_page(engine):
    page = engine.build(PageRequest("someone-never-seen", AT))
    assert page.new_user and not page.fallback
    assert len(page.rows) >= 4 and all(len(r.items) >= 4 for r in page.rows)


def test_an_item_set_out_of_stock_is_gone_from_the_next_page(tiny_world, active_user):
    engine = _fresh_engine(tiny_world)
    request = PageRequest(active_user, AT, seed=1)
    first = engine.build(request)
    gone = first.rows[0].items[0].item_id
    engine.apply_inventory(pa.table({"item_id": [gone], "ts": pa.array([AT], pa.timestamp("us", tz="UTC")),
                                     "in_stock": [False], "quantity": pa.array([0], pa.int64()),
                                     "price": pa.array([None], pa.float64())}))
    after = engine.build(request)
    assert gone not in {s.item_id for r in after.rows for s in r.items}


def test_the_fallback_page_needs_no_model_and_says_it_is_one(engine, active_user):
    page = engine.fallback_page(PageRequest(active_user, AT), "test")
    assert page.fallback and page.fallback_reason == "test" and len(page.rows) > 0
    assert page.model_version == ""


def test_every_declared_pipeline_builds_a_page(engine, active_user):
    for name in engine.pipelines:
        page = engine.build(PageRequest(active_user, AT), name)
        assert len(page.rows) > 0 and page.pipeline == name


def test_an_unknown_pipeline_is_a_clear_error(engine, active_user):
    with pytest.raises(ValueError, match="unknown pipeline"):
        engine.build(PageRequest(active_user, AT), "nope")


def test_page_features_equal_the_online_state_read_one_collection_at_a_time(engine, active_user):
    state = engine.features
    items = state.item_ids[:25]
    collections = ["cat:c5", "brand:b3", "not-a-collection"]
    t = AT.timestamp()
    hydrated = FeatureHydrator(state).hydrate(active_user, items, collections, t, {"surface": "web"})
    for c, cid in enumerate(collections):
        expected = state.get(active_user, items, t, {"surface": "web", "collection_id": cid})
        got = hydrated.pairs(np.full(len(items), c), np.arange(len(items)))
        np.testing.assert_array_equal(got, expected)  # the same values, not just close ones


def test_after_an_add_to_cart_the_item_is_not_pushed_again_and_its_category_rises(tiny_world, active_user):
    engine = _fresh_engine(tiny_world)
    request = PageRequest(active_user, AT, seed=2, session_id="s-now")
    before = engine.build(request)
    carted = before.rows[-1].items[0]  # an item the page showed low
    engine.apply_events(pa.table({
        "ts": pa.array([AT.replace(minute=1)], pa.timestamp("us", tz="UTC")), "user_id": [active_user],
        "session_id": ["s-now"], "event_type": ["add_to_cart"], "item_id": [carted.item_id],
        "collection_id": [before.rows[-1].collection_id], "row": [len(before.rows) - 1], "position": [0],
    }))
    after = engine.build(PageRequest(active_user, AT.replace(minute=2), seed=2, session_id="s-now"))
    shown = [s for r in after.rows for s in r.items]
    assert carted.item_id not in {s.item_id for s in shown}
    top_rows = [r for r in after.rows[:3]]
    assert any(s.category_id == carted.category_id for r in top_rows for s in r.items), \
        [(r.title, r.reason) for r in after.rows]


def test_new_visitors_share_the_segment_cache_until_the_inventory_changes(tiny_world, active_user):
    engine = _fresh_engine(tiny_world)
    first = engine.build(PageRequest("visitor-1", AT, location="r01"))
    second = engine.build(PageRequest("visitor-2", AT.replace(minute=30), location="r01"))
    assert engine.cache.hits == 1 and engine.cache.misses == 1
    assert [r.collection_id for r in first.rows] == [r.collection_id for r in second.rows]
    assert "cache" in second.timings_ms and second.user_id == "visitor-2"
    engine.build(PageRequest(active_user, AT))  # a user with history is built for them alone
    assert engine.cache.hits + engine.cache.misses == 2
    gone = second.rows[0].items[0].item_id
    engine.apply_inventory(pa.table({"item_id": [gone], "ts": pa.array([AT], pa.timestamp("us", tz="UTC")),
                                     "in_stock": [False], "quantity": pa.array([0], pa.int64()),
                                     "price": pa.array([None], pa.float64())}))
    third = engine.build(PageRequest("visitor-3", AT.replace(minute=40), location="r01"))
    assert gone not in {s.item_id for r in third.rows for s in r.items}
    assert engine.cache.misses == 2


def test_a_request_reads_each_item_once_and_equals_fresh_reads(engine, active_user):
    """Retrieval then ranking through one request's reads (the second call reuses rows and collection
    columns) gives the same features as reading each set on its own."""
    hydrator = engine._resources(engine.models).hydrator
    cat = engine.catalog
    t = AT.timestamp()
    context = {"surface": "web"}
    first, second = np.arange(0, 40, 2), np.arange(10, 70, 3)
    cols_a, cols_b = ["cat:c5", "brand:b3"], ["brand:b3", "not-a-collection", "cat:c5"]
    reads = hydrator.for_request(active_user, t, context)
    a = reads.hydrate(first, cat.item_ids, cols_a)
    b = reads.hydrate(second, cat.item_ids, cols_b)
    assert len(reads._items) == len(np.union1d(first, second))  # the overlap was read once
    for items, cols, got in ((first, cols_a, a), (second, cols_b, b)):
        for c, cid in enumerate(cols):
            expected = engine.features.get(active_user, cat.item_ids[items], t, {**context, "collection_id": cid})
            # Equal up to BLAS: the embedding cosine's matrix-vector product may sum a row in another
            # order when the batch of rows differs (here: only the new items of the second read).
            np.testing.assert_allclose(got.pairs(np.full(len(items), c), np.arange(len(items))), expected,
                                       rtol=1e-12, atol=1e-15)
