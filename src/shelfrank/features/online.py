"""Online features: an in-memory state updated event by event and read at request time.

The state keeps, for every counter the feature declarations need, a running value per key:
a decayed sum is stored as (value at its anchor time, anchor time), so adding an event and
reading at any later time are O(1) per key and exact. Item counters live in numpy arrays
indexed by the catalog's item index; users get a dense code (a dict from id to code) that
indexes the user totals and the current-session counters; the user x vertical / category /
brand / item counters are tables keyed by (user code, attribute code), kept sorted, so a
request finds the rows of all its items with one binary search and an update is vectorized
over the whole batch (no per-event Python).

``get`` answers one request for many items at once, vectorized over the items, and returns the
same columns as ``OfflineFeatures`` (``definitions.FEATURES`` order). A Redis-backed state will
implement the same :class:`FeatureState` interface.

Semantics: ``get(..., ts)`` reflects every event passed to ``update`` so far, which should be
the events before ts; offline, that is exactly "events strictly before ts" (the parity test).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import UTC, datetime
from functools import cached_property
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.arrays import in_sorted, unique_sorted
from shelfrank.contracts import EVENT_TYPES
from shelfrank.features.definitions import ITEM_VECTOR, STREAM_ITEM_ATTRIBUTE, Counter, FeatureSpace
from shelfrank.features.examination import examination_weight

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class FeatureState(Protocol):
    """What the page pipeline needs from online features, whatever holds the state."""

    def update(self, events: pa.Table) -> None: ...

    def get(self, user_id: str, item_ids: Sequence[str] | np.ndarray, ts: datetime | float,
            context: Mapping[str, str | None] | None = None) -> np.ndarray: ...


SMALL_BATCH_ROWS = 50_000  # event batches up to this size map item ids by binary search

# Streams read per item; the others (user, session, collection, user x collection) once per request.
PER_ITEM_STREAMS = frozenset({"item", "user_item", *STREAM_ITEM_ATTRIBUTE})


def seconds(ts: datetime | float | np.datetime64) -> float:
    """Seconds since the epoch with the same arithmetic as offline: int microseconds / 1e6."""
    if isinstance(ts, datetime):
        if ts.tzinfo is None:
            ts = ts.replace(tzinfo=UTC)
        return float((ts - _EPOCH) // _MICROSECOND) / 1_000_000.0
    if isinstance(ts, np.datetime64):
        return float(ts.astype("datetime64[us]").astype(np.int64)) / 1_000_000.0
    return float(ts)


_MICROSECOND = datetime(1970, 1, 1, 0, 0, 0, 1, tzinfo=UTC) - _EPOCH


def _timestamps(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    us = pc.cast(pc.cast(column, pa.timestamp("us", tz="UTC")), pa.int64())
    return us.to_numpy(zero_copy_only=False).astype(np.float64) / 1_000_000.0


def _floats(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    """Numbers or booleans as float64, nulls as NaN."""
    return pc.cast(column, pa.float64()).to_numpy(zero_copy_only=False).astype(np.float64)


def _strings(column: pa.ChunkedArray | pa.Array) -> np.ndarray:
    return np.asarray(pc.fill_null(column, "").to_pylist(), dtype=str)


# Counters share a few half-lives: (the distinct rates ascending, each column's index among them,
# whether that index is the column's own), so a decay takes one exp per distinct rate, not per column.
RateGroups = tuple[np.ndarray, np.ndarray, bool]


def _rate_groups(rates: np.ndarray) -> RateGroups:
    distinct, column_of = np.unique(rates, return_inverse=True)
    column_of = column_of.reshape(-1)
    return distinct, column_of, bool(np.array_equal(column_of, np.arange(len(column_of))))


def _factors(elapsed: np.ndarray, groups: RateGroups) -> np.ndarray:
    """(len(elapsed), columns) factors exp(-elapsed * rate), one exp per distinct rate spread to the
    columns (gathered unless every column has its own rate, in ascending order)."""
    distinct, column_of, in_place = groups
    factors = np.exp(-np.multiply.outer(elapsed, distinct))
    return factors if in_place else factors[:, column_of]


class CounterTable:
    """Rows of counters with one anchor time per row.

    Column j is a decayed sum (rate > 0), a plain sum (rate 0) or a last time (is_last). A decayed
    value is stored as of the row's anchor (its newest event); reading at t multiplies by
    exp(-(t - anchor) * rate). Adding events is order-independent.
    """

    def __init__(self, counters: Sequence[Counter], rows: int = 0, *, rates: np.ndarray | None = None) -> None:
        """`rates` instead of counters: sums with these decay rates (taste vectors: one per dimension)."""
        self.counters = tuple(counters)
        if rates is None:
            self.rates = np.array([c.decay_rate for c in counters], dtype=np.float64)
            self.is_last = np.array([c.aggregate == "last_time" for c in counters], dtype=bool)
        else:
            self.rates = np.asarray(rates, dtype=np.float64)
            self.is_last = np.zeros(len(self.rates), dtype=bool)
        self.decays = self.rates > 0
        self.decay_rates = self.rates[self.decays]
        self.values = np.zeros((rows, len(self.rates)), dtype=np.float64)
        self.values[:, self.is_last] = -np.inf
        self.anchor = np.full(rows, -np.inf)

    @property
    def rows(self) -> int:
        return len(self.anchor)

    def grow(self, rows: int) -> None:
        extra = rows - self.rows
        if extra <= 0:
            return
        block = np.zeros((extra, self.values.shape[1]))
        block[:, self.is_last] = -np.inf
        self.values = np.concatenate([self.values, block])
        self.anchor = np.concatenate([self.anchor, np.full(extra, -np.inf)])

    def reset(self, rows: np.ndarray) -> None:
        self.values[rows] = np.where(self.is_last, -np.inf, 0.0)
        self.anchor[rows] = -np.inf

    def insert(self, at: np.ndarray) -> None:
        """Insert empty rows before the given positions (keeps a sorted key index aligned)."""
        block = np.zeros((len(at), self.values.shape[1]))
        block[:, self.is_last] = -np.inf
        self.values = np.insert(self.values, at, block, axis=0)
        self.anchor = np.insert(self.anchor, at, -np.inf)

    def add(self, rows: np.ndarray, t: np.ndarray, contributions: np.ndarray) -> None:
        """Add events: contributions[i, j] is event i's weight for column j (its time for last columns)."""
        order = np.argsort(rows, kind="stable")
        rows, t, contributions = rows[order], t[order], contributions[order]
        starts = np.flatnonzero(np.r_[True, rows[1:] != rows[:-1]])
        touched = rows[starts]
        idx = np.repeat(np.arange(len(starts)), np.diff(np.r_[starts, len(rows)]))
        old = self.anchor[touched]
        anchor = np.maximum(old, np.maximum.reduceat(t, starts))
        gap = np.where(np.isfinite(old), anchor - old, 0.0)
        block = self.values[touched]
        sums = ~self.is_last
        # Decay the stored values to the new anchor, then add each event decayed from its time to it.
        block[:, sums] *= _factors(gap, self._sum_groups)
        added = contributions[:, sums] * _factors(anchor[idx] - t, self._sum_groups)
        block[:, sums] += np.add.reduceat(added, starts, axis=0)
        if self.is_last.any():
            block[:, self.is_last] = np.maximum(block[:, self.is_last],
                                                np.maximum.reduceat(contributions[:, self.is_last], starts, axis=0))
        self.values[touched] = block
        self.anchor[touched] = anchor

    def read(self, rows: np.ndarray, t: float) -> np.ndarray:
        """Values at time t; rows < 0 (unknown keys) read as no events: 0, and NaN for last times.
        Only the known rows are decayed: a user has touched few of the page's items, brands and
        categories, so most keyed reads are mostly unknown rows."""
        n = len(rows)
        if n == 1:  # a request's own row (user, session, collection): scalar steps, no masks
            return self._read_one(int(rows[0]), t)
        known = np.flatnonzero(rows >= 0) if self.rows else np.zeros(0, dtype=np.int64)
        if len(known) == n:
            return self._at(self.values[rows], self.anchor[rows], t)
        out = np.broadcast_to(self.absent, (n, len(self.rates))).copy()
        out[known] = self._at(self.values[rows[known]], self.anchor[rows[known]], t)
        return out

    def read_range(self, lo: int, hi: int, t: float) -> np.ndarray:
        """Values at time t of the rows lo..hi-1 (all stored rows: no unknown-key handling)."""
        return self._at(self.values[lo:hi].copy(), self.anchor[lo:hi], t)

    def _read_one(self, row: int, t: float) -> np.ndarray:
        if row < 0 or self.rows == 0:  # an unknown key (or an empty table) reads as no events
            return self._absent_row.copy()
        if row >= self.rows:
            raise IndexError(f"row {row} of a table of {self.rows} rows")
        return self.read_range(row, row + 1, t)

    def _at(self, values: np.ndarray, anchor: np.ndarray, t: float) -> np.ndarray:
        """Stored rows (a copy, changed in place) with their anchors, as of time t: decayed sums
        multiplied by exp(-(t - anchor) * rate), last times never set read as NaN."""
        if len(self.decay_rates) and len(values):
            gap = t - anchor
            gap[~np.isfinite(gap)] = 0.0
            factors = _factors(gap, self._decayed_groups)
            if self._all_decay:
                values *= factors
            else:
                values[:, self.decays] *= factors
        if self._has_last and len(values):
            last = values[:, self.is_last]
            last[np.isinf(last)] = np.nan
            values[:, self.is_last] = last
        return values

    @cached_property
    def absent(self) -> np.ndarray:
        """(counters,) what a key without events reads as: 0 for sums, NaN for last times."""
        return np.where(self.is_last, np.nan, 0.0)

    @property
    def _absent_row(self) -> np.ndarray:
        return self.absent[None, :]

    @cached_property
    def _sum_groups(self) -> RateGroups:
        """The rates of the sum columns (decayed or not): what `add` decays."""
        return _rate_groups(self.rates[~self.is_last])

    @cached_property
    def _decayed_groups(self) -> RateGroups:
        """The rates of the decayed columns: what a read decays."""
        return _rate_groups(self.decay_rates)

    @cached_property
    def _all_decay(self) -> bool:
        return bool(self.decays.all())

    @cached_property
    def _has_last(self) -> bool:
        return bool(self.is_last.any())


class KeyedCounters:
    """A CounterTable addressed by integer keys kept sorted: small, per user."""

    def __init__(self, counters: Sequence[Counter]) -> None:
        self.keys = np.empty(0, dtype=np.int64)
        self.table = CounterTable(counters)

    def rows_of(self, keys: np.ndarray) -> np.ndarray:
        if len(self.keys) == 0:
            return np.full(len(keys), -1)
        pos = np.minimum(np.searchsorted(self.keys, keys), len(self.keys) - 1)
        return np.where(self.keys[pos] == keys, pos, -1)

    def rows_of_user(self, user: int, codes: np.ndarray) -> np.ndarray:
        """Rows of the keys (user, code), -1 where absent or code < 0. A user's keys are contiguous
        (user << 32 | code), so two searches find the user's slice and the codes are looked up in
        it: a few cache-friendly steps instead of a binary search of millions of keys per code."""
        out = np.full(len(codes), -1, dtype=np.int64)
        lo, hi = self._slice_of(user)
        if hi == lo or len(codes) == 0:
            return out
        mine = self.keys[lo:hi] - (np.int64(user) << 32)  # this user's codes, sorted
        pos = np.minimum(np.searchsorted(mine, codes), hi - lo - 1)
        hit = (codes >= 0) & (mine[pos] == codes)
        out[hit] = lo + pos[hit]
        return out

    def user_view(self, user: int, t: float) -> KeyedView:
        """One user's rows, decayed to t once: a request then looks up many codes in them with one
        small binary search, instead of searching and decaying the table on every read."""
        lo, hi = self._slice_of(user)
        return KeyedView(self.keys[lo:hi] - (np.int64(user) << 32), self.table.read_range(lo, hi, t), self.table)

    def _slice_of(self, user: int) -> tuple[int, int]:
        """The rows lo..hi-1 holding the user's keys (empty for an unknown user)."""
        if user < 0 or len(self.keys) == 0:
            return 0, 0
        base = np.int64(user) << 32
        lo, hi = self.keys.searchsorted(np.array([base, base + (np.int64(1) << 32)])).tolist()
        return lo, hi

    def add(self, keys: np.ndarray, t: np.ndarray, contributions: np.ndarray) -> None:
        # self.keys is sorted and unique: a binary search, not numpy's set routines (which hash
        # the millions of stored keys again on every batch).
        new = unique_sorted(keys[~in_sorted(keys, self.keys)])
        if len(new):
            at = np.searchsorted(self.keys, new)
            self.keys = np.insert(self.keys, at, new)
            self.table.insert(at)
        self.table.add(np.searchsorted(self.keys, keys), t, contributions)

    def read(self, keys: np.ndarray, t: float) -> np.ndarray:
        return self.table.read(self.rows_of(keys), t)


class KeyedView:
    """A user's slice of a keyed table at one time: sorted codes and their values (read at t)."""

    def __init__(self, codes: np.ndarray, values: np.ndarray, table: CounterTable) -> None:
        self.codes = codes
        self.values = values
        self.absent = table.absent  # what an absent key reads as: 0 for sums, NaN for last times

    def read(self, codes: np.ndarray) -> np.ndarray:
        """(len(codes), counters) values of these codes (< 0 or absent: no events)."""
        if len(self.codes) == 0:
            return np.broadcast_to(self.absent, (len(codes), len(self.absent))).copy()
        pos = np.minimum(np.searchsorted(self.codes, codes), len(self.codes) - 1)
        hit = (self.codes[pos] == codes) & (codes >= 0)
        return np.where(hit[:, None], self.values[pos], self.absent)


class InMemoryFeatureState:
    """The in-process online state. ``update`` with events, ``get`` a feature matrix."""

    def __init__(self, space: FeatureSpace, items: pa.Table, users: pa.Table | None = None,
                 collections: pa.Table | None = None) -> None:
        self.space = space
        self.counters = space.counters
        self._load_catalog(items)
        self._load_users(users)
        self._load_collections(collections)
        self.items = CounterTable(self.counters.get("item", ()), rows=len(self.item_ids))
        # Users get a dense code in arrival order; user-keyed counters are tables addressed by it.
        self.user_codes: dict[str, int] = {}
        self.user_totals = CounterTable(self.counters.get("user", ()))
        # user x (vertical | category | brand | item): one table per stream, keyed by
        # (user code << 32) | attribute code, kept sorted so a request finds its rows by binary search.
        self.user_keyed = {s: KeyedCounters(cs) for s, cs in self.counters.items()
                           if s not in ("user", "item", "session", "collection")}
        # Collections are not a fixed catalog (generated ones appear in events): codes like users.
        self.collection_codes: dict[str, int] = {}
        self.collection_totals = CounterTable(self.counters.get("collection", ()))
        # The session stream keeps only each user's current session.
        self.current_session = np.empty(0, dtype=object)  # object: session ids of any length
        self.sessions = CounterTable(self.counters.get("session", ()))
        self._load_item_vectors()

    # --- catalog and profiles ---------------------------------------------------------

    def _load_catalog(self, items: pa.Table) -> None:
        order = np.argsort(_strings(items.column("item_id")), kind="stable")
        items = items.take(pa.array(order))
        self.item_ids = _strings(items.column("item_id"))
        self._item_value_set = pa.array(self.item_ids, type=pa.string())
        n = len(self.item_ids)
        # Item attributes as integer codes (-1: missing) for the user x attribute streams.
        self.attribute_codes: dict[str, np.ndarray] = {}
        for attr in ("vertical", "category_id", "brand"):
            raw = _strings(items.column(attr))
            uniques, codes = np.unique(raw, return_inverse=True)
            self.attribute_codes[attr] = np.where(raw == "", -1, codes).astype(np.int64)
        # The same codes as one (items, 3) matrix: a request reads an item's three in one gather.
        self._code_columns = {attr: j for j, attr in enumerate(self.attribute_codes)}
        self._attribute_code_matrix = np.column_stack(list(self.attribute_codes.values()))
        price = items.column("price").to_numpy(zero_copy_only=False).astype(np.float64)
        self.catalog_price = price
        with np.errstate(divide="ignore", invalid="ignore"):
            self.log_price = np.where(price > 0, np.log(price), np.nan)
        self.category_median_price = _group_median(self.attribute_codes["category_id"], price)
        has_url = pc.not_equal(pc.fill_null(items.column("image_url"), ""), "")
        self.has_image = _floats(pc.coalesce(items.column("has_image"), has_url))
        self.created_t = _timestamps(items.column("created_at"))
        in_stock = pc.coalesce(items.column("in_stock"), pc.greater(items.column("stock_quantity"), 0),
                               pa.scalar(True))
        self.catalog_in_stock = _floats(in_stock)
        self.price_t = np.full(n, -np.inf)
        self.stock_t = np.full(n, -np.inf)
        # The per-item attributes a request reads, as columns of one matrix (one gather per read);
        # the names below are views of its columns, so updates write into it.
        self._item_attributes = np.column_stack([
            np.full(n, np.nan),  # price_now: the latest inventory price, NaN until one arrives
            self.catalog_price, np.full(n, np.nan), self.catalog_in_stock, self.category_median_price,
            self.has_image, self.created_t,
        ]).astype(np.float64)
        (self.price_now, self.catalog_price, self.stock_now, self.catalog_in_stock, self.category_median_price,
         self.has_image, self.created_t) = self._item_attributes.T

    def _load_item_vectors(self) -> None:
        """Taste vectors per user code (one table per TasteVector), from the space's item embeddings.

        Each is a CounterTable with one decayed column per embedding dimension: the running
        vector v <- v * exp(-rate * dt) + w * vector(item), exact at any later time.
        """
        self.tastes = self.space.tastes
        vectors = self.space.item_vectors
        dim = vectors.dim if vectors is not None else 1
        # Catalog index -> embedding row (-1: no vector), so events and requests need no string lookups.
        self.vector_rows = (vectors.rows_of(self.item_ids) if vectors is not None
                            else np.full(len(self.item_ids), -1, dtype=np.int64))
        catalog_vectors = (vectors.at_rows(self.vector_rows) if vectors is not None
                           else np.zeros((len(self.item_ids), 1)))
        # Kept in float32 when that loses nothing (embeddings are fitted in float32): a request reads a
        # few hundred random rows of it, and half the bytes is half the cache misses; reads convert
        # back to float64, exactly.
        as_float32 = catalog_vectors.astype(np.float32)
        self.catalog_vectors = as_float32 if np.array_equal(as_float32, catalog_vectors) else catalog_vectors
        self.taste_tables = {taste.name: CounterTable((), rates=np.full(dim, taste.decay_rate))
                             for taste in self.tastes}

    def _load_users(self, users: pa.Table | None) -> None:
        self.profiles: dict[str, tuple[str, str]] = {}
        if users is None:
            return
        ids = _strings(users.column("user_id"))
        loc = _strings(users.column("location"))
        sub = _strings(users.column("subscription"))
        self.profiles = {u: (lo, s) for u, lo, s in zip(ids, loc, sub, strict=True)}

    def _load_collections(self, collections: pa.Table | None) -> None:
        self.collection_profiles: dict[str, tuple[str, float]] = {}
        if collections is None:
            return
        ids = _strings(collections.column("collection_id"))
        source = _strings(collections.column("source"))
        size = _floats(pc.list_value_length(collections.column("item_ids")))
        self.collection_profiles = {c: (s, n) for c, s, n in zip(ids, source, size, strict=True)}

    def item_index(self, item_ids: Sequence[str] | np.ndarray) -> np.ndarray:
        """Catalog index of each id, -1 for unknown ids; a binary search, vectorized."""
        ids = np.asarray(item_ids, dtype=str)
        if len(self.item_ids) == 0 or len(ids) == 0:
            return np.full(len(ids), -1)
        pos = np.minimum(np.searchsorted(self.item_ids, ids), len(self.item_ids) - 1)
        return np.where(self.item_ids[pos] == ids, pos, -1)

    # --- updates ----------------------------------------------------------------------

    def update(self, events: pa.Table) -> None:
        """Apply a batch of events (the events contract's columns), vectorized over the batch."""
        if events.num_rows == 0:
            return
        ev = self._event_arrays(events)
        if "item" in self.counters:
            self._add(self.items, self.counters["item"], ev, ev["item"])
        if "user" in self.counters:
            self._add(self.user_totals, self.counters["user"], ev, ev["user_code"])
        if "collection" in self.counters:
            self._add(self.collection_totals, self.counters["collection"], ev, ev["collection_code"])
        for stream, keyed in self.user_keyed.items():
            code = self._stream_code(stream, ev)
            key = np.where(code >= 0, (ev["user_code"] << 32) | np.maximum(code, 0), -1)
            self._add(keyed, keyed.table.counters, ev, key)
        session_key = self._update_sessions(ev) if "session" in self.counters or self.tastes else None
        if self.tastes:
            self._update_tastes(ev, session_key)

    def _update_tastes(self, ev: Mapping[str, np.ndarray], session_key: np.ndarray) -> None:
        item = ev["item"]
        known = (item >= 0) & (ev["user_code"] >= 0)
        has_vector = known & (self.vector_rows[np.where(known, item, 0)] >= 0)
        for taste in self.tastes:
            weight = np.zeros(len(item))
            for event_type, w in taste.weights:
                weight[ev["type"] == EVENT_TYPES.index(event_type)] = w
            key = ev["user_code"] if taste.stream == "user" else session_key
            keep = has_vector & (weight > 0) & (key >= 0)
            if keep.any():
                contributions = weight[keep, None] * self.catalog_vectors[item[keep]].astype(np.float64)
                self.taste_tables[taste.name].add(key[keep], ev["t"][keep], contributions)

    def _add(self, table: CounterTable | KeyedCounters, counters: Sequence[Counter],
             ev: Mapping[str, np.ndarray], key: np.ndarray) -> None:
        keep = (key >= 0) & _matches(counters, ev)
        if keep.any():
            table.add(key[keep], ev["t"][keep], self._contributions(counters, ev, keep))

    def _stream_code(self, stream: str, ev: Mapping[str, np.ndarray]) -> np.ndarray:
        """The second key of a user x something stream, as an integer code (-1: none)."""
        if stream == "user_item":
            return ev["item"]
        if stream == "user_collection":
            return ev["collection_code"]
        return ev[STREAM_ITEM_ATTRIBUTE[stream]]

    def _user_code(self, users: pa.ChunkedArray) -> np.ndarray:
        codes = _dense_codes(users, self.user_codes)
        n = len(self.user_codes)
        self.user_totals.grow(n)
        self.sessions.grow(n)
        for table in self.taste_tables.values():
            table.grow(n)
        if n > len(self.current_session):
            extra = np.full(n - len(self.current_session), "", dtype=object)
            self.current_session = np.concatenate([self.current_session, extra])
        return codes

    def _update_sessions(self, ev: Mapping[str, np.ndarray]) -> np.ndarray:
        """A user's current session is the session of their newest event; a new one starts from zero.

        Returns each event's session-state key: its user code if it is in the user's current
        session, else -1."""
        order = np.lexsort((ev["t"], ev["user_code"]))
        users = ev["user_code"][order]
        last = np.r_[users[1:] != users[:-1], True]
        newest_users, newest_sessions = users[last], ev["session"][order][last]
        changed = self.current_session[newest_users] != newest_sessions
        self.current_session[newest_users[changed]] = newest_sessions[changed]
        self.sessions.reset(newest_users[changed])
        for taste in self.tastes:
            if taste.stream == "session":
                self.taste_tables[taste.name].reset(newest_users[changed])
        current = self.current_session[ev["user_code"]]
        key = np.where(ev["session"] == current, ev["user_code"], -1)
        if "session" in self.counters:
            self._add(self.sessions, self.counters["session"], ev, key)
        return key

    def update_inventory(self, inventory: pa.Table) -> None:
        """Apply inventory / price updates (the inventory contract's columns)."""
        idx = self.item_index(_strings(inventory.column("item_id")))
        t = _timestamps(inventory.column("ts"))
        price = _floats(inventory.column("price"))
        stock = _floats(pc.coalesce(inventory.column("in_stock"), pc.greater(inventory.column("quantity"), 0)))
        for value, now, when in ((price, self.price_now, self.price_t), (stock, self.stock_now, self.stock_t)):
            ok = (idx >= 0) & ~np.isnan(value)
            i, ti, v = idx[ok], t[ok], value[ok]
            # Per item, the newest update (ties at the same time: the larger value, as offline's max()).
            order = np.lexsort((v, ti, i))
            i, ti, v = i[order], ti[order], v[order]
            last = np.r_[i[1:] != i[:-1], True] if len(i) else np.zeros(0, dtype=bool)
            i, ti, v = i[last], ti[last], v[last]
            newer = (ti > when[i]) | ((ti == when[i]) & (v > now[i]))
            now[i[newer]], when[i[newer]] = v[newer], ti[newer]

    def _event_arrays(self, events: pa.Table) -> dict[str, np.ndarray]:
        n = events.num_rows
        for name in ("item_id", "session_id", "collection_id"):  # optional in a batch: absent = null
            if name not in events.column_names:
                events = events.append_column(name, pa.nulls(n, pa.string()))
        item = self._item_rows_of(events.column("item_id"))
        known = item >= 0

        def int_column(name: str) -> np.ndarray:
            if name not in events.column_names:
                return np.zeros(n, dtype=np.int64)
            return pc.fill_null(events.column(name), 0).to_numpy(zero_copy_only=False).astype(np.int64)

        ev = {
            "user_code": self._user_code(events.column("user_id")),
            "collection_code": _dense_codes(events.column("collection_id"), self.collection_codes),
            "t": _timestamps(events.column("ts")),
            "type": _index_in(events.column("event_type"), _EVENT_TYPE_SET),
            "session": pc.fill_null(events.column("session_id"), "").to_numpy(zero_copy_only=False),
            "item": item,
            "exam": examination_weight(self.space.examination_curve, int_column("row"), int_column("position")),
            "log_price": np.where(known, np.nan_to_num(self.log_price[np.where(known, item, 0)]), 0.0),
        }
        self.collection_totals.grow(len(self.collection_codes))
        for attr, codes in self.attribute_codes.items():
            ev[attr] = np.where(known, codes[np.where(known, item, 0)], -1)
        return ev

    def _item_rows_of(self, column: pa.ChunkedArray | pa.Array) -> np.ndarray:
        """Catalog row of each event's item, -1 for null or unknown ids. A big batch (start-up
        replay) uses Arrow's hash lookup against the catalog; a small one (a POST of events) looks
        its few distinct ids up by binary search, because Arrow builds its hash table of the
        whole catalog on every call (~50 ms at 500,000 items, most of a small batch's cost)."""
        if len(column) > SMALL_BATCH_ROWS:
            return _index_in(column, self._item_value_set)
        if isinstance(column, pa.ChunkedArray):
            column = column.combine_chunks()
        encoded = pc.dictionary_encode(pc.fill_null(column, ""))
        distinct = np.asarray(encoded.dictionary.to_pylist(), dtype=str)
        rows = np.where(distinct != "", self.item_index(distinct), -1) if len(distinct) else np.zeros(0, np.int64)
        return rows[encoded.indices.to_numpy(zero_copy_only=False)].astype(np.int64)

    def _contributions(self, counters: Sequence[Counter], ev: Mapping[str, np.ndarray],
                       keep: np.ndarray) -> np.ndarray:
        types = ev["type"][keep]
        out = np.zeros((len(types), len(counters)))
        for j, c in enumerate(counters):
            match = _of_types(types, c.event_types)
            if c.aggregate == "last_time":
                out[:, j] = np.where(match, ev["t"][keep], -np.inf)
            else:
                weight = {"one": 1.0, "examination": ev["exam"][keep], "log_price": ev["log_price"][keep]}[c.weight]
                out[:, j] = np.where(match, weight, 0.0)
        return out

    # --- reads ------------------------------------------------------------------------

    def get(self, user_id: str, item_ids: Sequence[str] | np.ndarray, ts: datetime | float,
            context: Mapping[str, str | None] | None = None) -> np.ndarray:
        """The feature matrix for one user and many items at ts: rows = items, columns = features."""
        return self.space.matrix(self.inputs(user_id, item_ids, ts, context), rows=len(item_ids))

    def inputs(self, user_id: str, item_ids: Sequence[str] | np.ndarray, ts: datetime | float,
               context: Mapping[str, str | None] | None = None) -> dict[str, np.ndarray]:
        return self.inputs_at(user_id, self.item_index(item_ids), ts, context)

    def inputs_at(self, user_id: str, item: np.ndarray, ts: datetime | float,
                  context: Mapping[str, str | None] | None = None) -> dict[str, np.ndarray]:
        """The formulas' inputs for items given by their rows (-1 unknown): the request's own
        (user, session, context, collection: length-1 arrays) and the per-item ones."""
        return {**self.request_inputs(user_id, ts, context), **self.item_inputs(user_id, item, ts)}

    def request_inputs(self, user_id: str, ts: datetime | float,
                       context: Mapping[str, str | None] | None = None) -> dict[str, np.ndarray]:
        """The inputs that do not depend on the item, as length-1 arrays the formulas broadcast: read
        once per request however many items are scored."""
        context = context or {}
        t = seconds(ts)
        code = self.user_codes.get(user_id, -1)
        session_id = str(context.get("session_id") or "")
        collection = self.collection_codes.get(str(context.get("collection_id") or ""), -1)
        inputs: dict[str, np.ndarray] = {}
        for stream, counters in self.counters.items():
            if stream in PER_ITEM_STREAMS:
                continue
            values = self._read_request_stream(stream, code, t, session_id, collection)
            for j, c in enumerate(counters):
                inputs[c.name] = values[:, j]
        location, subscription = self.profiles.get(user_id, ("", ""))
        source, size = self.collection_profiles.get(str(context.get("collection_id") or ""), ("", np.nan))
        inputs.update({
            "context.t": np.array([t]),
            "context.surface": np.array([str(context.get("surface") or "")]),
            "context.location": np.array([str(context.get("location") or "")]),
            "user.location": np.array([location]),
            "user.subscription": np.array([subscription]),
            "collection.source": np.array([source]),
            "collection.size": np.array([size]),
        })
        for taste in self.tastes:
            row = code
            if taste.stream == "session" and not self._in_current_session(code, session_id):
                row = -1
            inputs[taste.name] = self.taste_tables[taste.name].read(np.array([row]), t)
        return inputs

    def user_views(self, user_id: str, ts: datetime | float) -> dict[str, KeyedView]:
        """The user's rows of the per-item keyed streams (user x item / category / brand / vertical),
        read at ts: what `item_inputs` looks items up in. A request that reads items in several
        batches makes these once."""
        t = seconds(ts)
        code = self.user_codes.get(user_id, -1)
        return {stream: keyed.user_view(code, t) for stream, keyed in self.user_keyed.items()
                if stream in PER_ITEM_STREAMS}

    def item_inputs(self, user_id: str, item: np.ndarray, ts: datetime | float,
                    views: Mapping[str, KeyedView] | None = None) -> dict[str, np.ndarray]:
        """The inputs that depend on the item (rows in this state's catalog, -1 unknown): the item's
        counters and attributes and the user's counters keyed by the item or its attributes.
        `views`: this user's `user_views` at ts, when the caller keeps them between batches."""
        t = seconds(ts)
        item = np.asarray(item, dtype=np.int64)
        known = item >= 0
        safe = np.where(known, item, 0)
        if views is None:
            views = self.user_views(user_id, t)
        inputs: dict[str, np.ndarray] = {}
        codes = None
        for stream, counters in self.counters.items():
            if stream not in PER_ITEM_STREAMS:
                continue
            if stream == "item":
                values = self.items.read(item, t)
            elif stream == "user_item":
                values = views[stream].read(item)
            else:
                if codes is None:  # the items' vertical, category and brand codes, in one gather
                    codes = self._attribute_code_matrix[safe]
                    codes[~known] = -1
                values = views[stream].read(codes[:, self._code_columns[STREAM_ITEM_ATTRIBUTE[stream]]])
            for j, c in enumerate(counters):
                inputs[c.name] = values[:, j]

        all_known = bool(known.all())

        attributes = self._item_attributes[item] if all_known \
            else np.where(known[:, None], self._item_attributes[safe], np.nan)
        price_now, catalog_price, stock_now, catalog_stock, median_price, has_image, created_t = attributes.T
        # The latest inventory update if there was one, else the catalog (only the requested rows).
        inputs.update({
            "item.price": np.where(np.isnan(price_now), catalog_price, price_now),
            "item.category_median_price": median_price,
            "item.has_image": has_image,
            "item.created_t": created_t,
            "item.in_stock": np.where(np.isnan(stock_now), catalog_stock, stock_now),
        })
        if self.tastes:
            inputs[ITEM_VECTOR] = (self.catalog_vectors[item] if all_known
                                   else np.where(known[:, None], self.catalog_vectors[safe], 0.0)
                                   ).astype(np.float64, copy=False)
        return inputs

    def collection_inputs(self, user_id: str, collection_ids: Sequence[str],
                          ts: datetime | float) -> dict[str, np.ndarray]:
        """The inputs that depend on the collection, for many collections at once (one entry per
        collection): the collection's counters, the user's counters on it, its source and size;
        plus the user's own counters and the time, which collection formulas combine with them."""
        t = seconds(ts)
        codes = np.asarray([self.collection_codes.get(c, -1) for c in collection_ids], dtype=np.int64)
        user = self.user_codes.get(user_id, -1)
        inputs: dict[str, np.ndarray] = {"context.t": np.array([t])}
        if "collection" in self.counters:
            values = self.collection_totals.read(codes, t)
            for j, c in enumerate(self.counters["collection"]):
                inputs[c.name] = values[:, j]
        if "user_collection" in self.user_keyed:
            keyed = self.user_keyed["user_collection"]
            values = keyed.table.read(keyed.rows_of_user(user, codes), t)
            for j, c in enumerate(keyed.table.counters):
                inputs[c.name] = values[:, j]
        if "user" in self.counters:
            values = self.user_totals.read(np.array([user]), t)
            for j, c in enumerate(self.counters["user"]):
                inputs[c.name] = values[:, j]
        profiles = [self.collection_profiles.get(c, ("", np.nan)) for c in collection_ids]
        inputs["collection.source"] = np.asarray([p[0] for p in profiles], dtype=object)
        inputs["collection.size"] = np.asarray([p[1] for p in profiles], dtype=np.float64)
        return inputs

    def _in_current_session(self, user: int, session_id: str) -> bool:
        return user >= 0 and session_id != "" and self.current_session[user] == session_id

    def _read_request_stream(self, stream: str, user: int, t: float, session_id: str, collection: int) -> np.ndarray:
        """One row of a stream read once per request (user, session, collection, user x collection)."""
        if stream == "user":  # the same for every item: one row, broadcast by the formulas
            return self.user_totals.read(np.array([user]), t)
        if stream == "session":
            return self.sessions.read(np.array([user if self._in_current_session(user, session_id) else -1]), t)
        if stream == "collection":
            return self.collection_totals.read(np.array([collection]), t)
        keyed = self.user_keyed[stream]  # user x collection
        return keyed.table.read(keyed.rows_of_user(user, np.array([collection])), t)


def _group_median(groups: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Each row's median of `values` over the rows of its group (as DuckDB's median: mean of the middle two)."""
    out = np.full(len(values), np.nan)
    if len(values) == 0:
        return out
    order = np.lexsort((values, groups))
    g, v = groups[order], values[order]
    starts = np.flatnonzero(np.r_[True, g[1:] != g[:-1]])
    sizes = np.diff(np.r_[starts, len(g)])
    lower = v[starts + (sizes - 1) // 2]
    upper = v[starts + sizes // 2]
    medians = (lower + upper) / 2.0
    out[order] = np.repeat(medians, sizes)
    return out


def _matches(counters: Sequence[Counter], ev: Mapping[str, np.ndarray]) -> np.ndarray:
    return _of_types(ev["type"], tuple(e for c in counters for e in c.event_types))


_EVENT_TYPE_SET = pa.array(EVENT_TYPES)


def _type_codes(event_types: tuple[str, ...]) -> np.ndarray:
    return np.array([EVENT_TYPES.index(e) for e in set(event_types)], dtype=np.int64)


def _of_types(types: np.ndarray, event_types: tuple[str, ...]) -> np.ndarray:
    """Which events (codes into EVENT_TYPES, -1 unknown) are of the given types: a lookup table,
    one gather (np.isin sorts a million codes per call)."""
    table = np.zeros(len(EVENT_TYPES) + 1, dtype=bool)  # the last slot answers code -1
    table[_type_codes(event_types)] = True
    return table[types]


def _index_in(column: pa.ChunkedArray | pa.Array, value_set: pa.Array) -> np.ndarray:
    """Position of each value in value_set, -1 for missing values and values not in it."""
    return pc.fill_null(pc.index_in(column, value_set=value_set), -1).to_numpy(zero_copy_only=False).astype(np.int64)


def _dense_codes(column: pa.ChunkedArray | pa.Array, codes: dict[str, int]) -> np.ndarray:
    """Codes from a growing dict (new values get the next code), -1 for null or empty; one dict
    lookup per distinct value of the batch."""
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    encoded = pc.dictionary_encode(pc.fill_null(column, ""))
    values = encoded.dictionary.to_pylist()
    lookup = np.fromiter((-1 if v == "" else codes.setdefault(v, len(codes)) for v in values), dtype=np.int64,
                         count=len(values))
    return lookup[encoded.indices.to_numpy(zero_copy_only=False)]
