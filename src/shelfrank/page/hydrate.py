"""Feature hydration for a page: one feature read for all candidate items, one for all collections.

The online feature state answers ``get(user, items, t, context)`` for one collection at a
time. A page scores hundreds of (collection, item) pairs, so the hydrator splits the
feature columns by what they depend on:

* item, user, context, cross and session columns: one ``inputs`` call for the union of
  the candidate items (the collection is left empty);
* collection-dependent columns (the declared features that read the collection or
  user x collection streams, or collection attributes): computed for all candidate
  collections at once from the same declared formulas, fed with per-collection inputs.

A (collection, item) row is then the item's row with the collection's columns written
over it: the values equal those of ``get(user, [item], t, {collection_id: c})``
(tests/page/test_hydrate.py checks it), at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shelfrank.features.definitions import Feature, FeatureSpace, feature_matrix
from shelfrank.features.online import InMemoryFeatureState, seconds

COLLECTION_STREAMS = ("collection", "user_collection")
COLLECTION_ATTRIBUTES = ("collection.source", "collection.size")


def _collection_dependent(space: FeatureSpace) -> tuple[np.ndarray, tuple[Feature, ...]]:
    """Column indices and features whose inputs involve the collection."""
    counters = {c.name for s in COLLECTION_STREAMS for c in space.counters.get(s, ())}
    picked = [(j, f) for j, f in enumerate(space.features)
              if any(i in counters or i in COLLECTION_ATTRIBUTES for i in f.inputs)]
    return np.asarray([j for j, _ in picked], dtype=np.int64), tuple(f for _, f in picked)


@dataclass
class HydratedFeatures:
    """Item rows (U, d) for the unique candidate items and collection columns (C, k)."""

    item_rows: np.ndarray
    collection_columns: np.ndarray
    columns: np.ndarray  # indices of the collection-dependent columns in the feature vector

    def pairs(self, collection: np.ndarray, item_row: np.ndarray) -> np.ndarray:
        """Feature rows for (collection, item) pairs: collection index into the hydrated collections,
        item_row index into the hydrated items."""
        X = self.item_rows[item_row].copy()
        X[:, self.columns] = self.collection_columns[collection]
        return X


class FeatureHydrator:
    def __init__(self, state: InMemoryFeatureState) -> None:
        self.state = state
        self.columns, self.collection_features = _collection_dependent(state.space)
        self._aligned: tuple[np.ndarray, np.ndarray] | None = None  # (catalog ids, state ids) known equal

    def hydrate(self, user_id: str, item_ids: Sequence[str] | np.ndarray, collection_ids: Sequence[str],
                t: float, context: Mapping[str, str | None]) -> HydratedFeatures:
        context = {k: v for k, v in context.items() if k != "collection_id"}
        item_rows = self.state.get(user_id, item_ids, t, context)
        return HydratedFeatures(item_rows, self._collection_columns(user_id, collection_ids, t), self.columns)

    def hydrate_catalog(self, user_id: str, items: np.ndarray, catalog_ids: np.ndarray,
                        collection_ids: Sequence[str], t: float,
                        context: Mapping[str, str | None]) -> HydratedFeatures:
        """`hydrate` for items given as indices into `catalog_ids` (the page's catalog). When that
        catalog lists the same items in the same order as the feature state (the usual case: both
        load the items table sorted by id), the indices are used as they are; else by id."""
        context = {k: v for k, v in context.items() if k != "collection_id"}
        if self._same_order(catalog_ids):
            item_rows = self.state.get_rows(user_id, items, t, context)
        else:
            item_rows = self.state.get(user_id, catalog_ids[items], t, context)
        return HydratedFeatures(item_rows, self._collection_columns(user_id, collection_ids, t), self.columns)

    def _same_order(self, catalog_ids: np.ndarray) -> bool:
        state_ids = self.state.item_ids
        if self._aligned is not None and self._aligned[0] is catalog_ids and self._aligned[1] is state_ids:
            return True
        if len(catalog_ids) == len(state_ids) and bool(np.all(np.asarray(catalog_ids, dtype=str) == state_ids)):
            self._aligned = (catalog_ids, state_ids)
            return True
        return False

    def _collection_columns(self, user_id: str, collection_ids: Sequence[str], t: float) -> np.ndarray:
        st = self.state
        n = len(collection_ids)
        if n == 0 or len(self.columns) == 0:
            return np.zeros((n, len(self.columns)))
        t = seconds(t)
        codes = np.asarray([st.collection_codes.get(c, -1) for c in collection_ids], dtype=np.int64)
        user = st.user_codes.get(user_id, -1)
        inputs: dict[str, np.ndarray] = {"context.t": np.array([t])}
        counters = st.counters
        if "collection" in counters:
            values = st.collection_totals.read(codes, t)
            for j, c in enumerate(counters["collection"]):
                inputs[c.name] = values[:, j]
        if "user_collection" in st.user_keyed:
            keyed = st.user_keyed["user_collection"]
            values = keyed.table.read(keyed.rows_of_user(user, codes), t)
            for j, c in enumerate(keyed.table.counters):
                inputs[c.name] = values[:, j]
        if "user" in counters:
            values = st.user_totals.read(np.array([user]), t)
            for j, c in enumerate(counters["user"]):
                inputs[c.name] = values[:, j]
        profiles = [st.collection_profiles.get(c, ("", np.nan)) for c in collection_ids]
        inputs["collection.source"] = np.asarray([p[0] for p in profiles], dtype=object)
        inputs["collection.size"] = np.asarray([p[1] for p in profiles], dtype=np.float64)
        return feature_matrix(self.collection_features, inputs, st.space.vocabularies, rows=n)
