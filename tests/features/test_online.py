"""The in-memory online state: batching, ordering and edge cases of update / get."""

from __future__ import annotations

import numpy as np
import pyarrow as pa
import pytest
from feature_tables import T0, at, contract_table
from random_store import fill_random_store

from shelfrank.features import FeatureSpace, InMemoryFeatureState


def _state(con) -> InMemoryFeatureState:
    return InMemoryFeatureState(FeatureSpace(), con.sql("SELECT * FROM items").to_arrow_table(),
                                con.sql("SELECT * FROM users").to_arrow_table(),
                                con.sql("SELECT * FROM collections").to_arrow_table())


def test_batching_and_order_do_not_change_the_state(con):
    fill_random_store(con, seed=9, n_events=1500)
    events = con.sql("SELECT * FROM events").to_arrow_table()  # not sorted by time
    one, many = _state(con), _state(con)
    one.update(events)
    # Batches in time order (sessions follow time), each shuffled inside.
    ordered = events.take(pa.array(np.argsort(events.column("ts").to_numpy(), kind="stable")))
    rng = np.random.default_rng(0)
    for start in range(0, ordered.num_rows, 97):
        batch = ordered.slice(start, 97)
        many.update(batch.take(pa.array(rng.permutation(batch.num_rows))))
    items, later = [f"i{i:03d}" for i in range(40)], T0.replace(year=2027)
    for user in ("u01", "u02", "u03"):
        np.testing.assert_allclose(one.get(user, items, later), many.get(user, items, later),
                                   rtol=1e-9, atol=1e-12, equal_nan=True)


def test_get_with_no_items_returns_an_empty_matrix_with_every_column(con):
    fill_random_store(con, seed=1, n_events=50)
    state = _state(con)
    assert state.get("u01", [], at(1)).shape == (0, len(state.space.names))


def test_a_batch_without_optional_columns_is_accepted(con):
    fill_random_store(con, seed=1, n_events=10)
    state = _state(con)
    batch = contract_table("events", [dict(ts=at(0), user_id="u", session_id="s", event_type="click", item_id="i001")])
    state.update(batch.select(["ts", "user_id", "session_id", "event_type", "item_id"]))
    clicks = state.get("u", ["i001"], at(1))[0, state.space.names.index("user_clicks_1d")]
    assert clicks == 0.5


def test_a_feature_space_round_trips_through_a_dict_and_refuses_unknown_features():
    import json

    import pytest

    from shelfrank.features import Vocabularies

    space = FeatureSpace(vocabularies=Vocabularies.from_dict({"surface": ["web", "ios"]}),
                         examination_curve=np.array([[1.0, 0.5]]))
    back = FeatureSpace.from_dict(json.loads(json.dumps(space.to_dict())))
    assert back.names == space.names
    assert back.vocabularies.values == {"surface": ("ios", "web")}
    np.testing.assert_array_equal(back.examination_curve, space.examination_curve)
    with pytest.raises(ValueError, match="does not declare"):
        FeatureSpace.from_dict({**space.to_dict(), "features": ["user_clicks_1d", "user_mood"]})


def test_keyed_rows_of_one_user_equal_the_full_key_search():
    from shelfrank.features.online import KeyedCounters

    rng = np.random.default_rng(3)
    users, codes = rng.integers(0, 50, 400), rng.integers(0, 300, 400)
    keyed = KeyedCounters(())
    keyed.add((users.astype(np.int64) << 32) | codes, np.zeros(400), np.zeros((400, 0)))
    for user in (-1, 0, 7, 49, 60):
        asked = np.r_[rng.integers(-1, 320, 50), -1]
        full = keyed.rows_of(np.where(asked >= 0, (np.int64(user) << 32) | np.maximum(asked, 0), -1))
        expected = np.where((asked >= 0) & (user >= 0), full, -1)
        np.testing.assert_array_equal(keyed.rows_of_user(user, asked), expected)


def test_a_users_view_reads_as_the_table_does():
    """A request reads the user's keyed rows once (decayed to t) and looks codes up in them: the
    same values as searching and decaying the table per read, absent codes included."""
    from shelfrank.features.definitions import Counter
    from shelfrank.features.online import KeyedCounters

    rng = np.random.default_rng(5)
    counters = (Counter("user_category", "decayed_sum", ("click",), half_life_days=7.0),
                Counter("user_category", "sum", ("click",)),
                Counter("user_category", "last_time", ("click",)))
    keyed = KeyedCounters(counters)
    n = 600
    users, codes, t = rng.integers(0, 40, n), rng.integers(0, 200, n), rng.uniform(0, 86_400 * 30, n)
    contributions = np.column_stack([np.ones(n), np.ones(n), t])
    keyed.add((users.astype(np.int64) << 32) | codes, t, contributions)
    at = 86_400 * 31.0
    for user in (-1, 0, 13, 39, 45):
        asked = np.r_[rng.integers(-1, 220, 80), -1]
        expected = keyed.table.read(keyed.rows_of_user(user, asked), at)
        np.testing.assert_array_equal(keyed.user_view(user, at).read(asked), expected)


@pytest.mark.parametrize("half_lives", [(1.0, 30.0), (30.0, 1.0), (7.0, 1.0, 30.0, 1.0), (30.0, 7.0, 30.0)])
def test_each_decayed_column_decays_with_its_own_half_life(half_lives):
    """Reads compute one exp per distinct half-life and spread it to the columns: in any column order
    (a regression: descending distinct rates once gave each column another's factor)."""
    from shelfrank.features.definitions import DAY_SECONDS, Counter
    from shelfrank.features.online import CounterTable

    counters = tuple(Counter("item", "decayed_sum", ("click",), half_life_days=h) for h in half_lives)
    table = CounterTable(counters, rows=2)
    table.add(np.array([0, 1]), np.array([0.0, 0.0]), np.ones((2, len(half_lives))))
    t = 10 * DAY_SECONDS
    expected = np.array([0.5 ** (10 / h) for h in half_lives])
    np.testing.assert_allclose(table.read(np.array([0, 1]), t), np.vstack([expected, expected]), rtol=1e-12)
    np.testing.assert_allclose(table.read(np.array([1]), t)[0], expected, rtol=1e-12)


def test_one_row_reads_as_the_same_row_among_many():
    """A request's own rows (user, session, collection) are read one at a time by a shorter path."""
    from shelfrank.features.definitions import Counter
    from shelfrank.features.online import CounterTable

    counters = (Counter("user", "decayed_sum", ("click",), half_life_days=1.0), Counter("user", "sum", ("click",)),
                Counter("user", "last_time", ("click",)))
    empty = CounterTable(counters)
    assert np.isnan(empty.read(np.array([0]), 10.0)[0, 2]) and empty.read(np.array([3]), 10.0)[0, 0] == 0.0
    table = CounterTable(counters, rows=5)
    t = np.array([100.0, 200.0, 250.0])
    table.add(np.array([1, 3, 1]), t, np.column_stack([np.ones(3), np.ones(3), t]))
    many = table.read(np.array([-1, 0, 1, 2, 3, 4]), 1_000.0)
    for i, row in enumerate((-1, 0, 1, 2, 3, 4)):
        np.testing.assert_array_equal(table.read(np.array([row]), 1_000.0), many[i: i + 1])
    with pytest.raises(IndexError):
        table.read(np.array([5]), 1_000.0)


def test_a_view_of_an_empty_keyed_table_reads_no_events():
    from shelfrank.features.definitions import Counter
    from shelfrank.features.online import KeyedCounters

    keyed = KeyedCounters((Counter("user_item", "sum", ("purchase",)),
                           Counter("user_item", "last_time", ("click",))))
    got = keyed.user_view(3, 10.0).read(np.array([0, 5, -1]))
    assert got[:, 0].tolist() == [0.0, 0.0, 0.0] and np.isnan(got[:, 1]).all()


def test_a_requests_few_categorical_values_encode_as_the_training_rows_do():
    from shelfrank.features.definitions import Vocabularies

    vocab = Vocabularies({"location": ("berlin", "lyon", "oslo")})
    many = np.asarray(["oslo", "", "paris", "berlin", "lyon", "oslo"], dtype=object)  # the binary search
    assert vocab.encode("location", many).tolist() == [3.0, 0.0, 0.0, 1.0, 2.0, 3.0]
    for value, code in zip(many, vocab.encode("location", many), strict=True):  # one value: a dict lookup
        assert vocab.encode("location", np.array([value], dtype=object)).tolist() == [code]
    assert vocab.encode("surface", np.array(["web"])).tolist() == [0.0]  # no such vocabulary: unknown
    repeated = Vocabularies({"location": ("a", "a", "b")})  # not as fitted, but both paths must agree
    assert repeated.encode("location", np.array(["a"])).tolist() == \
        repeated.encode("location", np.array(["a", "a", "a", "a", "a"]))[:1].tolist()


def test_small_and_large_event_batches_find_the_same_item_rows(con, monkeypatch):
    import shelfrank.features.online as online

    fill_random_store(con, seed=4, n_events=50)
    state = _state(con)
    column = pa.chunked_array([["i001", None, "nope", "", "i039"], ["i001", "i000"]], pa.string())
    small = state._item_rows_of(column)  # binary search over the batch's distinct ids
    monkeypatch.setattr(online, "SMALL_BATCH_ROWS", 0)
    large = state._item_rows_of(column)  # Arrow's hash lookup against the catalog
    np.testing.assert_array_equal(small, large)
    assert small[1] == small[2] == small[3] == -1 and small[0] == small[5] >= 0
