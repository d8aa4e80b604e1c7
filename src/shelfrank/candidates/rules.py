"""Rules-based personalized collection sources: each reads the user's history (and the catalog or
the trending state) and proposes a few collections with a human reason and numeric signals.

Every source returns in-stock items only, at most ``pool_size`` per collection, best first; a user
without history gets nothing from the personalized ones (trending and new arrivals fall back to
global lists). Ids are stable across requests: a generated collection that coincides with a stored
one (category ``c12`` -> ``cat:c12``, brand ``Acme`` -> ``brand:b3``, found among the store's
definitions) takes the stored id, so the collection counters learned from the logs apply;
otherwise ``rules:<generator>:<key>``. The work per request is array work over the user's history
(at most a few hundred events) and the catalog's per-category / per-brand lists; the loops below
run over the few collections proposed, never over items.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from datetime import datetime

import duckdb
import numpy as np

from shelfrank.arrays import in_sorted, unique_sorted
from shelfrank.candidates.base import CandidateCollection, CollectionSource, UserContext
from shelfrank.store.catalog import Catalog, CuratedDefinition
from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE, HistoryState, UserHistory

DAY = 86_400.0
FUNNEL_WEIGHTS: Mapping[int, float] = {CLICK: 1.0, ADD_TO_CART: 3.0, PURCHASE: 10.0}
StoredIds = Mapping[tuple[str, str], str]
SimilarItems = Callable[[int, int], np.ndarray]


# --- shared helpers ---------------------------------------------------------------------------

def stored_collection_ids(definitions: Iterable[CuratedDefinition]) -> dict[tuple[str, str], str]:
    """("category", category_id) and ("brand", brand) -> the stored collection that is exactly that
    rule (one category or one brand, nothing else), e.g. ("category", "c12") -> "cat:c12"."""
    out: dict[tuple[str, str], str] = {}
    for d in definitions:
        if d.item_ids or d.rule_tags or d.rule_price_min is not None or d.rule_price_max is not None:
            continue
        if len(d.rule_categories) == 1 and not d.rule_brands:
            out.setdefault(("category", d.rule_categories[0]), d.collection_id)
        elif len(d.rule_brands) == 1 and not d.rule_categories:
            out.setdefault(("brand", d.rule_brands[0]), d.collection_id)
    return out


def _collection_id(stored: StoredIds, kind: str, key: str, generator: str) -> str:
    return stored.get((kind, key)) or f"rules:{generator}:{key}"


def _past(user: UserContext) -> UserHistory:
    """The history strictly before the request (the context should hold only that; cheap to ensure)."""
    h = user.history
    return h.before(user.t) if len(h) and h.ts[-1] >= user.t else h


def _decay(ts: np.ndarray, t: float, half_life_days: float) -> np.ndarray:
    return np.exp(-np.log(2.0) * np.maximum(t - ts, 0.0) / (half_life_days * DAY))


def _weights_of(events: np.ndarray, weights: Mapping[int, float]) -> np.ndarray:
    table = np.zeros(PURCHASE + 1)
    for code, w in weights.items():
        table[code] = w
    return table[events]


def _top(scores: np.ndarray, n: int) -> np.ndarray:
    """Indices of the n highest positive scores, best first, ties by index."""
    top = np.flatnonzero(scores > 0)
    return top[np.lexsort((top, -scores[top]))][:n]


def _distinct(items: np.ndarray) -> np.ndarray:
    """Items without repeats, each at its first place."""
    _, first = np.unique(items, return_index=True)
    return items[np.sort(first)]


def category_repeat_rates(con: duckdb.DuckDBPyConnection, catalog: Catalog, as_of: datetime | None = None
                          ) -> np.ndarray:
    """Per catalog category code: the share of (user, item) purchase pairs bought more than once
    before `as_of` -- how "consumable" a category is (groceries high, laptops low)."""
    cutoff = "" if as_of is None else "AND ts < $as_of::TIMESTAMPTZ"
    rows = con.sql(
        f"""
        WITH pairs AS (
            SELECT p.item_id, count(*) AS n FROM events p
            WHERE p.event_type = 'purchase' AND p.item_id IS NOT NULL {cutoff}
            GROUP BY p.user_id, p.item_id)
        SELECT i.category_id, avg(CASE WHEN pairs.n > 1 THEN 1.0 ELSE 0.0 END)
        FROM pairs JOIN items i USING (item_id) GROUP BY i.category_id
        """,
        params={} if as_of is None else {"as_of": as_of},
    ).fetchall()
    rates = np.zeros(len(catalog.category_ids))
    for category_id, rate in rows:  # one row per category
        code = catalog.category_index(str(category_id))
        if code >= 0:
            rates[code] = float(rate)
    return rates


# --- the sources ------------------------------------------------------------------------------

class TopBrandsSource:
    """The brands the user bought or carted most (funnel-weighted, decayed): one collection per brand,
    its in-stock items most popular first."""

    name = "top_brands"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, max_collections: int = 3,
                 half_life_days: float = 30.0, weights: Mapping[int, float] | None = None,
                 stored_ids: StoredIds | None = None) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.max_collections = max_collections
        self.half_life_days = half_life_days
        self.weights = dict(weights) if weights is not None else {ADD_TO_CART: 3.0, PURCHASE: 10.0}
        self.stored_ids = stored_ids or {}

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        h, c = _past(user), self.catalog
        if not len(h):
            return []
        w = _weights_of(h.events, self.weights) * _decay(h.ts, user.t, self.half_life_days)
        brand = c.brand[h.items]
        ok = (brand >= 0) & (w > 0)
        scores = np.bincount(brand[ok], weights=w[ok], minlength=len(c.brands))
        events = np.bincount(brand[ok], minlength=len(c.brands))
        bought = np.bincount(brand[ok & (h.events == PURCHASE)], minlength=len(c.brands))
        total = scores.sum()
        out = []
        for b in _top(scores, self.max_collections):
            items = c.items_of_brand(b, limit=self.pool_size)
            if len(items) == 0:
                continue
            brand_name = str(c.brands[b])
            verb = "bought from" if bought[b] else "added to your cart from"
            out.append(CandidateCollection(
                collection_id=_collection_id(self.stored_ids, "brand", brand_name, self.name),
                title=f"More from {brand_name}", source="rules", generator=self.name, items=items,
                reason=f"Because you {verb} {brand_name}",
                signals={"brand_score": float(scores[b]), "brand_share": float(scores[b] / total),
                         "brand_events": float(events[b]), "brand_purchases": float(bought[b])},
                prior=float(scores[b] / total),
            ))
        return out


class BuyAgainSource:
    """Items the user bought, consumable-like first (bought more than once by the user, or in a
    category where the user -- or, with ``category_repeat_rate``, everyone -- buys repeatedly), then
    by times bought and recency; items bought within ``exclude_recent_days`` are left out."""

    name = "buy_again"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, exclude_recent_days: float = 1.0,
                 category_repeat_rate: np.ndarray | None = None, repeat_rate_threshold: float = 0.05) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.exclude_recent_days = exclude_recent_days
        self.category_repeat_rate = category_repeat_rate
        self.repeat_rate_threshold = repeat_rate_threshold

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        h, c = _past(user), self.catalog
        purchased = h.events == PURCHASE
        if not purchased.any():
            return []
        bought, when = h.items[purchased], h.ts[purchased]
        items, inverse, times = np.unique(bought, return_inverse=True, return_counts=True)
        last = np.full(len(items), -np.inf)
        np.maximum.at(last, inverse, when)
        category = c.category[items]
        known = category >= 0
        per_category = np.bincount(c.category[bought][c.category[bought] >= 0], minlength=len(c.category_ids))
        consumable = (times > 1) | (known & (per_category[np.maximum(category, 0)] > 1))
        if self.category_repeat_rate is not None:
            rate = self.category_repeat_rate[np.maximum(category, 0)]
            consumable |= known & (rate >= self.repeat_rate_threshold)
        keep = (last < user.t - self.exclude_recent_days * DAY) & c.in_stock[items]
        items, times, last, consumable = items[keep], times[keep], last[keep], consumable[keep]
        if len(items) == 0:
            return []
        order = np.lexsort((items, -last, -times, ~consumable))[: self.pool_size]
        return [CandidateCollection(
            collection_id=f"rules:{self.name}:purchases", title="Buy again", source="rules", generator=self.name,
            items=items[order].astype(np.int64), reason="Items you bought before",
            signals={"n_items": float(len(order)), "n_consumable": float(consumable[order].sum()),
                     "days_since_last_purchase": float((user.t - last.max()) / DAY)},
            prior=0.6 if consumable.any() else 0.3,
        )]


class RecentCategoriesSource:
    """The categories the user clicked recently (decayed click counts): one collection per category,
    its in-stock items most popular first."""

    name = "recent_categories"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, max_collections: int = 3,
                 half_life_days: float = 3.0, window_days: float = 30.0,
                 stored_ids: StoredIds | None = None) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.max_collections = max_collections
        self.half_life_days = half_life_days
        self.window_days = window_days
        self.stored_ids = stored_ids or {}

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        h, c = _past(user), self.catalog
        category = c.category[h.items]
        clicked = (h.events == CLICK) & (h.ts >= user.t - self.window_days * DAY) & (category >= 0)
        if not clicked.any():
            return []
        category, ts = category[clicked], h.ts[clicked]
        n = len(c.category_ids)
        scores = np.bincount(category, weights=_decay(ts, user.t, self.half_life_days), minlength=n)
        clicks = np.bincount(category, minlength=n)
        last = np.full(n, -np.inf)
        np.maximum.at(last, category, ts)
        total = scores.sum()
        out = []
        for k in _top(scores, self.max_collections):
            items = c.items_in_category(k, limit=self.pool_size)
            if len(items) == 0:
                continue
            category_id, title = str(c.category_ids[k]), str(c.category_names[k])
            out.append(CandidateCollection(
                collection_id=_collection_id(self.stored_ids, "category", category_id, self.name),
                title=title, source="rules", generator=self.name, items=items,
                reason=f"Because you browsed {title}",
                signals={"category_score": float(scores[k]), "category_clicks": float(clicks[k]),
                         "hours_since_click": float((user.t - last[k]) / 3600.0)},
                prior=float(scores[k] / total),
            ))
        return out


class BecauseYouViewedSource:
    """Items like the user's most recently clicked item. By default, in tiers each most popular first:
    same category and price band; same category and a neighbouring band or the same brand; the rest
    of the category; the brand's items in other categories. An injected ``similar_items(item_index, k)``
    (e.g. embedding neighbours) replaces that rule."""

    name = "because_viewed"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, similar_items: SimilarItems | None = None,
                 max_collections: int = 1, window_days: float = 30.0, half_life_days: float = 1.0) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.similar_items = similar_items
        self.max_collections = max_collections
        self.window_days = window_days
        self.half_life_days = half_life_days

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        h = _past(user)
        clicked = (h.events == CLICK) & (h.ts >= user.t - self.window_days * DAY)
        if not clicked.any() or self.max_collections <= 0:
            return []
        recent_first = h.items[clicked][::-1].tolist()
        when = h.ts[clicked][::-1].tolist()
        latest: dict[int, float] = {}  # the most recently clicked distinct items, newest first
        for item, ts in zip(recent_first, when, strict=True):
            if item not in latest:
                latest[item] = ts
                if len(latest) >= self.max_collections:
                    break
        out = []
        for item, ts in latest.items():
            items = self._similar(item)
            if len(items) == 0:
                continue
            item_title = str(self.catalog.titles[item])
            out.append(CandidateCollection(
                collection_id=f"because_viewed:{self.catalog.item_ids[item]}",
                title=f"Because you viewed {item_title}", source="rules", generator=self.name, items=items,
                reason=f"Because you viewed {item_title}",
                signals={"hours_since_view": float((user.t - ts) / 3600.0), "n_items": float(len(items))},
                prior=float(_decay(np.asarray([ts]), user.t, self.half_life_days)[0]),
            ))
        return out

    def _similar(self, item: int) -> np.ndarray:
        c = self.catalog
        if self.similar_items is not None:
            found = np.asarray(self.similar_items(item, 2 * self.pool_size), dtype=np.int64)
            found = found[(found >= 0) & (found < len(c)) & (found != item)]
            found = _distinct(found)
            return found[c.in_stock[found]][: self.pool_size]
        category, brand, band = c.category[item], c.brand[item], c.price_band[item]
        same_category = c.items_in_category(category) if category >= 0 else np.zeros(0, dtype=np.int64)
        # The brand's list is most popular first (ties by index), the order tier 3 takes: beyond its
        # first pool_size + |category| + 1 items none can make the cut.
        same_brand = (c.items_of_brand(brand, limit=self.pool_size + len(same_category) + 1) if brand >= 0
                      else np.zeros(0, dtype=np.int64))
        found = unique_sorted(np.concatenate([same_category, same_brand]))
        found = found[found != item]
        in_category = c.category[found] == category
        gap = np.where((band >= 0) & (c.price_band[found] >= 0), np.abs(c.price_band[found] - band), 99)
        # The first tier that holds: 0 same band, 1 neighbouring band or same brand, 2 the category, 3 the
        # brand elsewhere (nested np.where: np.select's wrapper costs ~70 us here)
        tier = np.where(in_category, np.where(gap == 0, 0, np.where((gap == 1) | (c.brand[found] == brand), 1, 2)), 3)
        return found[np.lexsort((found, -c.popularity[found], tier))][: self.pool_size].astype(np.int64)


class TrendingNearYouSource:
    """The items with the most decayed engagement at the user's location right now, topped up from the
    global list; without a location (or none trending there), the global list alone."""

    name = "trending"
    fail_open = True

    def __init__(self, catalog: Catalog, history_state: HistoryState, pool_size: int = 100) -> None:
        self.catalog = catalog
        self.history_state = history_state
        self.pool_size = pool_size

    def _in_stock(self, location: str | None, t: float, k: int) -> np.ndarray:
        items, _ = self.history_state.trending(location, t, k)
        return items[self.catalog.in_stock[items]]

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        # Asking for pool + (out-of-stock count) items guarantees a full pool after the stock filter.
        k = self.pool_size + len(self.catalog.in_stock) - int(np.count_nonzero(self.catalog.in_stock))
        local = self._in_stock(user.location, user.t, k)[: self.pool_size] if user.location else np.zeros(0, int)
        items = local
        if len(local) < self.pool_size:
            everywhere = self._in_stock(None, user.t, k)
            items = np.concatenate([local, everywhere[~in_sorted(everywhere, np.sort(local))]])[: self.pool_size]
        if len(items) == 0:
            return []
        near = len(local) > 0
        return [CandidateCollection(
            collection_id=f"rules:{self.name}:{user.location if near else 'global'}",
            title="Trending near you" if near else "Trending now", source="rules", generator=self.name,
            items=items.astype(np.int64),
            reason=f"Popular around {user.location} right now" if near else "Popular right now",
            signals={"local_items": float(len(local)), "n_items": float(len(items))},
            prior=0.3 if near else 0.2,
        )]


class InYourCartSource:
    """Right after an add to cart: more of the carted item's category (other items, other brands first),
    so the next page follows what the user is doing in this visit. The carted item itself is left out
    (the page also removes recently carted items everywhere, see page/builder.py). The row takes a
    fixed place near the top (`row`, default 1: right under the first row), as a session row does on
    the big stores' homepages, instead of competing with the long-term rows for a place."""

    name = "in_your_cart"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, window_hours: float = 24.0, row: int = 1) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.window_hours = window_hours
        self.row = row

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        h, c = _past(user), self.catalog
        recent = (h.events == ADD_TO_CART) & (h.ts >= user.t - self.window_hours * 3_600.0)
        if not recent.any():
            return []
        item = int(h.items[recent][-1])
        category = int(c.category[item])
        if category < 0:
            return []
        pool = c.items_in_category(category, self.pool_size + 1)
        pool = pool[pool != item]
        other_brand = c.brand[pool] != c.brand[item]
        pool = np.concatenate([pool[other_brand], pool[~other_brand]])[: self.pool_size]
        if len(pool) == 0:
            return []
        title = str(c.titles[item])
        return [CandidateCollection(
            collection_id=f"rules:{self.name}:{c.item_ids[item]}", title=f"Goes with {title}", source="rules",
            generator=self.name, items=pool.astype(np.int64), reason=f"Because you added {title} to your cart",
            signals={"hours_since_cart": float((user.t - h.ts[recent][-1]) / 3_600.0)}, prior=1.0,
            pinned_row=self.row,
        )]


class NewArrivalsSource:
    """Items created within ``max_age_days`` in the user's top categories (funnel-weighted, decayed
    engagement), newest first; for a user without history, in the most popular categories."""

    name = "new_arrivals"
    fail_open = True

    def __init__(self, catalog: Catalog, pool_size: int = 100, max_age_days: float = 30.0,
                 n_categories: int = 5, half_life_days: float = 14.0) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.max_age_days = max_age_days
        self.n_categories = n_categories
        self.half_life_days = half_life_days
        self._indexed_items = -1

    def _index(self) -> None:
        """Categories by popularity, rebuilt when the catalog grows."""
        c = self.catalog
        known = c.category >= 0
        popularity = c.category_popularity()
        has_items = np.bincount(c.category[known], minlength=len(c.category_ids)) > 0
        self._popular_categories = _top(popularity + 1e-12 * has_items, self.n_categories)  # also without events
        self._indexed_items = len(c)

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        c = self.catalog
        if self._indexed_items != len(c):
            self._index()
        h = _past(user)
        category = c.category[h.items]
        ok = category >= 0
        scores = np.bincount(category[ok], minlength=len(c.category_ids),
                             weights=(_weights_of(h.events, FUNNEL_WEIGHTS)
                                      * _decay(h.ts, user.t, self.half_life_days))[ok])
        personal = bool(ok.any())
        top = _top(scores, self.n_categories) if personal else self._popular_categories
        # The chosen categories' in-stock items (a few thousand at most), newest first, ties by the
        # higher index: not a scan of every recent item in the catalog.
        pooled = [c.items_in_category(int(k)) for k in top]
        items = np.concatenate(pooled) if pooled else np.zeros(0, dtype=np.int64)
        created = c.created_t[items]
        fresh = (created >= user.t - self.max_age_days * DAY) & (created <= user.t)
        items, created = items[fresh], created[fresh]
        items = items[np.lexsort((-items, -created))][: self.pool_size]
        if len(items) == 0:
            return []
        return [CandidateCollection(
            collection_id=f"rules:{self.name}:{'for_you' if personal else 'popular'}",
            title="New for you" if personal else "New arrivals", source="rules", generator=self.name,
            items=items.astype(np.int64),
            reason="New in categories you like" if personal else "New in popular categories",
            signals={"n_categories": float(len(top)), "n_items": float(len(items)),
                     "newest_age_days": float((user.t - c.created_t[items[0]]) / DAY)},
            prior=0.2,
        )]


RULE_SOURCES: dict[str, type] = {cls.name: cls for cls in (
    TopBrandsSource, BuyAgainSource, RecentCategoriesSource, BecauseYouViewedSource, TrendingNearYouSource,
    NewArrivalsSource, InYourCartSource,
)}


def default_rule_sources(catalog: Catalog, history_state: HistoryState,
                         definitions: Iterable[CuratedDefinition] = (), pool_size: int = 100,
                         similar_items: SimilarItems | None = None,
                         category_repeat_rate: np.ndarray | None = None) -> list[CollectionSource]:
    """Every rules source with its defaults; `definitions` (the store's collections) supply the
    stored ids of category and brand collections."""
    stored = stored_collection_ids(definitions)
    return [
        TopBrandsSource(catalog, pool_size, stored_ids=stored),
        BuyAgainSource(catalog, pool_size, category_repeat_rate=category_repeat_rate),
        RecentCategoriesSource(catalog, pool_size, stored_ids=stored),
        BecauseYouViewedSource(catalog, pool_size, similar_items=similar_items),
        TrendingNearYouSource(catalog, history_state, pool_size),
        NewArrivalsSource(catalog, pool_size),
        InYourCartSource(catalog, pool_size),
    ]
