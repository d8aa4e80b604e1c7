"""The catalog as arrays, indexed for candidate generation.

Items are addressed by their catalog index: position in the item table sorted by item_id
(the same order as the online feature state's, so indices are shared). Attributes are
integer codes (-1 = missing); per category and per brand, items are listed by descending
popularity (CSR), so "the best items of category c" is a slice. Stock, price and images
change at run time (``set_stock``, ``update_items``); the lists keep out-of-stock items and
consumers filter by ``in_stock`` (one vectorized lookup), so a restock needs no rebuild.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from functools import cached_property

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

# Engagement weights of the popularity score (click < cart < purchase, as the funnel labels).
POPULARITY_WEIGHTS = {"click": 1.0, "add_to_cart": 3.0, "purchase": 10.0}
POPULARITY_HALF_LIFE_DAYS = 7.0
N_PRICE_BANDS = 5


def _strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(column, "").to_pylist(), dtype=object)


def _codes(raw: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(vocabulary, codes) with "" -> -1."""
    vocab, codes = np.unique(raw.astype(str), return_inverse=True)
    codes = codes.astype(np.int64)
    if len(vocab) and vocab[0] == "":
        codes = codes - 1
        vocab = vocab[1:]
    return vocab.astype(object), codes


def _grouped(codes: np.ndarray, n_groups: int, order_key: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """CSR (indptr, indices): items of each group, highest order_key first."""
    keep = np.flatnonzero(codes >= 0)
    order = keep[np.lexsort((-order_key[keep], codes[keep]))]
    counts = np.bincount(codes[keep], minlength=n_groups)
    indptr = np.concatenate([[0], np.cumsum(counts)])
    return indptr, order.astype(np.int64)


@dataclass
class CuratedDefinition:
    """A curated collection as the operator defined it (explicit items or catalog rules)."""

    collection_id: str
    title: str
    item_ids: tuple[str, ...] = ()
    rule_categories: tuple[str, ...] = ()
    rule_brands: tuple[str, ...] = ()
    rule_tags: tuple[str, ...] = ()
    rule_price_min: float | None = None
    rule_price_max: float | None = None
    starts_t: float = -np.inf
    ends_t: float = np.inf
    pinned_row: int = -1
    source: str = "curated"


class Catalog:
    """Item arrays and popularity-ordered lists per category and brand."""

    def __init__(self, items: pa.Table, categories: pa.Table | None = None,
                 popularity: Mapping[str, float] | None = None) -> None:
        order = np.argsort(_strings(items.column("item_id")), kind="stable")
        items = items.take(pa.array(order))
        self.item_ids = _strings(items.column("item_id"))
        self.titles = _strings(items.column("title"))
        self.verticals, self.vertical = _codes(_strings(items.column("vertical")))
        self.category_ids, self.category = _codes(_strings(items.column("category_id")))
        self.brands, self.brand = _codes(_strings(items.column("brand")))
        self.price = items.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
        has_url = pc.not_equal(pc.fill_null(items.column("image_url"), ""), "")
        self.has_image = np.asarray(pc.fill_null(pc.coalesce(items.column("has_image"), has_url), False)
                                    .to_pylist(), dtype=bool)
        self.image_urls = _strings(items.column("image_url"))
        created = pc.cast(items.column("created_at"), pa.timestamp("us", tz="UTC"))
        self.created_t = created.to_numpy().astype("datetime64[us]").astype(np.int64) / 1e6
        in_stock = pc.coalesce(items.column("in_stock"), pc.greater(items.column("stock_quantity"), 0),
                               pa.scalar(True))
        self.in_stock = np.asarray(in_stock.to_pylist(), dtype=bool)
        self.tags = [tuple(t or ()) for t in items.column("tags").to_pylist()]
        self.price_band = self._price_bands()
        self._load_categories(categories)
        self.popularity = np.zeros(len(self.item_ids))
        if popularity:
            index = self.index_of(np.asarray(list(popularity), dtype=object))
            known = index >= 0
            self.popularity[index[known]] = np.asarray(list(popularity.values()), dtype=np.float64)[known]
        self.reindex()

    # Display names per item (brand and category never change for an item): one gather per page.
    @cached_property
    def item_brand_names(self) -> np.ndarray:
        return _names_per_item(self.brands, self.brand)

    @cached_property
    def item_category_ids(self) -> np.ndarray:
        return _names_per_item(self.category_ids, self.category)

    @cached_property
    def item_category_names(self) -> np.ndarray:
        return _names_per_item(self.category_names, self.category)

    def __len__(self) -> int:
        return len(self.item_ids)

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_store(cls, con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> Catalog:
        """The catalog in the store, with popularity from engagement before `as_of` (default: all)."""
        items = con.sql("SELECT * FROM items").to_arrow_table()
        categories = con.sql("SELECT * FROM categories").to_arrow_table()
        return cls(items, categories, popularity_from_store(con, as_of))

    def _price_bands(self) -> np.ndarray:
        """Price quintile within the item's category (0 cheapest), -1 unknown."""
        band = np.full(len(self.price), -1, dtype=np.int64)
        ok = (self.category >= 0) & (self.price > 0)
        idx = np.flatnonzero(ok)
        order = idx[np.lexsort((self.price[idx], self.category[idx]))]
        cats = self.category[order]
        starts = np.flatnonzero(np.r_[True, cats[1:] != cats[:-1]])
        sizes = np.diff(np.r_[starts, len(order)])
        rank = np.arange(len(order)) - np.repeat(starts, sizes)
        band[order] = (rank * N_PRICE_BANDS) // np.repeat(sizes, sizes)
        return band

    def _load_categories(self, categories: pa.Table | None) -> None:
        """Category names and the tree: `descendants(c)` lists c and every category under it."""
        self.category_names = self.category_ids.copy()
        self.category_parent = np.full(len(self.category_ids), -1, dtype=np.int64)
        self._all_categories = self.category_ids
        self._children: dict[str, list[str]] = {}
        if categories is None or categories.num_rows == 0:
            return
        ids = _strings(categories.column("category_id"))
        names = dict(zip(ids, _strings(categories.column("name")), strict=True))
        parents = dict(zip(ids, _strings(categories.column("parent_id")), strict=True))
        self.category_names = np.asarray([names.get(c, c) for c in self.category_ids], dtype=object)
        for child, parent in parents.items():
            if parent:
                self._children.setdefault(parent, []).append(child)
        position = {c: i for i, c in enumerate(self.category_ids)}
        self.category_parent = np.asarray([position.get(parents.get(c, ""), -1) for c in self.category_ids],
                                          dtype=np.int64)
        self._names_by_id = names

    def reindex(self) -> None:
        """Rebuild the popularity-ordered lists (after popularity or catalog changes)."""
        self.category_indptr, self.category_items = _grouped(self.category, len(self.category_ids), self.popularity)
        self.brand_indptr, self.brand_items = _grouped(self.brand, len(self.brands), self.popularity)

    # --- lookups ------------------------------------------------------------------------

    def category_popularity(self) -> np.ndarray:
        """(n_categories,) summed popularity of each category's items, stock aside."""
        known = self.category >= 0
        return np.bincount(self.category[known], weights=self.popularity[known], minlength=len(self.category_ids))

    def index_of(self, item_ids: np.ndarray | list[str]) -> np.ndarray:
        """Catalog index per id, -1 for ids not in the catalog."""
        ids = np.asarray(item_ids, dtype=object)
        if len(ids) == 0 or len(self.item_ids) == 0:
            return np.full(len(ids), -1, dtype=np.int64)
        pos = np.searchsorted(self.item_ids, ids)
        pos = np.minimum(pos, len(self.item_ids) - 1)
        return np.where(self.item_ids[pos] == ids, pos, -1).astype(np.int64)

    def category_index(self, category_id: str) -> int:
        pos = int(np.searchsorted(self.category_ids, category_id))
        return pos if pos < len(self.category_ids) and self.category_ids[pos] == category_id else -1

    def brand_index(self, brand: str) -> int:
        pos = int(np.searchsorted(self.brands, brand))
        return pos if pos < len(self.brands) and self.brands[pos] == brand else -1

    def items_in_category(self, category: int, limit: int | None = None, in_stock_only: bool = True) -> np.ndarray:
        """Items of a leaf category, most popular first."""
        items = self.category_items[self.category_indptr[category]: self.category_indptr[category + 1]]
        return self._first_in_stock(items, limit) if in_stock_only else items[:limit]

    def items_of_brand(self, brand: int, limit: int | None = None, in_stock_only: bool = True) -> np.ndarray:
        items = self.brand_items[self.brand_indptr[brand]: self.brand_indptr[brand + 1]]
        return self._first_in_stock(items, limit) if in_stock_only else items[:limit]

    def _first_in_stock(self, items: np.ndarray, limit: int | None) -> np.ndarray:
        """The first `limit` in-stock items of a list: the stock of a short head is read first
        (most items are in stock), the whole list only when the head does not hold enough."""
        if limit is not None and len(items) > 2 * limit:
            head = items[: 2 * limit]
            head = head[self.in_stock[head]]
            if len(head) >= limit:
                return head[:limit]
        return items[self.in_stock[items]][:limit]

    def descendants(self, category_id: str) -> list[str]:
        """The category and every category below it in the tree."""
        out, stack = [], [category_id]
        while stack:
            c = stack.pop()
            out.append(c)
            stack.extend(self._children.get(c, ()))
        return out

    # --- run-time changes ---------------------------------------------------------------

    def set_stock(self, item_indices: np.ndarray, in_stock: np.ndarray | bool) -> None:
        self.in_stock[np.asarray(item_indices, dtype=np.int64)] = in_stock


def _names_per_item(names: np.ndarray, codes: np.ndarray) -> np.ndarray:
    """(n_items,) object array: the name of each item's code, "" for none."""
    named = np.asarray(names, dtype=object)
    return np.where(codes >= 0, named[np.maximum(codes, 0)] if len(named) else "", "").astype(object)


def popularity_from_store(con: duckdb.DuckDBPyConnection, as_of: datetime | None = None) -> dict[str, float]:
    """Decayed funnel-weighted engagement per item before `as_of` (half-life 7 days)."""
    weights = " ".join(f"WHEN '{k}' THEN {v}" for k, v in POPULARITY_WEIGHTS.items())
    end = "(SELECT max(ts) FROM events)" if as_of is None else "$as_of::TIMESTAMPTZ"
    cutoff = "" if as_of is None else "AND ts < $as_of::TIMESTAMPTZ"
    rows = con.execute(
        f"""
        SELECT item_id, sum((CASE event_type {weights} ELSE 0 END)
               * exp(-ln(2) * epoch({end} - ts) / 86400.0 / {POPULARITY_HALF_LIFE_DAYS}))
        FROM events
        WHERE event_type IN ('click', 'add_to_cart', 'purchase') AND item_id IS NOT NULL {cutoff}
        GROUP BY item_id
        """,
        {} if as_of is None else {"as_of": as_of},
    ).fetchall()
    return {item: float(value) for item, value in rows}


def curated_definitions(con: duckdb.DuckDBPyConnection) -> list[CuratedDefinition]:
    """Every collection in the store as an operator definition (the curated source filters by date)."""
    rows = con.sql("SELECT * FROM collections ORDER BY collection_id").to_arrow_table().to_pylist()
    return [definition_from_row(r) for r in rows]


def definition_from_row(row: Mapping) -> CuratedDefinition:
    def seconds(value: datetime | None, default: float) -> float:
        return value.timestamp() if value is not None else default

    return CuratedDefinition(
        collection_id=str(row["collection_id"]),
        title=str(row["title"]),
        item_ids=tuple(row.get("item_ids") or ()),
        rule_categories=tuple(row.get("rule_categories") or ()),
        rule_brands=tuple(row.get("rule_brands") or ()),
        rule_tags=tuple(row.get("rule_tags") or ()),
        rule_price_min=row.get("rule_price_min"),
        rule_price_max=row.get("rule_price_max"),
        starts_t=seconds(row.get("starts_at"), -np.inf),
        ends_t=seconds(row.get("ends_at"), np.inf),
        pinned_row=int(row["pinned_row"]) if row.get("pinned_row") is not None else -1,
        source=str(row.get("source") or "curated"),
    )
