"""How replicas share the online state: a change feed with two implementations.

Each replica keeps the whole online state in memory (the engine). What makes replicas agree
is that they apply the same changes: every change a replica accepts is published to a feed,
and before it builds a page a replica pulls and applies every change it has not applied yet.
With the Redis stream this gives read-your-writes across replicas: a write acknowledged by
one replica is in the stream before its 2xx, so the next page from any replica reflects it.

- :class:`LocalChangeFeed` (default, ``serve.redis_url`` unset): one process, nothing to share.
- :class:`RedisChangeFeed`: one Redis stream (``XADD`` / ``XREAD``); a replica skips its own
  entries (applied when accepted) and, at startup, reads the stream from the beginning, so a
  new or restarted replica catches up on what the others accepted.
"""

from __future__ import annotations

import threading
from typing import Protocol

from shelfrank.serve.changes import Change

DEFAULT_STREAM = "shelfrank:changes"


class ChangeFeed(Protocol):
    def publish(self, change: Change) -> None:
        """Share a change this replica accepted (before the client gets its 2xx)."""

    def pull(self) -> list[Change]:
        """Changes from other replicas not yet returned, oldest first."""

    def close(self) -> None: ...


class LocalChangeFeed:
    """A single process: nothing to publish, nothing to pull."""

    def publish(self, change: Change) -> None:
        return None

    def pull(self) -> list[Change]:
        return []

    def close(self) -> None:
        return None


class RedisChangeFeed:
    """A Redis stream shared by all replicas; entries are {origin, change}."""

    def __init__(self, url: str, replica_id: str, stream: str = DEFAULT_STREAM, batch: int = 5_000,
                 maxlen: int | None = None) -> None:
        import redis

        self.client = redis.Redis.from_url(url, socket_timeout=2.0, socket_connect_timeout=2.0)
        self.replica_id = replica_id
        self.stream = stream
        self.batch = batch
        self.maxlen = maxlen
        self.last_id = "0-0"
        self._lock = threading.Lock()

    def ping(self) -> None:
        self.client.ping()

    def publish(self, change: Change) -> None:
        self.client.xadd(self.stream, {"origin": self.replica_id, "change": change.to_json()},
                         maxlen=self.maxlen, approximate=True)

    def pull(self) -> list[Change]:
        out: list[Change] = []
        with self._lock:
            while True:
                reply = self.client.xread({self.stream: self.last_id}, count=self.batch)
                if not reply:
                    return out
                entries = reply[0][1]
                for entry_id, fields in entries:
                    self.last_id = entry_id.decode() if isinstance(entry_id, bytes) else entry_id
                    origin = fields.get(b"origin", b"").decode()
                    if origin == self.replica_id:
                        continue
                    out.append(Change.from_json(fields[b"change"]))
                if len(entries) < self.batch:
                    return out

    def close(self) -> None:
        self.client.close()
