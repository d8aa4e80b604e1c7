"""The segment cache: the deterministic part of a page, shared by requests that cannot differ.

A visitor without history (a new or anonymous user) has only default personal features, so
the candidate collections, their scored and diversified items and the page rules come out the
same for every such visitor with the same context: location, surface, page size, pipeline
and hour. The cache keeps that part (the runner's ``_Prepared``) per segment; exploration,
propensities, the request id and explanations are still drawn per request. Users with
history are never served from it: their real-time signals (this session's events) must
count.

Entries are invalidated by a version the engine bumps on every inventory, item, collection
or model change (an item set out of stock is never served from a stale entry), and by the
hour in the key (trending and popularity move). Bounded LRU.
"""

from __future__ import annotations

from collections import OrderedDict
from threading import Lock

from shelfrank.candidates.base import UserContext
from shelfrank.contracts import PageRequest


class SegmentCache:
    def __init__(self, max_entries: int = 256) -> None:
        self.max_entries = max_entries
        self.version = 0
        self.hits = 0
        self.misses = 0
        self._entries: OrderedDict[tuple, object] = OrderedDict()
        self._lock = Lock()

    def key(self, request: PageRequest, pipeline, user: UserContext) -> tuple | None:
        """The segment of a request, or None when the request must be built for its user alone."""
        if user.known or len(user.history):
            return None
        hour = int(user.t // 3_600)
        return (self.version, pipeline, user.location, request.surface, request.rows, request.items, hour,
                request.session_id is None)

    def get(self, key: tuple) -> object | None:
        with self._lock:
            value = self._entries.get(key)
            if value is None:
                self.misses += 1
                return None
            self._entries.move_to_end(key)
            self.hits += 1
            return value

    def put(self, key: tuple, value: object) -> None:
        if self.max_entries <= 0:  # max_entries=0 disables the cache
            return
        with self._lock:
            self._entries[key] = value
            self._entries.move_to_end(key)
            while len(self._entries) > self.max_entries:
                self._entries.popitem(last=False)

    def invalidate(self) -> None:
        """Everything cached so far is stale (inventory, items, collections or models changed)."""
        with self._lock:
            self.version += 1
            self._entries.clear()

    @property
    def hit_rate(self) -> float:
        total = self.hits + self.misses
        return self.hits / total if total else 0.0
