"""The operator's collections: explicit item lists and catalog rules, shown inside their date window.

A definition's items are resolved once (explicit ids in their order, unknown ids skipped; or the
rule's categories with their descendants AND brands AND any of the tags AND the price range, most
popular first) and cached with out-of-stock items kept, so a request only filters by stock and
cuts to the pool size. Definitions can be added, replaced or removed at run time; ``refresh``
drops the cache after catalog changes (new items, popularity).
"""

from __future__ import annotations

import math
from collections.abc import Iterable
from dataclasses import dataclass

import numpy as np

from shelfrank.candidates.base import CandidateCollection, UserContext
from shelfrank.store.catalog import Catalog, CuratedDefinition

CURATED_PRIOR = 0.5  # the operator chose it: a strong prior for the first pass
RULES_PRIOR = 0.3


@dataclass
class _Packed:
    definitions: list[CuratedDefinition]
    items: np.ndarray  # every definition's items, concatenated (out-of-stock included)
    indptr: np.ndarray  # definition k's items are items[indptr[k]:indptr[k + 1]]
    owner: np.ndarray  # the definition of each entry of items
    starts: np.ndarray
    ends: np.ndarray
    curated: np.ndarray
    labels: list[tuple[str, str, float]]  # (source, reason, prior) per definition


def _labels(d: CuratedDefinition) -> tuple[str, str, float]:
    if d.source in ("rules", "ml"):
        return d.source, f"Popular in {d.title}", RULES_PRIOR
    return "curated", "Picked by our team", CURATED_PRIOR


class CuratedCollectionsSource:
    """Active curated (and, unless ``curated_only``, stored rule) collections, the same for every user."""

    name = "curated"
    fail_open = True

    def __init__(self, definitions: Iterable[CuratedDefinition], catalog: Catalog, pool_size: int = 100,
                 curated_only: bool = False) -> None:
        self.catalog = catalog
        self.pool_size = pool_size
        self.curated_only = curated_only
        self._definitions: dict[str, CuratedDefinition] = {}
        self._items: dict[str, np.ndarray] = {}  # resolved items per collection, out-of-stock included
        self._tag_items: dict[str, np.ndarray] | None = None
        self._packed: _Packed | None = None
        for definition in definitions:
            self.upsert(definition)

    # --- run-time changes -----------------------------------------------------------------

    def upsert(self, definition: CuratedDefinition) -> None:
        """Add or replace a definition; effective for the next ``propose``."""
        self._definitions[definition.collection_id] = definition
        self._items.pop(definition.collection_id, None)
        self._packed = None

    def remove(self, collection_id: str) -> None:
        self._definitions.pop(collection_id, None)
        self._items.pop(collection_id, None)
        self._packed = None

    def refresh(self) -> None:
        """Forget resolved items (call after the catalog's items or popularity change)."""
        self._items.clear()
        self._tag_items = None
        self._packed = None

    # --- the verb -------------------------------------------------------------------------

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        p = self._pack()
        active = (p.starts <= user.t) & (user.t < p.ends)
        if self.curated_only:
            active &= p.curated
        # One pass over every definition's items: in stock, active, and within the first pool_size kept.
        ok = self.catalog.in_stock[p.items] & active[p.owner]
        kept_before = np.concatenate([[0], np.cumsum(ok)])
        rank = kept_before[1:] - kept_before[p.indptr[:-1]][p.owner]
        keep = ok & (rank <= self.pool_size)
        counts = np.bincount(p.owner[keep], minlength=len(p.definitions))
        kept, ends = p.items[keep], np.cumsum(counts).tolist()
        out = []
        for k in np.flatnonzero(counts).tolist():  # one iteration per proposed collection
            d, (source, reason, prior) = p.definitions[k], p.labels[k]
            items = kept[ends[k] - int(counts[k]): ends[k]]
            signals = {"explicit": float(bool(d.item_ids)), "n_items": float(len(items))}
            if math.isfinite(d.ends_t):
                signals["days_left"] = (d.ends_t - user.t) / 86_400.0
            out.append(CandidateCollection(
                collection_id=d.collection_id, title=d.title, source=source, generator=self.name, items=items,
                reason=reason, signals=signals, prior=prior, pinned_row=d.pinned_row, created_t=d.starts_t,
            ))
        return out

    def _pack(self) -> _Packed:
        """Every definition's resolved items in one array (CSR), rebuilt after a change."""
        if self._packed is None:
            # With curated_only, the store's thousands of rule collections are not even packed.
            definitions = [d for d in self._definitions.values() if not self.curated_only or d.source == "curated"]
            resolved = [self._resolved(d) for d in definitions]
            sizes = np.asarray([len(r) for r in resolved], dtype=np.int64)
            self._packed = _Packed(
                definitions=definitions,
                items=np.concatenate([np.zeros(0, dtype=np.int64), *resolved]).astype(np.int64),
                indptr=np.concatenate([[0], np.cumsum(sizes)]).astype(np.int64),
                owner=np.repeat(np.arange(len(definitions)), sizes),
                starts=np.asarray([d.starts_t for d in definitions], dtype=np.float64),
                ends=np.asarray([d.ends_t for d in definitions], dtype=np.float64),
                curated=np.asarray([d.source == "curated" for d in definitions], dtype=bool),
                labels=[_labels(d) for d in definitions],
            )
        return self._packed

    # --- resolution -----------------------------------------------------------------------

    def _resolved(self, d: CuratedDefinition) -> np.ndarray:
        items = self._items.get(d.collection_id)
        if items is None:
            items = self._explicit(d) if d.item_ids else self._ruled(d)
            self._items[d.collection_id] = items
        return items

    def _explicit(self, d: CuratedDefinition) -> np.ndarray:
        index = self.catalog.index_of(np.asarray(d.item_ids, dtype=object))
        index = index[index >= 0]
        _, first = np.unique(index, return_index=True)  # a repeated id keeps its first place
        return index[np.sort(first)]

    def _ruled(self, d: CuratedDefinition) -> np.ndarray:
        c = self.catalog
        if not (d.rule_categories or d.rule_brands or d.rule_tags
                or d.rule_price_min is not None or d.rule_price_max is not None):
            return np.zeros(0, dtype=np.int64)  # no rule at all: not "the whole catalog"
        keep = np.ones(len(c), dtype=bool)
        if d.rule_categories:
            wanted = {sub for cat in d.rule_categories for sub in c.descendants(cat)}
            codes = [c.category_index(x) for x in wanted]
            keep &= np.isin(c.category, [x for x in codes if x >= 0])
        if d.rule_brands:
            codes = [c.brand_index(x) for x in d.rule_brands]
            keep &= np.isin(c.brand, [x for x in codes if x >= 0])
        if d.rule_tags:
            tag_items = self._items_by_tag()
            tagged = np.zeros(len(c), dtype=bool)
            for tag in d.rule_tags:
                tagged[tag_items.get(tag, np.zeros(0, dtype=np.int64))] = True
            keep &= tagged
        if d.rule_price_min is not None:
            keep &= c.price >= d.rule_price_min
        if d.rule_price_max is not None:
            keep &= c.price <= d.rule_price_max
        items = np.flatnonzero(keep)
        return items[np.argsort(-c.popularity[items], kind="stable")].astype(np.int64)

    def _items_by_tag(self) -> dict[str, np.ndarray]:
        """Items per tag, built once (tags are Python tuples in the catalog)."""
        if self._tag_items is None:
            lengths = np.fromiter((len(t) for t in self.catalog.tags), dtype=np.int64, count=len(self.catalog))
            owner = np.repeat(np.arange(len(self.catalog)), lengths)
            flat = np.asarray([tag for tags in self.catalog.tags for tag in tags], dtype=object)
            self._tag_items = {}
            if len(flat):
                names, codes = np.unique(flat.astype(str), return_inverse=True)
                order = np.argsort(codes, kind="stable")
                bounds = np.searchsorted(codes[order], np.arange(len(names) + 1))
                self._tag_items = {str(n): owner[order[bounds[i]: bounds[i + 1]]] for i, n in enumerate(names)}
        return self._tag_items
