"""Feature hydration for a page: each candidate item and each candidate collection read once.

The online feature state answers ``get(user, items, t, context)`` for one collection at a
time. A page scores hundreds of (collection, item) pairs, so the hydrator splits the
feature columns by what they depend on:

* request columns (the user's, the session's, the context's; the collection ones as for no
  collection): computed once per request, as one row, from ``request_inputs``;
* item columns (the item's counters and attributes, the user's counters keyed by the item or
  its category / brand / vertical, the embedding cosines): per batch of new items, from
  ``item_inputs`` over the user's keyed rows read once per request (``user_views``);
* collection-dependent columns (the declared features that read the collection or
  user x collection streams, or collection attributes): computed for all candidate
  collections at once from the same declared formulas, fed with per-collection inputs.

An item's row is the request row with its item columns written over it; a (collection, item)
row is then the item's row with the collection's columns written over it. The values equal
those of ``get(user, [item], t, {collection_id: c})`` (tests/page/test_engine.py checks them; the
embedding cosines may differ in the last bit, as BLAS may sum a row in another order for another
batch of rows), at a fraction of the cost.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from shelfrank.arrays import in_sorted, unique_sorted
from shelfrank.features.definitions import Feature, FeatureSpace, feature_matrix
from shelfrank.features.online import PER_ITEM_STREAMS, InMemoryFeatureState, seconds

COLLECTION_STREAMS = ("collection", "user_collection")
COLLECTION_ATTRIBUTES = ("collection.source", "collection.size")


def _columns(space: FeatureSpace, keep) -> tuple[np.ndarray, tuple[Feature, ...]]:
    picked = [(j, f) for j, f in enumerate(space.features) if keep(f)]
    return np.asarray([j for j, _ in picked], dtype=np.int64), tuple(f for _, f in picked)


def _collection_dependent(space: FeatureSpace) -> tuple[np.ndarray, tuple[Feature, ...]]:
    """Column indices and features whose inputs involve the collection."""
    counters = {c.name for s in COLLECTION_STREAMS for c in space.counters.get(s, ())}
    return _columns(space, lambda f: any(i in counters or i in COLLECTION_ATTRIBUTES for i in f.inputs))


def _item_dependent(space: FeatureSpace) -> tuple[np.ndarray, tuple[Feature, ...]]:
    """Column indices and features whose inputs involve the item (its counters, attributes or vector,
    or the user's counters keyed by it); the others are the same for every item of a request."""
    per_item = {c.name for s in PER_ITEM_STREAMS for c in space.counters.get(s, ())}
    return _columns(space, lambda f: any(i in per_item or i.startswith("item.") for i in f.inputs))


@dataclass
class HydratedFeatures:
    """Item rows (U, d) for the unique candidate items and collection columns (C, k)."""

    item_rows: np.ndarray
    collection_columns: np.ndarray
    columns: np.ndarray  # indices of the collection-dependent columns in the feature vector

    def pairs(self, collection: np.ndarray, item_row: np.ndarray) -> np.ndarray:
        """Feature rows for (collection, item) pairs: collection index into the hydrated collections,
        item_row index into the hydrated items."""
        X = self.item_rows[np.asarray(item_row, dtype=np.int64)]  # integer indexing: a copy, written below
        X[:, self.columns] = self.collection_columns[collection]
        return X


class FeatureHydrator:
    """Made once per feature state; `for_request` gives one request's reads."""

    def __init__(self, state: InMemoryFeatureState) -> None:
        self.state = state
        self.columns, self.collection_features = _collection_dependent(state.space)
        # An item row = the request's row (features that do not read the item, computed once per
        # request; the collection ones as for no collection) with the item columns written over it.
        self.item_columns, self.item_features = _item_dependent(state.space)
        request = np.ones(len(state.space.features), dtype=bool)
        request[self.item_columns] = False
        self.request_columns = np.flatnonzero(request)
        self.request_features = tuple(state.space.features[j] for j in self.request_columns)
        self._aligned: tuple[np.ndarray, np.ndarray] | None = None  # (catalog ids, state ids) known equal

    def for_request(self, user_id: str, t: float, context: Mapping[str, str | None]) -> RequestFeatures:
        return RequestFeatures(self, user_id, t, context)

    def hydrate(self, user_id: str, item_ids: Sequence[str] | np.ndarray, collection_ids: Sequence[str],
                t: float, context: Mapping[str, str | None]) -> HydratedFeatures:
        """Features of items given by id (unknown ids read as no events) in the given collections."""
        ids = np.asarray(item_ids, dtype=str)
        return self.for_request(user_id, t, context).hydrate(np.arange(len(ids)), ids, collection_ids)

    def state_rows(self, items: np.ndarray, catalog_ids: np.ndarray) -> np.ndarray:
        """Rows in the feature state of items given as indices into `catalog_ids`. When the catalog
        lists the same items in the same order as the state (the usual case: both load the items
        table sorted by id), the indices are the rows; else they are looked up by id."""
        state_ids = self.state.item_ids
        aligned = self._aligned is not None and self._aligned[0] is catalog_ids and self._aligned[1] is state_ids
        if not aligned and len(catalog_ids) == len(state_ids) \
                and bool(np.all(np.asarray(catalog_ids, dtype=str) == state_ids)):
            self._aligned, aligned = (catalog_ids, state_ids), True
        return items if aligned else self.state.item_index(np.asarray(catalog_ids)[items])


class RequestFeatures:
    """One request's feature reads. The request-level inputs (user, session, context) are read once;
    item rows and collection columns are kept, so the ranking stage reads only the items and
    collections the retrieval stage did not (the chosen collections are among the retrieved)."""

    def __init__(self, hydrator: FeatureHydrator, user_id: str, t: float, context: Mapping[str, str | None]) -> None:
        self.hydrator = hydrator
        self.state = hydrator.state
        self.user_id = user_id
        self.t = seconds(t)
        self.context = {k: v for k, v in context.items() if k != "collection_id"}
        self._request_inputs: dict[str, np.ndarray] | None = None
        self._request_row: np.ndarray | None = None  # (d,) the request-level columns filled in
        self._views = None  # the user's keyed rows at t, made on the first item read
        self._items = np.zeros(0, dtype=np.int64)  # the items read so far, sorted
        self._row_at = np.zeros(0, dtype=np.int64)  # each one's row in _item_rows
        self._item_rows = np.zeros((0, len(self.state.space.features)))  # in the order they were read
        self._collections: dict[str, int] = {}
        self._collection_rows = np.zeros((0, len(hydrator.columns)))

    def hydrate(self, items: np.ndarray, catalog_ids: np.ndarray, collection_ids: Sequence[str]) -> HydratedFeatures:
        """Item rows (in the order of `items`, indices into `catalog_ids`) and collection columns (in
        the order of `collection_ids`)."""
        items = np.asarray(items, dtype=np.int64)
        return HydratedFeatures(self._rows_of_items(items, catalog_ids), self._columns_of(collection_ids),
                                self.hydrator.columns)

    def _rows_of_items(self, items: np.ndarray, catalog_ids: np.ndarray) -> np.ndarray:
        new = unique_sorted(items[~in_sorted(items, self._items)])
        if len(new):
            hydrator, space = self.hydrator, self.state.space
            if self._request_inputs is None:
                self._request_inputs = self.state.request_inputs(self.user_id, self.t, self.context)
                self._views = self.state.user_views(self.user_id, self.t)
                self._request_row = np.zeros(len(space.features))
                self._request_row[hydrator.request_columns] = feature_matrix(
                    hydrator.request_features, self._request_inputs, space.vocabularies, rows=1)[0]
            rows = hydrator.state_rows(new, catalog_ids)
            inputs = {**self._request_inputs, **self.state.item_inputs(self.user_id, rows, self.t, self._views)}
            matrix = np.repeat(self._request_row[None, :], len(new), axis=0)
            matrix[:, hydrator.item_columns] = feature_matrix(hydrator.item_features, inputs, space.vocabularies,
                                                              rows=len(new))
            keys = np.concatenate([self._items, new])
            order = np.argsort(keys, kind="stable")
            self._items = keys[order]
            self._row_at = np.concatenate([self._row_at, np.arange(len(new)) + len(self._item_rows)])[order]
            self._item_rows = np.concatenate([self._item_rows, matrix])  # appended: the rows are not moved
        return self._item_rows[self._row_at[np.searchsorted(self._items, items)]]

    def _columns_of(self, collection_ids: Sequence[str]) -> np.ndarray:
        ids = [str(c) for c in collection_ids]
        new = list(dict.fromkeys(c for c in ids if c not in self._collections))
        if new and len(self.hydrator.columns):
            inputs = self.state.collection_inputs(self.user_id, new, self.t)
            block = feature_matrix(self.hydrator.collection_features, inputs, self.state.space.vocabularies,
                                   rows=len(new))
            self._collections.update({c: len(self._collection_rows) + i for i, c in enumerate(new)})
            self._collection_rows = np.concatenate([self._collection_rows, block])
        if not len(self.hydrator.columns):
            return np.zeros((len(ids), 0))
        return self._collection_rows[[self._collections[c] for c in ids]]
