"""A small random store (catalog, profiles, event log, inventory) for parity tests.

Timestamps sit on a one-minute grid so that examples often share a time with events: the
strictly-before rule is exercised on ties, not only in theory.
"""

from __future__ import annotations

from datetime import timedelta

import duckdb
import numpy as np
from feature_tables import T0, insert_rows

VERTICALS = ("food", "home", "tech")
SURFACES = ("web", "ios", "android")
LOCATIONS = ("north", "south", "east")


def random_item_vectors(n_items: int = 40, dim: int = 6, seed: int = 0, missing: tuple[int, ...] = (7, 13)):
    """Unit vectors for the random store's items (ids i000..), some items without one.

    Vectors lean on a few shared directions (like embedding clusters), so cosines vary widely."""
    from shelfrank.features.definitions import ItemVectors

    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(4, dim))
    ids = [i for i in range(n_items) if i not in missing]
    vectors = centres[np.array(ids) % 4] + 0.7 * rng.normal(size=(len(ids), dim))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    return ItemVectors(np.array([f"i{i:03d}" for i in ids]), vectors)


def fill_random_store(con: duckdb.DuckDBPyConnection, *, seed: int = 0, n_items: int = 40, n_users: int = 25,
                      n_events: int = 4000, days: int = 20) -> dict:
    rng = np.random.default_rng(seed)
    minutes = days * 24 * 60
    items = []
    for i in range(n_items):
        items.append(dict(
            item_id=f"i{i:03d}", title=f"Item {i}", vertical=VERTICALS[i % 3], category_id=f"c{i % 7}",
            brand=None if i % 5 == 0 else f"b{i % 4}", price=float(np.round(rng.uniform(1, 200), 2)),
            has_image=None if i % 3 == 0 else bool(i % 2), image_url="http://x/i.png" if i % 6 == 0 else None,
            in_stock=None if i % 4 == 0 else bool(i % 7), stock_quantity=None if i % 8 else int(i % 3),
            created_at=T0 + timedelta(days=float(rng.uniform(-30, days))),
        ))
    insert_rows(con, "items", items)
    users = [dict(user_id=f"u{u:02d}", location=LOCATIONS[u % 3], subscription=("none", "member")[u % 2])
             for u in range(0, n_users, 2)]  # half the users have no profile
    insert_rows(con, "users", users)

    events, session_of = [], {}
    for k in range(n_events):
        u = int(rng.integers(n_users))
        minute = int(rng.integers(minutes))
        # A user's session changes every ~2 days, so sessions do not interleave within a user.
        session = f"s{u}-{minute // (2 * 24 * 60)}"
        session_of.setdefault(f"u{u:02d}", []).append((minute, session))
        kind = rng.choice(["impression", "click", "add_to_cart", "purchase", "search"], p=[.6, .2, .1, .06, .04])
        item = None if kind == "search" else f"i{int(rng.integers(n_items)):03d}"
        events.append(dict(
            event_id=f"e{k}", ts=T0 + timedelta(minutes=minute), user_id=f"u{u:02d}", session_id=session,
            event_type=str(kind), item_id=item, query="q" if kind == "search" else None,
            row=None if rng.random() < .1 else int(rng.integers(8)),
            position=None if rng.random() < .1 else int(rng.integers(12)),
            surface=SURFACES[int(rng.integers(3))], location=LOCATIONS[int(rng.integers(3))],
            price=float(rng.uniform(1, 100)) if kind == "purchase" else None,
            collection_id=None if kind == "search" or rng.random() < .15 else f"col{int(rng.integers(6))}",
        ))
    insert_rows(con, "events", events)
    # Collections col0-col3 are listed (col4, col5 appear only in events, like generated ones).
    insert_rows(con, "collections", [
        dict(collection_id="col0", title="Picks", source="curated", item_ids=["i001", "i002", "i003"]),
        dict(collection_id="col1", title="Deals", source="rules", rule_tags=["sale"]),
        dict(collection_id="col2", title="For you", source="ml", item_ids=[]),
        dict(collection_id="col3", title="New", source="ml", item_ids=["i004"]),
    ])
    inventory = [dict(item_id=f"i{int(rng.integers(n_items)):03d}",
                      ts=T0 + timedelta(minutes=int(rng.integers(minutes))),
                      in_stock=None if rng.random() < .3 else bool(rng.random() < .7),
                      quantity=int(rng.integers(3)), price=None if rng.random() < .3 else float(rng.uniform(1, 200)))
                 for _ in range(60)]
    insert_rows(con, "inventory", inventory)
    return {"minutes": minutes, "n_users": n_users, "n_items": n_items, "sessions": session_of}
