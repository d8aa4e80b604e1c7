"""No leakage: events (and inventory updates) at exactly ts or later change no feature at ts."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
from feature_tables import T0, examples_table, insert_rows
from random_store import fill_random_store, random_item_vectors

from shelfrank.features import FeatureSpace, OfflineFeatures


def test_events_at_or_after_the_example_time_change_no_feature(con):
    info = fill_random_store(con, seed=5, n_events=1500)
    rng = np.random.default_rng(2)
    space = FeatureSpace(item_vectors=random_item_vectors())  # the embedding similarities too
    # One cutoff for every example (so one example's future is not another's past), and it is
    # the time of a real event: the tie must be excluded too.
    ts = con.sql("SELECT ts FROM events ORDER BY ts LIMIT 1 OFFSET 1000").fetchall()[0][0]
    rows = []
    current_block = int((ts - T0).total_seconds() // 60) // (2 * 24 * 60)  # random_store's session clock
    for _ in range(150):
        u = int(rng.integers(info["n_users"]))
        session = f"s{u}-{current_block}" if rng.random() < .7 else f"s{int(rng.integers(5))}"
        rows.append((f"u{u:02d}", f"i{int(rng.integers(info['n_items'])):03d}", ts, "web", "north", session))
    examples = examples_table(rows)
    before = OfflineFeatures(con, space).compute(examples)

    # The example's own label events, at exactly ts and after, touching every stream it reads.
    leaks, updates = [], []
    for k, (user, item_id, _ts, *_rest) in enumerate(rows):
        for delay in (timedelta(0), timedelta(seconds=1), timedelta(days=3)):
            for kind in ("impression", "click", "add_to_cart", "purchase"):
                leaks.append(dict(event_id=f"leak{k}-{kind}-{delay}", ts=ts + delay, user_id=user,
                                  session_id=rows[k][5], event_type=kind, item_id=item_id, row=0, position=0))
            updates.append(dict(item_id=item_id, ts=ts + delay, in_stock=False, price=12345.0))
    insert_rows(con, "events", leaks)
    insert_rows(con, "inventory", updates)
    after = OfflineFeatures(con, space).compute(examples)
    assert np.isfinite(before.column("user_item_embedding_similarity").to_numpy()).any()
    assert np.isfinite(before.column("session_item_embedding_similarity").to_numpy()).any()

    for name in space.names:
        np.testing.assert_allclose(after.column(name).to_numpy(), before.column(name).to_numpy(), rtol=1e-12,
                                   atol=1e-12, equal_nan=True, err_msg=f"{name} saw the future")
