"""The service's state behind the HTTP layer: the engine, the intake log and the change feed.

Every write takes one path, :meth:`Service.accept`: append to the intake log (fsync), publish
to the feed, apply to the engine; the HTTP answer is sent after it returns. Every page first
calls :meth:`Service.sync` (changes other replicas accepted), then builds. Startup builds the
engine from the store, replays the intake log, then catches up on the feed.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from shelfrank.config import Settings
from shelfrank.errors import UserFacingError
from shelfrank.serve.changes import Change, apply_change, merge_runs
from shelfrank.serve.intake import IntakeLog, intake_dir
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.replication import ChangeFeed, LocalChangeFeed, RedisChangeFeed

log = logging.getLogger("shelfrank.serve")


@dataclass
class EngineSource:
    """What the engine factory gives the service: the engine and, optionally, a lookup of the
    event ids already in the store (so a replay never applies a stored event twice)."""

    engine: Any
    stored_events: Callable[[np.ndarray], np.ndarray] | None = None  # ids -> bool mask
    close: Callable[[], None] = field(default=lambda: None)


def open_engine(settings: Settings) -> EngineSource:
    """The real engine on the store in ``store.data_dir`` (read only, so replicas can share it)."""
    import duckdb

    from shelfrank.page.engine import HomepageEngine

    path = settings.store.database_path
    if not path.is_file():
        raise UserFacingError(f"no store at {path}; run `shelfrank ingest` (or `shelfrank demo`) first")
    try:
        con = duckdb.connect(str(path), read_only=True,
                             config={"memory_limit": settings.store.memory_limit,
                                     "threads": settings.store.threads})
    except duckdb.Error as exc:
        raise UserFacingError(f"cannot open the store {path} read-only: {str(exc).splitlines()[0]}") from None
    models_dir = settings.store.data_dir / "models"
    try:
        engine = HomepageEngine.from_store(con, models_dir, page_config=settings.page,
                                           cache_entries=settings.serve.cache_entries)
    except UserFacingError as exc:
        # Never a broken page: without usable models the engine serves fallback pages (curated
        # and popular collections) until POST /v1/models/swap loads a version.
        log.warning("serving fallback pages only: %s", exc)
        engine = HomepageEngine.from_store(con, models_dir, require_models=False, page_config=settings.page,
                                           cache_entries=settings.serve.cache_entries)
    from shelfrank.runtime import settle_after_start

    settle_after_start()
    lock = threading.Lock()

    def stored_events(ids: np.ndarray) -> np.ndarray:
        import pyarrow as pa

        if len(ids) == 0:
            return np.zeros(0, dtype=bool)
        wanted = pa.table({"event_id": pa.array(ids.tolist(), pa.string())})  # noqa: F841 (read by DuckDB)
        with lock:
            found = {r[0] for r in con.execute(
                "SELECT e.event_id FROM events e SEMI JOIN wanted w ON e.event_id = w.event_id").fetchall()}
        return np.fromiter((i in found for i in ids), dtype=bool, count=len(ids))

    return EngineSource(engine=engine, stored_events=stored_events, close=con.close)


def make_feed(settings: Settings) -> ChangeFeed:
    if settings.serve.redis_url:
        feed = RedisChangeFeed(settings.serve.redis_url, settings.serve.replica_id)
        try:
            feed.ping()
        except Exception as exc:
            raise UserFacingError(f"cannot reach Redis at {settings.serve.redis_url}: {exc}") from None
        return feed
    return LocalChangeFeed()


class Service:
    """One replica's state. Thread-safe."""

    def __init__(self, settings: Settings, source: EngineSource, feed: ChangeFeed, metrics: ServiceMetrics,
                 intake: IntakeLog | None) -> None:
        self.settings = settings
        self.source = source
        self.engine = source.engine
        self.feed = feed
        self.metrics = metrics
        self.intake = intake
        self.replica_id = settings.serve.replica_id
        self._seen_events: set[str] = set()  # event ids applied since the engine was built from the store
        self._write_lock = threading.Lock()  # orders intake appends, publishes and applies
        self._sync_lock = threading.Lock()
        self.startup_stats: dict[str, float] = {}

    # --- startup ------------------------------------------------------------------------

    def replay(self) -> dict[str, float]:
        """Apply the intake log, then the feed's backlog; returns counts and seconds."""
        began = time.perf_counter()
        replayed = 0
        if self.intake is not None:
            for change in merge_runs(self.intake.replay()):
                change = self._new_events_only(change, check_store=True)
                if change.kind == "events" and not change.rows:
                    continue
                try:
                    apply_change(self.engine, change)
                except Exception:
                    self.metrics.sync_errors.labels("replay").inc()
                    log.exception("could not replay a %s change from the intake log; skipped", change.kind)
                    continue
                replayed += 1
        intake_seconds = time.perf_counter() - began
        pulled = self.sync()
        seconds = time.perf_counter() - began
        self.metrics.replay_seconds.set(seconds)
        self.metrics.replayed.set(replayed + pulled)
        self.startup_stats = {"replay_seconds": seconds, "intake_seconds": intake_seconds,
                              "intake_changes": replayed, "feed_changes": pulled,
                              "events_in_memory": len(self._seen_events)}
        return self.startup_stats

    def _new_events_only(self, change: Change, check_store: bool = False) -> Change:
        """The change without events already applied (by event_id); records the new ids."""
        if change.kind != "events":
            return change
        ids = np.asarray([r["event_id"] for r in change.rows], dtype=object)
        fresh = np.fromiter((i not in self._seen_events for i in ids), dtype=bool, count=len(ids))
        # Repeats inside the batch: the first wins.
        _, first = np.unique(ids.astype(str), return_index=True) if len(ids) else (None, np.zeros(0, int))
        unique = np.zeros(len(ids), dtype=bool)
        unique[first] = True
        fresh &= unique
        if check_store and self.source.stored_events is not None and fresh.any():
            fresh[fresh] &= ~self.source.stored_events(ids[fresh])
        self._seen_events.update(ids[fresh].tolist())
        if fresh.all():
            return change
        return Change(change.kind, [r for r, keep in zip(change.rows, fresh, strict=True) if keep], change.origin)

    # --- writes -------------------------------------------------------------------------

    def accept(self, change: Change) -> int:
        """Durably log, share and apply one change; returns the rows applied (events: the new ones)."""
        change = Change(change.kind, change.rows, self.replica_id)
        with self._write_lock:
            change = self._new_events_only(change)
            if not change.rows and change.kind == "events":
                return 0
            # Applied first: a change the engine refuses (UserFacingError -> 422) is never logged
            # nor shared. Nothing is acknowledged before the append below has been fsync'ed.
            apply_change(self.engine, change)
            if self.intake is not None:
                self.intake.append(change)
            try:
                self.feed.publish(change)
            except Exception:
                # Durable here; the other replicas miss it until they restart from the stream.
                self.metrics.sync_errors.labels("publish").inc()
                log.exception("could not publish a %s change to the shared feed", change.kind)
        self.metrics.writes.labels(change.kind, "local").inc()
        return len(change.rows)

    def publish_models(self, version: str) -> None:
        """Tell the other replicas to load `version` (not logged: the store's LATEST decides at
        startup)."""
        try:
            self.feed.publish(Change("models", [{"version": version}], self.replica_id))
        except Exception:
            self.metrics.sync_errors.labels("publish").inc()
            log.exception("could not publish a model swap to the shared feed")

    def sync(self) -> int:
        """Apply the changes other replicas accepted since the last sync; returns how many."""
        with self._sync_lock:
            try:
                changes = self.feed.pull()
            except Exception:
                self.metrics.sync_errors.labels("pull").inc()
                log.exception("could not read the shared feed; serving from the local state")
                return 0
            applied = 0
            for change in merge_runs(changes):
                with self._write_lock:
                    change = self._new_events_only(change)
                    if change.kind == "events" and not change.rows:
                        continue
                    try:
                        apply_change(self.engine, change)
                    except Exception:
                        log.exception("could not apply a %s change from another replica", change.kind)
                        continue
                applied += 1
                self.metrics.writes.labels(change.kind, "replica").inc()
            if applied and any(c.kind == "models" for c in changes):
                self.metrics.set_model(self.engine.model_version)
            return applied

    def close(self) -> None:
        for closer in (self.feed.close, self.source.close):
            try:
                closer()
            except Exception:  # pragma: no cover - best effort at shutdown
                log.exception("error while closing")
        if self.intake is not None:
            self.intake.close()


def start_service(settings: Settings, engine_factory: Callable[[Settings], EngineSource],
                  metrics: ServiceMetrics, feed_factory: Callable[[Settings], ChangeFeed] = make_feed,
                  durable: bool = True) -> Service:
    """Build the engine, open the intake log and the feed, replay; the service is then ready."""
    began = time.perf_counter()
    source = engine_factory(settings)
    engine_seconds = time.perf_counter() - began
    metrics.engine_seconds.set(engine_seconds)
    intake = None
    if durable:
        intake = IntakeLog(intake_dir(Path(settings.store.data_dir), settings.serve.replica_id),
                           settings.serve.intake_segment_bytes)
    try:
        feed = feed_factory(settings)
    except BaseException:
        if intake is not None:
            intake.close()
        raise
    service = Service(settings, source, feed, metrics, intake)
    stats = service.replay()
    metrics.set_model(getattr(service.engine, "model_version", ""))
    stats["engine_seconds"] = engine_seconds
    log.info("ready: engine built in %.2f s, %d intake changes and %d feed changes replayed in %.3f s",
             stats["engine_seconds"], stats["intake_changes"], stats["feed_changes"], stats["replay_seconds"])
    return service
