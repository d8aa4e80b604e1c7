"""The "old system" whose pages produced the logs, and the collections it shows.

Per request it selects 8 collections: this week's deals, one other active curated
collection, one brand collection (half the time a favourite brand of the user), and five
category collections drawn 60% from a *lagged, noisy* view of the user's taste (the
favourite categories as they were at the start, no drift, sampled by weight) and 40% from
global category popularity. Each collection has a daily pool of up to 50 items: explicit
lists in their order, rule collections by a popularity score that moves every day
(new arrivals: newest first). Items out of stock are filtered using the stock view of the
last hourly sync, so an item that ran out within the hour can still slip through.

Two branches share that selection: the **deterministic** branch (95%) orders rows by a
noisy priority score and shows the first 10 available pool items in pool order; the
**randomized** branch (5%) shuffles the rows and shows 10 items drawn uniformly without
replacement from the available pool, in random order. The logged `propensity` is the
exact probability of the mixture putting that item at that (row, position), given the
request's collection selection, their priority scores and the hour's stock view:

    propensity = (1 - eps) * [det row of the collection == row and det position of the item == position]
                 + eps * (1 / n_rows) * (1 / n_available_in_pool)
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from shelfrank.simulate.catalog import DAY, Catalog, in_stock_at
from shelfrank.simulate.scales import ScaleSpec
from shelfrank.simulate.users import N_FAVOURITES, Users

EXPLICIT, NEW_ARRIVALS, CATEGORY, BRAND = 0, 1, 2, 3
N_CATEGORY_ROWS = 5
MIN_BRAND_ITEMS = 8


@dataclass
class Collections:
    ids: list[str]
    titles: list[str]
    kind: np.ndarray  # int8: EXPLICIT, NEW_ARRIVALS, CATEGORY, BRAND
    target: np.ndarray  # int32: leaf category or brand number, -1 for curated
    starts_t: np.ndarray  # float64 seconds since start (-inf: always)
    ends_t: np.ndarray  # float64 (inf: always)
    explicit: dict[int, np.ndarray]  # collection number -> item numbers in order
    leaf_collection: np.ndarray  # int32 [n_categories] -> collection number or -1
    brand_collection: np.ndarray  # int32 [n_brands] -> collection number or -1
    deals: np.ndarray  # collection numbers of the weekly deals, week by week
    other_curated: np.ndarray  # collection numbers of the other curated collections

    def __len__(self) -> int:
        return len(self.ids)


def build_collections(spec: ScaleSpec, cat: Catalog, rng: np.random.Generator) -> Collections:
    ids: list[str] = []
    titles: list[str] = []
    kind: list[int] = []
    target: list[int] = []
    starts: list[float] = []
    ends: list[float] = []
    explicit: dict[int, np.ndarray] = {}
    old = cat.item_created_t < 0

    def add(cid: str, title: str, k: int, tgt: int = -1, start: float = -np.inf, end: float = np.inf) -> int:
        ids.append(cid)
        titles.append(title)
        kind.append(k)
        target.append(tgt)
        starts.append(start)
        ends.append(end)
        return len(ids) - 1

    def pick(mask: np.ndarray, size: int) -> np.ndarray:
        pool = np.flatnonzero(mask)
        weight = np.exp(cat.item_buzz[pool] - cat.item_buzz[pool].max())
        return rng.choice(pool, min(size, len(pool)), replace=False, p=weight / weight.sum())

    n_weeks = int(np.ceil(spec.n_days / 7))
    deals = []
    sale = cat.item_tags[:, 0]
    for w in range(n_weeks):
        c = add(f"cur:deals-week-{w + 1}", "Deals of the week", EXPLICIT, start=w * 7 * DAY, end=(w + 1) * 7 * DAY)
        explicit[c] = pick(sale & old, spec.pool_size)
        deals.append(c)
    other = []
    c = add("cur:bestsellers", "Bestsellers", EXPLICIT)
    explicit[c] = np.flatnonzero(old)[np.argsort(-cat.item_buzz[old], kind="stable")[: spec.pool_size]]
    other.append(c)
    other.append(add("cur:new-arrivals", "New arrivals", NEW_ARRIVALS))
    c = add("cur:staff-picks", "Staff picks", EXPLICIT)
    explicit[c] = pick(old & (cat.item_quality > np.quantile(cat.item_quality, 0.7)), 40)
    other.append(c)
    gift_verticals = [spec.verticals.index(v) for v in ("toys", "electronics", "beauty") if v in spec.verticals]
    c = add("cur:holiday-gifts", "Holiday gift ideas", EXPLICIT, start=np.floor(0.4 * spec.n_days) * DAY,
            end=spec.period_seconds)
    explicit[c] = pick(old & np.isin(cat.item_vertical, gift_verticals), spec.pool_size)
    other.append(c)

    leaf_collection = np.full(cat.n_categories, -1, dtype=np.int32)
    for leaf in cat.leaf_ids:
        leaf_collection[leaf] = add(f"cat:c{leaf}", cat.category_name[leaf], CATEGORY, int(leaf))
    brand_size = np.bincount(cat.item_brand, minlength=len(cat.brand_name))
    brand_collection = np.full(len(cat.brand_name), -1, dtype=np.int32)
    for b in np.flatnonzero(brand_size >= MIN_BRAND_ITEMS):
        brand_collection[b] = add(f"brand:b{b}", cat.brand_name[b], BRAND, int(b))
    return Collections(
        ids=ids, titles=titles, kind=np.array(kind, dtype=np.int8), target=np.array(target, dtype=np.int32),
        starts_t=np.array(starts), ends_t=np.array(ends), explicit=explicit, leaf_collection=leaf_collection,
        brand_collection=brand_collection, deals=np.array(deals), other_curated=np.array(other),
    )


def daily_pools(spec: ScaleSpec, cat: Catalog, cols: Collections, rng: np.random.Generator) -> np.ndarray:
    """int32 [n_days, n_collections, pool_size]: each collection's ordered pool per day, -1 padded.
    Only items created before the day starts are eligible."""
    size = spec.pool_size
    pools = np.full((spec.n_days, len(cols), size), -1, dtype=np.int32)
    trend = rng.normal(0.0, 0.04, cat.n_items)
    leaf_rows = cols.leaf_collection[cat.item_leaf]
    brand_rows = cols.brand_collection[cat.item_brand]
    new_row = cols.other_curated[1]
    for day in range(spec.n_days):
        t0 = day * DAY
        created = cat.item_created_t <= t0
        score = cat.item_buzz + trend * day + rng.normal(0.0, 0.25, cat.n_items)
        # One float sort per grouping: integer part = collection, fraction = falling score.
        fraction = 0.999 * (score.max() - score) / (np.ptp(score) + 1e-9)
        for rows in (leaf_rows, brand_rows):
            eligible = np.flatnonzero(created & (rows >= 0))
            order = eligible[np.argsort(rows[eligible] + fraction[eligible])]
            group = rows[order]
            starts = np.flatnonzero(np.concatenate([[True], group[1:] != group[:-1]]))
            rank = np.arange(len(order)) - np.repeat(starts, np.diff(np.append(starts, len(order))))
            top = rank < size
            pools[day, group[top], rank[top]] = order[top]
        new = np.flatnonzero(created & cat.item_tags[:, 3])
        newest = new[np.argsort(-cat.item_created_t[new], kind="stable")[:size]]
        pools[day, new_row, : len(newest)] = newest
        for c, items in cols.explicit.items():
            items = items[cat.item_created_t[items] <= t0][:size]
            pools[day, c, : len(items)] = items
    return pools


@dataclass
class Pages:
    """What the logging policy showed, per request: display row r, position p."""

    items: np.ndarray  # int32 [n, rows, items_per_row], -1 for an empty slot
    collection: np.ndarray  # int32 [n, rows]
    propensity: np.ndarray  # float64 [n, rows, items_per_row]


def serve_pages(spec: ScaleSpec, cat: Catalog, users: Users, cols: Collections, pools: np.ndarray,
                u: np.ndarray, t: np.ndarray, randomized: np.ndarray, rng: np.random.Generator) -> Pages:
    n = len(u)
    n_rows, per_row, size = spec.rows_per_page, spec.items_per_row, spec.pool_size
    eps = spec.randomized_share
    chosen = np.empty((n, n_rows), dtype=np.int32)
    prior = np.empty((n, n_rows))

    # Row 1-2: this week's deals and one other active curated collection.
    week = np.minimum((t // (7 * DAY)).astype(np.int64), len(cols.deals) - 1)
    chosen[:, 0] = cols.deals[week]
    prior[:, 0] = 1.5
    others = cols.other_curated
    active = (cols.starts_t[others][None, :] <= t[:, None]) & (t[:, None] < cols.ends_t[others][None, :])
    keys = np.where(active, rng.random((n, len(others))), -1.0)
    chosen[:, 1] = others[np.argmax(keys, axis=1)]
    prior[:, 1] = 0.8

    # Row 3: a brand, half the time one the user is loyal to.
    brand_colls = np.flatnonzero(cols.kind == BRAND)
    fav = users.fav_brand[u, rng.integers(0, 2, n)]
    fav_coll = cols.brand_collection[fav]
    size_w = np.bincount(cat.item_brand, minlength=len(cat.brand_name))[cols.target[brand_colls]].astype(float)
    popular = brand_colls[rng.choice(len(brand_colls), n, p=size_w / size_w.sum())]
    chosen[:, 2] = np.where((rng.random(n) < 0.5) & (fav_coll >= 0), fav_coll, popular)
    prior[:, 2] = 0.5

    # Rows 4-8: category collections from a lagged noisy taste estimate or global popularity.
    n_draws = 3 * N_CATEGORY_ROWS
    w = users.fav_weight[u, :N_FAVOURITES]
    cum = np.cumsum(w, axis=1)
    k = (rng.random((n, n_draws))[:, :, None] * cum[:, -1:, None] > cum[:, None, :]).sum(axis=2)
    taste_leaf = np.take_along_axis(users.fav_leaf[u], np.minimum(k, N_FAVOURITES - 1), axis=1)
    leaf_p = cat.leaf_popularity[cat.leaf_ids]
    popular_leaf = cat.leaf_ids[rng.choice(len(cat.leaf_ids), (n, n_draws), p=leaf_p / leaf_p.sum())]
    from_taste = rng.random((n, n_draws)) < 0.6
    draws = cols.leaf_collection[np.where(from_taste, taste_leaf, popular_leaf)]
    # First N_CATEGORY_ROWS distinct draws per request, in draw order.
    order = np.argsort(draws, axis=1, kind="stable")
    sorted_draws = np.take_along_axis(draws, order, axis=1)
    dup_sorted = np.zeros_like(sorted_draws, dtype=bool)
    dup_sorted[:, 1:] = sorted_draws[:, 1:] == sorted_draws[:, :-1]
    dup = np.empty_like(dup_sorted)
    np.put_along_axis(dup, order, dup_sorted, axis=1)
    pick = np.argsort(dup, axis=1, kind="stable")[:, :N_CATEGORY_ROWS]
    chosen[:, 3:] = np.take_along_axis(draws, pick, axis=1)
    prior[:, 3:] = np.where(np.take_along_axis(from_taste, pick, axis=1), 1.2, 0.6)

    # Deterministic row order: priority + noise. Randomized: a uniform shuffle.
    score = prior + rng.gumbel(0.0, 0.7, (n, n_rows))
    det_order = np.argsort(-score, axis=1, kind="stable")  # det_order[:, r] = selection slot at row r
    shuffled = np.argsort(rng.random((n, n_rows)), axis=1)
    row_order = np.where(randomized[:, None], shuffled, det_order)
    det_row = np.argsort(det_order, axis=1)  # det row of each selection slot

    # Pools, filtered by the stock view of the last hourly sync.
    day = np.minimum((t // DAY).astype(np.int64), spec.n_days - 1)
    pool = pools[day[:, None], chosen]  # [n, rows, size]
    synced = (np.floor(t / 3600) * 3600)[:, None, None]
    avail = pool >= 0
    check = np.flatnonzero(avail)
    flat = pool.reshape(-1)
    avail.reshape(-1)[check] = in_stock_at(cat, flat[check], np.broadcast_to(synced, pool.shape).reshape(-1)[check])
    n_avail = avail.sum(axis=2)
    avail_rank = np.cumsum(avail, axis=2) - 1  # position in the deterministic list

    det_pick = np.argsort(~avail, axis=2, kind="stable")[:, :, :per_row]
    pick_slot = det_pick
    if randomized.any():
        r_idx = np.flatnonzero(randomized)
        keys = np.where(avail[r_idx], rng.random((len(r_idx), n_rows, size)), 2.0)
        pick_slot = det_pick.copy()
        pick_slot[r_idx] = np.argsort(keys, axis=2)[:, :, :per_row]
    positions = np.arange(per_row)[None, None, :]
    shown = np.take_along_axis(pool, pick_slot, axis=2)
    filled = positions < n_avail[:, :, None]
    shown = np.where(filled, shown, -1)
    det_position = np.take_along_axis(avail_rank, pick_slot, axis=2)

    # Reorder selection slots into display rows.
    shown = np.take_along_axis(shown, row_order[:, :, None], axis=1)
    det_position = np.take_along_axis(det_position, row_order[:, :, None], axis=1)
    n_avail_rows = np.take_along_axis(n_avail, row_order, axis=1)
    det_row_display = np.take_along_axis(det_row, row_order, axis=1)
    display_row = np.arange(n_rows)[None, :]
    same_place = (det_row_display == display_row)[:, :, None] & (det_position == positions)
    propensity = (1 - eps) * same_place + eps / (n_rows * np.maximum(n_avail_rows, 1))[:, :, None]
    return Pages(items=shown.astype(np.int32), collection=np.take_along_axis(chosen, row_order, axis=1),
                 propensity=np.where(shown >= 0, propensity, 0.0))


def collections_table(spec: ScaleSpec, cat: Catalog, cols: Collections, schema: pa.Schema) -> pa.Table:
    n = len(cols)
    item_ids: list[list[str] | None] = [None] * n
    for c, items in cols.explicit.items():
        item_ids[c] = [f"i{k}" for k in items]
    source = np.where(cols.kind == EXPLICIT, "curated", "rules")
    rule_categories = [[f"c{cols.target[c]}"] if cols.kind[c] == CATEGORY else None for c in range(n)]
    rule_brands = [[cat.brand_name[cols.target[c]]] if cols.kind[c] == BRAND else None for c in range(n)]
    rule_tags = [["new"] if cols.kind[c] == NEW_ARRIVALS else None for c in range(n)]
    start_us = int(spec.start.timestamp() * 1_000_000)

    def stamp(seconds: np.ndarray) -> pa.Array:
        finite = np.isfinite(seconds)
        us = start_us + np.round(np.where(finite, seconds, 0) * 1e6).astype(np.int64)
        return pa.array(us, type=pa.timestamp("us", tz="UTC"), mask=~finite)

    return pa.table({
        "collection_id": pa.array(cols.ids, type=pa.string()),
        "title": pa.array(cols.titles, type=pa.string()),
        "source": pa.array(source, type=pa.string()),
        "item_ids": pa.array(item_ids, type=pa.list_(pa.string())),
        "rule_categories": pa.array(rule_categories, type=pa.list_(pa.string())),
        "rule_brands": pa.array(rule_brands, type=pa.list_(pa.string())),
        "rule_tags": pa.array(rule_tags, type=pa.list_(pa.string())),
        "rule_price_min": pa.nulls(n, pa.float64()),
        "rule_price_max": pa.nulls(n, pa.float64()),
        "starts_at": stamp(cols.starts_t),
        "ends_at": stamp(cols.ends_t),
        "pinned_row": pa.nulls(n, pa.int64()),
    }, schema=schema)
