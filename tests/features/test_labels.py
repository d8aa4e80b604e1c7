from datetime import UTC, datetime, timedelta

import duckdb
import pytest

from shelfrank.contracts import EVENTS
from shelfrank.features.labels import collection_impression_labels, item_impression_labels

T0 = datetime(2026, 10, 1, 12, tzinfo=UTC)


@pytest.fixture
def con():
    con = duckdb.connect()
    columns = ", ".join(f'"{f.name}" {f.duckdb_type}' for f in EVENTS.fields)
    con.execute(f"CREATE TABLE events ({columns})")
    return con


def _add(con, rows):
    for i, (minutes, event_type, request, item, collection, row, position) in enumerate(rows):
        con.execute(
            "INSERT INTO events (event_id, ts, user_id, session_id, event_type, item_id, collection_id, row, "
            "position, request_id, surface) VALUES (?, ?, 'u1', 's1', ?, ?, ?, ?, ?, ?, 'web')",
            [f"e{i}", T0 + timedelta(minutes=minutes), event_type, item, collection, row, position, request],
        )


def test_the_label_is_the_deepest_stage_not_the_latest_event(con):
    _add(con, [
        (0, "impression", "r1", "a", "c1", 0, 0),
        (0, "impression", "r1", "b", "c1", 0, 1),
        (0, "impression", "r1", "c", "c2", 1, 0),
        (1, "click", "r1", "a", "c1", 0, 0),
        (2, "purchase", "r1", "a", "c1", 0, 0),
        (3, "click", "r1", "a", "c1", 0, 0),  # a later click does not downgrade the purchase
        (1, "click", "r1", "c", "c2", 1, 0),
        (2, "add_to_cart", "r1", "c", "c2", 1, 0),
    ])
    labels = item_impression_labels(con).to_pylist()
    assert {(r["item_id"], r["stage"]) for r in labels} == {("a", 3), ("b", 0), ("c", 2)}


def test_actions_are_credited_to_their_own_request_and_slot(con):
    _add(con, [
        (0, "impression", "r1", "a", "c1", 0, 0),
        (0, "impression", "r1", "a", "c2", 2, 4),  # same item in another collection of the page
        (5, "impression", "r2", "a", "c1", 0, 0),
        (6, "click", "r2", "a", "c1", 0, 0),
        (7, "add_to_cart", None, "a", None, None, None),  # no request: trains nothing
    ])
    labels = item_impression_labels(con).to_pylist()
    got = {(r["request_id"], r["row"], r["position"]): r["stage"] for r in labels}
    assert got == {("r1", 0, 0): 0, ("r1", 2, 4): 0, ("r2", 0, 0): 1}


def test_duplicate_impressions_count_once_and_the_window_filters_impressions(con):
    _add(con, [
        (0, "impression", "r1", "a", "c1", 0, 0),
        (0, "impression", "r1", "a", "c1", 0, 0),
        (90, "impression", "r2", "b", "c1", 0, 0),
        (95, "click", "r2", "b", "c1", 0, 0),
    ])
    assert item_impression_labels(con).num_rows == 2
    later = item_impression_labels(con, start=T0 + timedelta(minutes=60)).to_pylist()
    assert [(r["item_id"], r["stage"]) for r in later] == [("b", 1)]
    # The click after the window's end still labels an impression inside it.
    early = item_impression_labels(con, end=T0 + timedelta(minutes=91)).to_pylist()
    assert sorted((r["item_id"], r["stage"]) for r in early) == [("a", 0), ("b", 1)]


def test_collection_labels_take_the_deepest_stage_of_their_items(con):
    _add(con, [
        (0, "impression", "r1", "a", "c1", 0, 0),
        (0, "impression", "r1", "b", "c1", 0, 1),
        (0, "impression", "r1", "c", "c2", 1, 0),
        (1, "add_to_cart", "r1", "b", "c1", 0, 1),
    ])
    got = {(r["collection_id"], r["row"]): (r["n_items"], r["stage"])
           for r in collection_impression_labels(con).to_pylist()}
    assert got == {("c1", 0): (2, 2), ("c2", 1): (1, 0)}
