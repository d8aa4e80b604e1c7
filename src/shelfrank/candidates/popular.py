"""The popular-categories source: the store's most engaged categories, for everyone.

It is what a new user's page and the fallback page are made of (with the curated
collections), and the popularity baseline's collection source.
"""

from __future__ import annotations

import numpy as np

from shelfrank.candidates.base import CandidateCollection, UserContext
from shelfrank.store.catalog import Catalog


class PopularCategoriesSource:
    name = "popular_categories"
    fail_open = True

    def __init__(self, catalog: Catalog, n_collections: int = 30, pool_size: int = 100, min_items: int = 4,
                 collection_ids: dict[str, str] | None = None) -> None:
        self.catalog = catalog
        self.n_collections = n_collections
        self.pool_size = pool_size
        self.min_items = min_items
        # category_id -> the store's id for that category's collection (e.g. "cat:c12")
        self.collection_ids = collection_ids or {}
        # Category popularity once (popularity is fixed between restarts); stock is checked per request
        # on the few categories proposed, not on the whole catalog.
        self.weight = catalog.category_popularity()
        self.order = np.argsort(-self.weight, kind="stable")
        # The proposals are the same for everyone until the stock of an item in one of the categories
        # they looked at changes: kept with that stock, and checked (one gather) per request.
        self._cached: list[CandidateCollection] | None = None
        self._watched = np.zeros(0, dtype=np.int64)
        self._watched_stock = np.zeros(0, dtype=bool)
        self._watched_lists: np.ndarray | None = None

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        cat = self.catalog
        if (self._cached is not None and self._watched_lists is cat.category_items
                and np.array_equal(cat.in_stock[self._watched], self._watched_stock)):
            return list(self._cached)
        out, looked = self._propose()
        self._watched = (np.concatenate([cat.category_items[cat.category_indptr[c]: cat.category_indptr[c + 1]]
                                         for c in looked]) if looked else np.zeros(0, dtype=np.int64))
        self._watched_stock = cat.in_stock[self._watched].copy()
        self._watched_lists = cat.category_items
        self._cached = out
        return list(out)

    def _propose(self) -> tuple[list[CandidateCollection], list[int]]:
        """The proposals, and the categories they looked at (whose stock decides them)."""
        cat = self.catalog
        looked: list[int] = []
        weight, order = self.weight, self.order
        top = weight[order[0]] if len(order) else 0.0
        out: list[CandidateCollection] = []
        for c in order:
            if len(out) >= self.n_collections or weight[c] <= 0:
                break
            looked.append(int(c))
            items = cat.items_in_category(int(c), self.pool_size)
            if len(items) < self.min_items:
                continue
            cid = str(cat.category_ids[c])
            out.append(CandidateCollection(
                collection_id=self.collection_ids.get(cid, f"popular_categories:{cid}"),
                title=str(cat.category_names[c]), source="rules", generator=self.name, items=items,
                reason=f"Popular in {cat.category_names[c]}",
                signals={"category_popularity": round(float(weight[c]), 3)},
                prior=float(weight[c] / top) if top > 0 else 0.0,
            ))
        return out, looked
