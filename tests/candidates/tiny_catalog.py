"""A ten-item catalog with known answers for the collection-source tests.

Categories: food (c0) > dairy (c1), bakery (c2); tech (c3) > phones (c4).
Popularity falls with the item number (i01 most popular), so "most popular first" is id order.

    item  category  brand  price  stock  created            tags
    i01   dairy     Acme     2.0  yes    old                organic
    i02   dairy     Acme     3.0  yes    old
    i03   dairy     Bolt     8.0  yes    old                sale
    i04   dairy     Bolt     5.0  NO     old
    i05   bakery    Acme     2.5  yes    old                organic, sale
    i06   bakery    Crux     1.5  yes    old
    i07   phones    Bolt   500.0  yes    5 days before T
    i08   phones    Crux   300.0  yes    5 days before T
    i09   phones    Crux   900.0  NO     5 days before T
    i10   phones    Acme    20.0  yes    40 days before T   sale

Price bands (quintile rank within the category): dairy i01 0, i02 1, i04 2, i03 3;
phones i10 0, i08 1, i07 2, i09 3; bakery i06 0, i05 2.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pyarrow as pa

from shelfrank.candidates.base import UserContext
from shelfrank.contracts import PageRequest
from shelfrank.store.catalog import Catalog
from shelfrank.store.history import CLICK, UserHistory

T_AT = datetime(2026, 10, 10, tzinfo=UTC)
T = T_AT.timestamp()
DAY = 86_400.0
OLD = datetime(2025, 1, 1, tzinfo=UTC)

ROWS = [  # item, category, brand, price, in stock, created, tags
    ("i01", "c1", "Acme", 2.0, True, OLD, ["organic"]),
    ("i02", "c1", "Acme", 3.0, True, OLD, []),
    ("i03", "c1", "Bolt", 8.0, True, OLD, ["sale"]),
    ("i04", "c1", "Bolt", 5.0, False, OLD, []),
    ("i05", "c2", "Acme", 2.5, True, OLD, ["organic", "sale"]),
    ("i06", "c2", "Crux", 1.5, True, OLD, []),
    ("i07", "c4", "Bolt", 500.0, True, T_AT - timedelta(days=5), []),
    ("i08", "c4", "Crux", 300.0, True, T_AT - timedelta(days=5), []),
    ("i09", "c4", "Crux", 900.0, False, T_AT - timedelta(days=5), []),
    ("i10", "c4", "Acme", 20.0, True, T_AT - timedelta(days=40), ["sale"]),
]


def make_catalog() -> Catalog:
    items = pa.table({
        "item_id": [r[0] for r in ROWS],
        "title": [f"Item {r[0]}" for r in ROWS],
        "vertical": ["tech" if r[1] == "c4" else "food" for r in ROWS],
        "category_id": [r[1] for r in ROWS],
        "brand": [r[2] for r in ROWS],
        "price": [r[3] for r in ROWS],
        "has_image": [True] * len(ROWS),
        "image_url": [""] * len(ROWS),
        "in_stock": [r[4] for r in ROWS],
        "stock_quantity": pa.array([None] * len(ROWS), pa.int64()),
        "created_at": pa.array([r[5] for r in ROWS], pa.timestamp("us", tz="UTC")),
        "tags": pa.array([r[6] for r in ROWS], pa.list_(pa.string())),
    })
    categories = pa.table({
        "category_id": ["c0", "c1", "c2", "c3", "c4"],
        "name": ["Food", "Dairy", "Bakery", "Tech", "Phones"],
        "parent_id": ["", "c0", "c0", "", "c3"],
    })
    popularity = {r[0]: float(len(ROWS) - i) for i, r in enumerate(ROWS)}
    return Catalog(items, categories, popularity)


def ids(catalog: Catalog, items: np.ndarray) -> list[str]:
    return [str(x) for x in catalog.item_ids[items]]


def history(catalog: Catalog, events: list[tuple[str, int, float]]) -> UserHistory:
    """(item id, event code, days before T), in any order -> the history, oldest first."""
    events = sorted(events, key=lambda e: -e[2])
    return UserHistory(
        items=catalog.index_of([e[0] for e in events]),
        events=np.asarray([e[1] for e in events], dtype=np.int8),
        ts=np.asarray([T - e[2] * DAY for e in events], dtype=np.float64),
        sessions=np.asarray(["s1"] * len(events), dtype=object),
    )


def context(user_history: UserHistory | None = None, location: str = "", t: float = T,
            user_id: str = "u1") -> UserContext:
    h = user_history if user_history is not None else UserHistory()
    at = datetime.fromtimestamp(t, tz=UTC)
    return UserContext(request=PageRequest(user_id=user_id, at=at, location=location or None), t=t,
                       location=location, known=len(h) > 0, history=h)


def clicks(*item_ids: str) -> list[tuple[str, int, float]]:
    """Clicks on the items, the last one most recent (1 hour apart, ending 1 hour before T)."""
    n = len(item_ids)
    return [(item, CLICK, (n - i) / 24.0) for i, item in enumerate(item_ids)]


def events_table(rows: list[tuple[str, str, str, float, str]]) -> pa.Table:
    """(user, item, event type, days before T, location) -> an EVENTS-shaped table."""
    return pa.table({
        "ts": pa.array([T_AT - timedelta(days=r[3]) for r in rows], pa.timestamp("us", tz="UTC")),
        "user_id": [r[0] for r in rows],
        "session_id": [f"s-{r[0]}" for r in rows],
        "event_type": [r[2] for r in rows],
        "item_id": [r[1] for r in rows],
        "location": [r[4] for r in rows],
    })


BOUGHT_AND_CLICKED = [("i01", 3, 10), ("i01", 3, 5), ("i05", 3, 3), ("i07", 3, 2), ("i03", 2, 1),
                      ("i06", 1, 1), ("i08", 1, 0.5), ("i02", 1, 0.2)]  # (item, event code, days before T)
