"""Offline (DuckDB, point-in-time) and online (in-memory state) features agree.

The online state replays the event log up to each example's time (events strictly before it)
and answers for the example's user and a slate of items; the offline builder computes the same
examples from the whole log at once. Every feature must match to float tolerance.
"""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pyarrow as pa
import pytest
from feature_tables import T0, examples_table, insert_rows
from random_store import LOCATIONS, SURFACES, fill_random_store, random_item_vectors

from shelfrank.features.definitions import FeatureSpace
from shelfrank.features.offline import OfflineFeatures, fit_vocabularies
from shelfrank.features.online import InMemoryFeatureState


def _requests(rng: np.random.Generator, info: dict, n: int) -> list[dict]:
    """Page requests: a user, a time (on the events' minute grid), a context and a slate of items."""
    requests = []
    for _ in range(n):
        u = int(rng.integers(info["n_users"] + 3))  # a few users never seen
        user = f"u{u:02d}"
        minute = int(rng.integers(info["minutes"] + 60))
        # The session a request belongs to: the user's current one (latest event before it) or a new one.
        latest = max(((m, s) for m, s in info["sessions"].get(user, []) if m < minute), default=None)
        session = latest[1] if latest and rng.random() < .8 else f"new-{minute}"
        slate = [f"i{int(i):03d}" for i in rng.choice(info["n_items"] + 5, size=8, replace=False)]  # some unknown
        requests.append(dict(user=user, ts=T0 + timedelta(minutes=minute), items=slate,
                             context=dict(surface=SURFACES[int(rng.integers(3))] if rng.random() < .9 else None,
                                          location=LOCATIONS[int(rng.integers(3))], session_id=session,
                                          collection_id=f"col{int(rng.integers(8))}")))
    return sorted(requests, key=lambda r: r["ts"])


# Every online state implementation runs the same parity suite (a Redis-backed one joins this list).
STATE_IMPLEMENTATIONS = [InMemoryFeatureState]


@pytest.mark.parametrize("state_class", STATE_IMPLEMENTATIONS, ids=lambda c: c.__name__)
def test_online_state_replayed_to_t_equals_offline_features_at_t(con, state_class):
    info = fill_random_store(con, seed=3)
    space = FeatureSpace(vocabularies=fit_vocabularies(con), item_vectors=random_item_vectors())
    rng = np.random.default_rng(11)
    requests = _requests(rng, info, 120)

    rows = [(r["user"], item, r["ts"], *(r["context"][k] for k in ("surface", "location", "session_id",
                                                                     "collection_id")))
            for r in requests for item in r["items"]]
    offline = OfflineFeatures(con, space).compute(examples_table(rows))
    expected = np.column_stack([offline.column(name).to_numpy() for name in space.names])

    events = con.sql("SELECT * FROM events ORDER BY ts").to_arrow_table()
    inventory = con.sql("SELECT * FROM inventory ORDER BY ts").to_arrow_table()
    state = state_class(space, con.sql("SELECT * FROM items").to_arrow_table(),
                        con.sql("SELECT * FROM users").to_arrow_table(),
                        con.sql("SELECT * FROM collections").to_arrow_table())
    event_ts = events.column("ts").to_pylist()
    inventory_ts = inventory.column("ts").to_pylist()
    applied = applied_inventory = 0
    got = []
    for r in requests:
        # Replay in uneven batches: everything strictly before the request's time.
        upto = int(np.searchsorted(np.array(event_ts, dtype=object), r["ts"], side="left"))
        if upto > applied:
            state.update(events.slice(applied, upto - applied))
            applied = upto
        upto = int(np.searchsorted(np.array(inventory_ts, dtype=object), r["ts"], side="left"))
        if upto > applied_inventory:
            state.update_inventory(inventory.slice(applied_inventory, upto - applied_inventory))
            applied_inventory = upto
        got.append(state.get(r["user"], r["items"], r["ts"], r["context"]))
    got = np.vstack(got)

    assert got.shape == expected.shape
    for j, name in enumerate(space.names):
        np.testing.assert_allclose(got[:, j], expected[:, j], rtol=1e-9, atol=1e-12, equal_nan=True,
                                   err_msg=f"feature {name} differs between online and offline")
    # The test is only worth something if the features actually vary.
    informative = [name for j, name in enumerate(space.names) if np.nanstd(expected[:, j]) > 0]
    assert len(informative) >= len(space.names) - 2, set(space.names) - set(informative)
    for name in ("user_item_embedding_similarity", "session_item_embedding_similarity"):
        values = expected[:, space.names.index(name)]
        assert np.isfinite(values).mean() > 0.3 and np.isnan(values).any(), name  # history / none / no vector


def test_offline_keeps_the_examples_order_and_columns(con):
    fill_random_store(con, seed=1, n_events=300)
    space = FeatureSpace()
    rows = [("u01", "i001", T0 + timedelta(days=d)) for d in (5, 1, 3)]
    table = OfflineFeatures(con, space).compute(examples_table(rows))
    assert table.column_names == ["user_id", "item_id", "ts", *space.names]
    assert table.column("ts").to_pylist() == [r[2] for r in rows]
    assert all(table.schema.field(n).type == pa.float64() for n in space.names)


def test_a_time_span_too_long_for_the_shortest_half_life_is_refused_with_a_clear_error(con):
    insert_rows(con, "events", [dict(ts=T0, user_id="u", session_id="s", event_type="click", item_id="i"),
                                dict(ts=T0 + timedelta(days=4000), user_id="u", session_id="s", event_type="click",
                                     item_id="i")])
    with pytest.raises(ValueError, match="shorter window"):
        OfflineFeatures(con).compute(examples_table([("u", "i", T0 + timedelta(days=1))]))
