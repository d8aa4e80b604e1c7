"""Online user history and trending: the state the rules collection sources read at request time.

Two things are kept, both updated from batches of events (the EVENTS contract's columns):

* per user, the last ``max_events_per_user`` engagement events (click, add to cart, purchase) as
  a :class:`UserHistory`, oldest first. Impressions and searches are dropped: too many, and not
  engagement. The per-user arrays are replaced on update, never mutated, so a history handed to
  a request stays valid while later events arrive.
* trending: per location and globally, a decayed funnel-weighted engagement sum per item
  (click 1, cart 3, purchase 10; half-life one day by default). Sums are stored as of one anchor
  time (the newest event seen), so adding an event and reading at any later time are exact and
  O(1) per item; when the anchor moves forward every sum is scaled down once.

A Redis-backed state will implement the same three methods (:class:`HistoryState`).

Semantics: ``history`` and ``trending`` reflect every event passed to ``update`` so far, which
should be the events before the request (``from_store`` replays the log before ``as_of``).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.store.catalog import Catalog

# Event codes kept in a user's history (impressions are not kept: too many, and not engagement).
CLICK, ADD_TO_CART, PURCHASE = 1, 2, 3
HISTORY_EVENT_CODES = {"click": CLICK, "add_to_cart": ADD_TO_CART, "purchase": PURCHASE}


@dataclass(frozen=True)
class UserHistory:
    """A user's engagement before the request, oldest first (catalog indices, event codes, seconds)."""

    items: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int64))
    events: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.int8))
    ts: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=np.float64))
    sessions: np.ndarray = field(default_factory=lambda: np.zeros(0, dtype=object))

    def __post_init__(self) -> None:
        n = len(self.items)
        if not (len(self.events) == len(self.ts) == len(self.sessions) == n):
            raise ValueError("history arrays differ in length")

    def __len__(self) -> int:
        return len(self.items)

    def before(self, t: float) -> UserHistory:
        keep = self.ts < t
        return UserHistory(self.items[keep], self.events[keep], self.ts[keep], self.sessions[keep])

    def of_session(self, session_id: str | None) -> UserHistory:
        keep = self.sessions == session_id if session_id else np.zeros(len(self), dtype=bool)
        return UserHistory(self.items[keep], self.events[keep], self.ts[keep], self.sessions[keep])


TRENDING_WEIGHTS: Mapping[int, float] = {CLICK: 1.0, ADD_TO_CART: 3.0, PURCHASE: 10.0}
_DAY = 86_400.0


class HistoryState(Protocol):
    """What the rules sources need from the online engagement state, whatever holds it."""

    def update(self, events: pa.Table) -> None: ...

    def history(self, user_id: str) -> UserHistory: ...

    def trending(self, location: str | None, t: float, k: int) -> tuple[np.ndarray, np.ndarray]: ...


def _frozen(array: np.ndarray) -> np.ndarray:
    array.flags.writeable = False
    return array


def _codes_of(column: pa.ChunkedArray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values, code per row) with nulls as "" (dictionary encoding runs in Arrow, not Python)."""
    encoded = pc.dictionary_encode(pc.fill_null(column, "")).combine_chunks()
    values = np.asarray(encoded.dictionary.to_pylist(), dtype=object)
    return values, encoded.indices.to_numpy(zero_copy_only=False).astype(np.int64)


class InMemoryUserHistory:
    """Bounded per-user engagement histories and per-location trending, in process memory.

    ``max_users`` (optional) bounds memory too: the least recently updated users are dropped.
    """

    def __init__(self, catalog: Catalog, max_events_per_user: int = 200, half_life_days: float = 1.0,
                 max_users: int | None = None) -> None:
        if max_events_per_user < 1:
            raise ValueError(f"max_events_per_user must be >= 1, got {max_events_per_user}")
        if half_life_days <= 0:
            raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
        self.catalog = catalog
        self.max_events_per_user = max_events_per_user
        self.half_life_days = half_life_days
        self.max_users = max_users
        self._rate = np.log(2.0) / (half_life_days * _DAY)
        self._users: dict[str, UserHistory] = {}
        self._locations: dict[str, int] = {"": 0}  # row 0 is global: every event adds to it
        self._trend = np.zeros((1, len(catalog)))
        self._top_cache: dict[int, tuple[int, np.ndarray, np.ndarray]] = {}  # location row -> (k, items, scores)
        self._anchor = -np.inf  # the newest engagement seen
        self._ref = -np.inf  # the time the stored trending scores are expressed at

    def __len__(self) -> int:
        return len(self._users)

    @classmethod
    def from_store(cls, con: duckdb.DuckDBPyConnection, catalog: Catalog, as_of: datetime | None = None,
                   **kwargs: float | int | None) -> InMemoryUserHistory:
        """The state after replaying the store's engagement events before `as_of` (default: all).

        DuckDB filters and orders the events; one vectorized ``update`` ingests them.
        """
        state = cls(catalog, **kwargs)  # type: ignore[arg-type]
        types = ", ".join(f"'{name}'" for name in HISTORY_EVENT_CODES)
        cutoff = "" if as_of is None else "AND ts < $as_of::TIMESTAMPTZ"
        events = con.sql(
            f"""
            SELECT ts, user_id, session_id, event_type, item_id, location FROM events
            WHERE event_type IN ({types}) AND item_id IS NOT NULL {cutoff}
            ORDER BY user_id, ts
            """,
            params={} if as_of is None else {"as_of": as_of},
        ).to_arrow_table()
        state.update(events)
        return state

    # --- writes ---------------------------------------------------------------------------

    def update(self, events: pa.Table) -> None:
        """Ingest a batch of events (any order; impressions, searches and unknown items are skipped)."""
        self._top_cache = {}
        kinds, kind_codes = _codes_of(events.column("event_type"))
        event_of_kind = np.asarray([HISTORY_EVENT_CODES.get(k, 0) for k in kinds], dtype=np.int8)
        event = event_of_kind[kind_codes] if len(kinds) else np.zeros(0, dtype=np.int8)
        engaged = event > 0
        if not engaged.any():
            return
        events, event = events.filter(pa.array(engaged)), event[engaged]  # impressions are most rows: drop first
        item_ids, item_codes = _codes_of(events.column("item_id"))
        item = self.catalog.index_of(item_ids)[item_codes]
        known = item >= 0
        if not known.any():
            return
        if not known.all():
            events, event, item = events.filter(pa.array(known)), event[known], item[known]
        if len(self.catalog) > self._trend.shape[1]:  # items added to the catalog since the last batch
            self._trend = np.pad(self._trend, ((0, 0), (0, len(self.catalog) - self._trend.shape[1])))
        ts_us = pc.cast(pc.cast(events.column("ts"), pa.timestamp("us", tz="UTC")), pa.int64())
        ts = ts_us.to_numpy(zero_copy_only=False).astype(np.float64) / 1e6
        self._add_trending(events, item, event, ts)
        self._append_histories(events, item, event, ts)

    def _add_trending(self, events: pa.Table, item: np.ndarray, event: np.ndarray, ts: np.ndarray) -> None:
        # Scores are kept as of a reference time `_ref` (an event at ts adds w * exp((ts - ref) * rate)),
        # so a batch touches only its own cells: decaying the whole (locations x catalog) matrix to each
        # batch's newest event cost 5 ms per small batch at 500,000 items. The reference moves (one
        # rescale) only when the factors would grow past ~e^400, hundreds of half-lives later.
        newest = float(ts.max())
        if not np.isfinite(self._ref):
            self._ref = newest
        elif (newest - self._ref) * self._rate > 400.0:
            self._trend *= np.exp(-(newest - self._ref) * self._rate)
            self._ref = newest
        self._anchor = max(self._anchor, newest)
        weights = np.zeros(PURCHASE + 1)
        for code, w in TRENDING_WEIGHTS.items():
            weights[code] = w
        w = weights[event] * np.exp((ts - self._ref) * self._rate)
        if "location" in events.column_names:
            names, codes = _codes_of(events.column("location"))
            for name in names:
                if name not in self._locations:
                    self._locations[name] = len(self._locations)
            row = np.asarray([self._locations[n] for n in names], dtype=np.int64)[codes]
        else:
            row = np.zeros(len(item), dtype=np.int64)
        n_rows = len(self._locations)
        if n_rows > self._trend.shape[0]:
            self._trend = np.pad(self._trend, ((0, n_rows - self._trend.shape[0]), (0, 0)))
        local = row > 0
        np.add.at(self._trend, (row[local], item[local]), w[local])  # touches only the batch's cells
        np.add.at(self._trend[0], item, w)

    def _append_histories(self, events: pa.Table, item: np.ndarray, event: np.ndarray, ts: np.ndarray) -> None:
        users, user_codes = _codes_of(events.column("user_id"))
        user = user_codes
        sessions = np.asarray(pc.fill_null(events.column("session_id"), "").to_pylist(),
                              dtype=object)
        order = np.lexsort((ts, user))  # by user, oldest first (stable for equal times)
        user, item, event, ts, sessions = user[order], item[order], event[order], ts[order], sessions[order]
        starts = np.flatnonzero(np.r_[True, user[1:] != user[:-1]])
        ends = np.r_[starts[1:], len(user)]
        cap = self.max_events_per_user
        for start, end in zip(starts.tolist(), ends.tolist(), strict=True):  # one iteration per user, not event
            user_id = str(users[user[start]])
            start = max(start, end - cap)
            old = self._users.pop(user_id, None)  # re-inserted last: dict order = least recently updated first
            new = (item[start:end], event[start:end], ts[start:end], sessions[start:end])
            if old is not None and len(old):
                merged = [np.concatenate([a, b]) for a, b in zip((old.items, old.events, old.ts, old.sessions),
                                                                   new, strict=True)]
                if old.ts[-1] > new[2][0]:  # a late event: restore time order
                    by_time = np.argsort(merged[2], kind="stable")
                    merged = [m[by_time] for m in merged]
                new = tuple(m[-cap:] for m in merged)
            self._users[user_id] = UserHistory(*(_frozen(np.ascontiguousarray(a)) for a in new))
        if self.max_users is not None:
            while len(self._users) > self.max_users:
                del self._users[next(iter(self._users))]

    # --- reads ----------------------------------------------------------------------------

    def history(self, user_id: str) -> UserHistory:
        """The user's last engagement events, oldest first (empty for an unknown user)."""
        return self._users.get(user_id) or UserHistory()

    def trending(self, location: str | None, t: float, k: int) -> tuple[np.ndarray, np.ndarray]:
        """The k items with the highest decayed engagement at `location` (None or "": everywhere) at
        time t, best first, with their scores; only items with engagement. An unknown location has
        no trending items (callers fall back to the global list)."""
        row = self._locations.get(location or "")
        if row is None or k <= 0 or not np.isfinite(self._anchor):
            return np.zeros(0, dtype=np.int64), np.zeros(0)
        # Decay multiplies every score alike, so the order only changes with new events: the top
        # list per location is kept until the next update (a scan of the catalog is 5+ ms at 500k items).
        cached = self._top_cache.get(row)
        if cached is None or cached[0] < k:
            scores = self._trend[row]
            top = np.flatnonzero(scores > 0)
            if len(top) > k:
                top = top[np.argpartition(-scores[top], k - 1)[:k]]
            top = top[np.lexsort((top, -scores[top]))].astype(np.int64)  # best first, ties by catalog index
            cached = (k, top, scores[top].copy())
            self._top_cache[row] = cached
        _, top, values = cached
        # As of the newest engagement, decayed on to t (a t before it reads the newest state).
        decay = np.exp(-(max(t, self._anchor) - self._ref) * self._rate)
        return top[:k], values[:k] * decay
