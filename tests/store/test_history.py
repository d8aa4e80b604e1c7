"""The online user history and trending state: bounded, ordered, decayed, per location, replayable."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np
import pyarrow as pa
import pytest

from shelfrank.store.catalog import Catalog
from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE, InMemoryUserHistory

T0 = datetime(2026, 10, 1, tzinfo=UTC)
DAY = 86_400.0


def make_catalog(n: int = 4) -> Catalog:
    ids = [f"i{k}" for k in range(n)]
    return Catalog(pa.table({
        "item_id": ids, "title": ids, "vertical": ["v"] * n, "category_id": ["c"] * n, "brand": ["b"] * n,
        "price": [1.0] * n, "has_image": [True] * n, "image_url": [""] * n, "in_stock": [True] * n,
        "stock_quantity": pa.array([None] * n, pa.int64()),
        "created_at": pa.array([T0] * n, pa.timestamp("us", tz="UTC")),
        "tags": pa.array([[]] * n, pa.list_(pa.string())),
    }))


def events(rows: list[tuple[str, str, str, float, str]]) -> pa.Table:
    """(user, item, event type, hours after T0, location)."""
    return pa.table({
        "ts": pa.array([T0 + timedelta(hours=r[3]) for r in rows], pa.timestamp("us", tz="UTC")),
        "user_id": [r[0] for r in rows],
        "session_id": [f"s{int(r[3] // 24)}" for r in rows],
        "event_type": [r[2] for r in rows],
        "item_id": [r[1] for r in rows],
        "location": [r[4] for r in rows],
    })


def at(hours: float) -> float:
    return (T0 + timedelta(hours=hours)).timestamp()


@pytest.fixture
def catalog() -> Catalog:
    return make_catalog()


def test_history_keeps_engagement_only_oldest_first_with_codes_and_sessions(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog)
    state.update(events([("u", "i2", "purchase", 30, "r"), ("u", "i1", "impression", 1, "r"),
                         ("u", "i1", "click", 2, "r"), ("u", "", "search", 3, "r"),
                         ("u", "i3", "add_to_cart", 4, "r"), ("u", "gone", "click", 5, "r")]))
    h = state.history("u")
    assert list(catalog.item_ids[h.items]) == ["i1", "i3", "i2"]
    assert list(h.events) == [CLICK, ADD_TO_CART, PURCHASE]
    assert list(h.ts) == [at(2), at(4), at(30)]
    assert list(h.sessions) == ["s0", "s0", "s1"]


def test_history_of_an_unknown_user_is_empty(catalog: Catalog) -> None:
    assert len(InMemoryUserHistory(catalog).history("nobody")) == 0


def test_history_is_bounded_to_the_most_recent_events_across_batches(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog, max_events_per_user=3)
    state.update(events([("u", f"i{k % 4}", "click", k, "r") for k in range(5)]))
    assert list(state.history("u").ts) == [at(2), at(3), at(4)]
    state.update(events([("u", "i0", "purchase", 10, "r"), ("v", "i1", "click", 1, "r")]))
    assert list(state.history("u").ts) == [at(3), at(4), at(10)]
    assert len(state.history("v")) == 1


def test_late_events_are_merged_in_time_order(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog)
    state.update(events([("u", "i0", "click", 10, "r")]))
    state.update(events([("u", "i1", "click", 5, "r"), ("u", "i2", "click", 20, "r")]))
    assert list(state.history("u").ts) == [at(5), at(10), at(20)]


def test_a_history_handed_out_does_not_change_with_later_events(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog)
    state.update(events([("u", "i0", "click", 1, "r")]))
    before = state.history("u")
    state.update(events([("u", "i1", "click", 2, "r")]))
    assert len(before) == 1 and len(state.history("u")) == 2
    assert not before.items.flags.writeable


def test_max_users_drops_the_least_recently_updated(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog, max_users=2)
    for k, user in enumerate(["a", "b", "a", "c"]):
        state.update(events([(user, "i0", "click", k, "r")]))
    assert len(state) == 2 and len(state.history("b")) == 0 and len(state.history("a")) == 2


def test_trending_weights_the_funnel_and_follows_location(catalog: Catalog) -> None:
    state = InMemoryUserHistory(catalog)
    state.update(events([("a", "i0", "click", 0, "north")] * 4 + [("b", "i1", "add_to_cart", 0, "north")]
                        + [("c", "i2", "purchase", 0, "south")]))
    items, scores = state.trending("north", at(0), 10)
    assert list(catalog.item_ids[items]) == ["i0", "i1"] and np.allclose(scores, [4.0, 3.0])
    items, scores = state.trending("south", at(0), 10)
    assert list(catalog.item_ids[items]) == ["i2"] and np.allclose(scores, [10.0])
    items, scores = state.trending(None, at(0), 2)
    assert list(catalog.item_ids[items]) == ["i2", "i0"] and np.allclose(scores, [10.0, 4.0])
    assert len(state.trending("elsewhere", at(0), 10)[0]) == 0


def test_trending_decays_with_the_half_life_whatever_the_batching(catalog: Catalog) -> None:
    rows = [("a", "i0", "purchase", 0, "r"), ("a", "i1", "click", 24, "r"), ("b", "i1", "click", 48, "r")]
    whole = InMemoryUserHistory(catalog, half_life_days=1.0)
    whole.update(events(rows))
    one_by_one = InMemoryUserHistory(catalog, half_life_days=1.0)
    for row in reversed(rows):
        one_by_one.update(events([row]))
    for state in (whole, one_by_one):
        items, scores = state.trending("r", at(72), 10)
        assert list(catalog.item_ids[items]) == ["i0", "i1"]
        assert np.allclose(scores, [10 / 8, 1 / 4 + 1 / 2])


def test_from_store_replays_engagement_before_as_of() -> None:
    con = duckdb.connect()
    table = events([("u", "i0", "click", 1, "r"), ("u", "i1", "purchase", 2, "r"),
                    ("u", "i2", "impression", 3, "r"), ("u", "i3", "click", 50, "r")])
    con.register("incoming", table)
    con.execute("CREATE TABLE events AS SELECT * FROM incoming")
    catalog = make_catalog()
    state = InMemoryUserHistory.from_store(con, catalog, as_of=T0 + timedelta(hours=24))
    assert list(catalog.item_ids[state.history("u").items]) == ["i0", "i1"]
    assert len(InMemoryUserHistory.from_store(con, catalog).history("u")) == 3


def test_trending_scores_stay_exact_across_hundreds_of_half_lives(catalog: Catalog) -> None:
    """Scores are stored as of a reference time that moves (one rescale) when growth factors
    would overflow: after 600 daily half-lives the old purchase is still 10 * 2**-600."""
    state = InMemoryUserHistory(catalog, half_life_days=1.0)
    state.update(events([("a", "i0", "purchase", 0, "r")]))
    state.update(events([("b", "i1", "click", 600 * 24, "r")]))
    items, scores = state.trending("r", at(600 * 24), 10)
    assert list(catalog.item_ids[items]) == ["i1", "i0"]
    np.testing.assert_allclose(scores, [1.0, 10 * 2.0 ** -600], rtol=1e-9)
