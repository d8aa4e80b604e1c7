"""The durable intake log: every accepted write, fsync'ed before the service answers 2xx.

Layout: ``<data_dir>/intake/<replica_id>/segment-00000001.jsonl``, ... One line per accepted
request, a :class:`~shelfrank.serve.changes.Change` as JSON. Appends go to the newest segment
and are followed by ``fsync``; a segment rolls over at ``serve.intake_segment_bytes``. A line
cut short by a crash (no newline, or not JSON) was never acknowledged, so it is dropped on
open and the file truncated back to its last whole line. One process owns a log at a time
(an exclusive ``flock`` on ``LOCK``).

At startup the service replays the log into the engine after the store's events (events
already in the store or earlier in the log are skipped by event_id). ``compact_intake``
moves the log into the DuckDB store through the ordinary checked ingest, then archives the
segments, so the next start replays nothing.
"""

from __future__ import annotations

import fcntl
import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pyarrow.parquet as pq

from shelfrank.contracts import EVENTS, INVENTORY, ITEMS
from shelfrank.errors import UserFacingError
from shelfrank.serve.changes import Change, merge_runs, rows_to_table

SEGMENT_PREFIX = "segment-"
SEGMENT_SUFFIX = ".jsonl"


class IntakeLockedError(UserFacingError):
    """Another process writes to this intake log."""


def intake_dir(data_dir: Path, replica_id: str) -> Path:
    return Path(data_dir) / "intake" / replica_id


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def segment_paths(directory: Path) -> list[Path]:
    if not directory.is_dir():
        return []
    return sorted(p for p in directory.iterdir()
                  if p.name.startswith(SEGMENT_PREFIX) and p.name.endswith(SEGMENT_SUFFIX))


def _segment_number(path: Path) -> int:
    return int(path.name[len(SEGMENT_PREFIX): -len(SEGMENT_SUFFIX)])


def read_segment(path: Path, repair: bool = False) -> Iterator[Change]:
    """The changes in one segment; a torn last line is skipped (and cut off when `repair`)."""
    data = path.read_bytes()
    good_end = 0
    start = 0
    while start < len(data):
        end = data.find(b"\n", start)
        if end < 0:
            break  # no newline: the write was cut short
        try:
            change = Change.from_json(data[start:end])
        except ValueError:
            break  # a torn line is only ever the last one; stop there
        good_end = end + 1
        start = end + 1
        yield change
    if repair and good_end < len(data):
        with path.open("r+b") as fh:
            fh.truncate(good_end)
            fh.flush()
            os.fsync(fh.fileno())


@dataclass
class IntakeStats:
    segments: int
    changes: int
    bytes: int


class IntakeLog:
    """Append-only, segmented, fsync'ed. Thread-safe; one owning process (flock)."""

    def __init__(self, directory: Path, segment_bytes: int = 64_000_000) -> None:
        self.directory = Path(directory)
        self.segment_bytes = segment_bytes
        self.directory.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self._lock_fd = os.open(self.directory / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(self._lock_fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(self._lock_fd)
            raise IntakeLockedError(
                f"another process writes to the intake log {self.directory}; stop it, or give this replica "
                "its own serve.replica_id"
            ) from None
        self._fd: int | None = None
        self._size = 0
        self._segment: Path | None = None
        self.appended = 0

    # --- reading --------------------------------------------------------------------------

    def replay(self) -> Iterator[Change]:
        """Every change in the log, oldest first (repairs a torn tail)."""
        for path in segment_paths(self.directory):
            yield from read_segment(path, repair=True)

    def stats(self) -> IntakeStats:
        paths = segment_paths(self.directory)
        return IntakeStats(len(paths), self.appended, sum(p.stat().st_size for p in paths))

    # --- writing --------------------------------------------------------------------------

    def _open_segment(self) -> None:
        paths = segment_paths(self.directory)
        if paths and paths[-1].stat().st_size < self.segment_bytes:
            path = paths[-1]
        else:
            number = _segment_number(paths[-1]) + 1 if paths else 1
            path = self.directory / f"{SEGMENT_PREFIX}{number:08d}{SEGMENT_SUFFIX}"
        created = not path.exists()
        self._fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        if created:
            _fsync_dir(self.directory)
        self._segment = path
        self._size = os.fstat(self._fd).st_size

    def append(self, change: Change) -> None:
        """Write one change and fsync; returns only once it is on disk."""
        line = change.to_json() + b"\n"
        with self._lock:
            if self._fd is None or self._size >= self.segment_bytes:
                self._close_segment()
                self._open_segment()
            assert self._fd is not None
            view = memoryview(line)
            while view:
                written = os.write(self._fd, view)
                view = view[written:]
            os.fsync(self._fd)
            self._size += len(line)
            self.appended += 1

    def _close_segment(self) -> None:
        if self._fd is not None:
            os.close(self._fd)
            self._fd = None

    def close(self) -> None:
        with self._lock:
            self._close_segment()
            if self._lock_fd >= 0:
                os.close(self._lock_fd)  # releases the flock
                self._lock_fd = -1

    def __enter__(self) -> IntakeLog:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


@dataclass
class CompactReport:
    segments: int
    changes: int
    accepted: dict[str, int]  # kind -> rows inserted or changed in the store
    archived_to: Path | None


def compact_intake(store, directory: Path) -> CompactReport:
    """Move every segment of the intake log at `directory` into the store (`store`: an open
    read-write ``store.database.Store``): events, inventory and items through the checked,
    idempotent ingest, collections upserted or deleted; then archive the segments under
    ``<directory>/compacted/``. Safe to run twice: ingest dedups events by event_id."""
    from shelfrank.store.ingest import ingest_file

    with IntakeLog(directory) as log:  # holds the lock: no server may write meanwhile
        paths = segment_paths(directory)
        changes = merge_runs(list(log.replay()))
        accepted: dict[str, int] = {}
        with tempfile.TemporaryDirectory(prefix="shelfrank-compact-") as tmp:
            for n, change in enumerate(changes):
                if change.kind in ("events", "inventory", "items"):
                    contract = {"events": EVENTS, "inventory": INVENTORY, "items": ITEMS}[change.kind]
                    path = Path(tmp) / f"{change.kind}-intake-{n:06d}.parquet"
                    pq.write_table(rows_to_table(contract, change.rows), path)
                    report = ingest_file(store, path, kind=change.kind)
                    accepted[change.kind] = accepted.get(change.kind, 0) + report.accepted
                elif change.kind == "collection":
                    _upsert_collections(store, change.rows)
                    accepted["collections"] = accepted.get("collections", 0) + len(change.rows)
                elif change.kind == "collection_delete":
                    for row in change.rows:
                        store.con.execute("DELETE FROM collections WHERE collection_id = ?", [row["collection_id"]])
                    accepted["collection_deletes"] = accepted.get("collection_deletes", 0) + len(change.rows)
        archive = None
        if paths:
            archive = directory / "compacted"
            archive.mkdir(exist_ok=True)
            for p in paths:
                shutil.move(str(p), archive / p.name)
            _fsync_dir(directory)
        return CompactReport(len(paths), len(changes), accepted, archive)


def _upsert_collections(store, rows: list[dict]) -> None:
    from shelfrank.contracts import COLLECTIONS

    new_collections = rows_to_table(COLLECTIONS, rows)  # noqa: F841 (read by DuckDB below)
    columns = ", ".join(f.name for f in COLLECTIONS.fields)
    store.con.execute("DELETE FROM collections WHERE collection_id IN (SELECT collection_id FROM new_collections)")
    store.con.execute(f"INSERT INTO collections ({columns}, updated_at) SELECT {columns}, now() FROM new_collections")
