"""`simulate`: build the world, write the store's files and the ground truth."""

from __future__ import annotations

import resource
import shutil
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from shelfrank.contracts import CATEGORIES, COLLECTIONS, EVENT_TYPES, EVENTS, INVENTORY, ITEMS, USERS
from shelfrank.progress import SILENT, Progress
from shelfrank.simulate.behaviour import ADD_TO_CART, CLICK, IMPRESSION, PURCHASE, SEARCH, EventArrays, respond
from shelfrank.simulate.catalog import (
    build_catalog,
    categories_table,
    inventory_table,
    item_id_strings,
    items_table,
)
from shelfrank.simulate.logging_policy import build_collections, collections_table, daily_pools, serve_pages
from shelfrank.simulate.scales import SURFACES, ScaleSpec, resolve_scale
from shelfrank.simulate.sessions import build_requests
from shelfrank.simulate.truth import GroundTruth, build_context
from shelfrank.simulate.users import build_users, region_names, users_table

_WRITE_OPTIONS = {"compression": "zstd"}
# Many-valued strings (event_id, request_id, item_id at 500,000 items ...) gain little from
# dictionaries or statistics and cost up to half the write time; keep both where they pay.
_EVENT_WRITE_OPTIONS = {
    "compression": "zstd",
    "use_dictionary": ["event_type", "surface", "location", "query"],
    "write_statistics": ["ts", "event_type", "row", "position", "quantity", "price", "propensity"],
}


@dataclass
class SimulationSummary:
    scale: str
    seed: int
    out_dir: Path
    counts: dict[str, int]  # rows per file kind; events also by type ("events.click", ...)
    n_requests: int
    n_sessions: int
    seconds: float
    peak_rss_mb: float
    facts: dict[str, float] = field(default_factory=dict)  # measured: ctr, cart_per_click, ...


def simulate(scale: str | ScaleSpec, seed: int, out_dir: Path, progress: Progress = SILENT) -> SimulationSummary:
    """Simulate a store at `scale` and write its files and ground truth into `out_dir`.
    The same scale and seed give byte-identical files."""
    began = time.perf_counter()
    spec = resolve_scale(scale)
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    for stale in (out_dir / "events", out_dir / "truth"):
        shutil.rmtree(stale, ignore_errors=True)
    streams = [np.random.default_rng(s) for s in np.random.SeedSequence(seed).spawn(7)]
    counts: dict[str, int] = {}

    with progress.task("building the world", total=5) as advance:
        catalog = build_catalog(spec, streams[0])
        advance(1)
        users = build_users(spec, catalog, streams[1])
        context = build_context(spec, catalog, streams[2])
        truth = GroundTruth(spec, catalog, users, context)
        advance(1)
        cols = build_collections(spec, catalog, streams[3])
        pools = daily_pools(spec, catalog, cols, streams[3])
        advance(1)
        for name, table in (
            ("categories", categories_table(spec, catalog, CATEGORIES.arrow_schema)),
            ("items", items_table(spec, catalog, ITEMS.arrow_schema)),
            ("users", users_table(spec, users, USERS.arrow_schema)),
            ("collections", collections_table(spec, catalog, cols, COLLECTIONS.arrow_schema)),
            ("inventory", inventory_table(spec, catalog, INVENTORY.arrow_schema)),
        ):
            pq.write_table(table, out_dir / f"{name}.parquet", **_WRITE_OPTIONS)
            counts[name] = table.num_rows
        advance(1)
        requests = build_requests(spec, catalog, users, streams[4])
        advance(1)

    strings = _IdStrings(spec, catalog.category_name, catalog.n_items, users.n_users, cols.ids)
    writer = _EventPartWriter(out_dir / "events", spec.rows_per_event_part)
    tally = np.zeros(len(EVENT_TYPES), dtype=np.int64)
    randomized_clicks = np.zeros(spec.items_per_row)
    randomized_impressions = np.zeros(spec.items_per_row)
    chunk = spec.requests_per_chunk
    n_chunks = max(1, -(-len(requests) // chunk))
    behaviour_rng, policy_rng = streams[5], streams[6]
    with progress.task("generating events", total=n_chunks) as advance:
        for lo in range(0, len(requests), chunk):
            req = requests.slice(lo, lo + chunk)
            pages = serve_pages(spec, catalog, users, cols, pools, req.user, req.t, req.randomized, policy_rng)
            events = respond(truth, req, pages, lo, behaviour_rng)
            tally += np.bincount(events.kind, minlength=len(EVENT_TYPES))
            rand = req.randomized[np.maximum(events.request - lo, 0)] & (events.request >= 0)
            for kind, acc in ((IMPRESSION, randomized_impressions), (CLICK, randomized_clicks)):
                sel = rand & (events.kind == kind)
                acc += np.bincount(events.position[sel], minlength=spec.items_per_row)
            writer.write(strings.table(events, writer.rows_written))
            advance(1)
    writer.close()
    truth.save(out_dir / "truth")  # after the events: it holds who owns what

    counts["events"] = int(tally.sum())
    for k, name in enumerate(EVENT_TYPES):
        counts[f"events.{name}"] = int(tally[k])
    ctr_by_position = randomized_clicks / np.maximum(randomized_impressions, 1)
    facts = {
        "ctr": tally[CLICK] / max(tally[IMPRESSION], 1),
        "cart_per_click": tally[ADD_TO_CART] / max(tally[CLICK], 1),
        "purchase_per_cart": tally[PURCHASE] / max(tally[ADD_TO_CART], 1),
        "impressions_per_request": tally[IMPRESSION] / max(len(requests), 1),
        "searches_per_session": tally[SEARCH] / max(int(requests.session.max(initial=-1)) + 1, 1),
        **{f"randomized_ctr_position_{p}": float(v) for p, v in enumerate(ctr_by_position)},
    }
    return SimulationSummary(
        scale=spec.name, seed=seed, out_dir=out_dir, counts=counts, n_requests=len(requests),
        n_sessions=int(requests.session.max(initial=-1)) + 1, seconds=time.perf_counter() - began,
        peak_rss_mb=_peak_rss_mb(), facts={k: float(v) for k, v in facts.items()},
    )


class _IdStrings:
    """Turns event columns of numbers into the EVENTS contract's strings, in Arrow (no Python loops)."""

    def __init__(self, spec: ScaleSpec, category_names: list[str], n_items: int, n_users: int,
                 collection_ids: list[str]) -> None:
        self.spec = spec
        self.start_us = int(spec.start.timestamp() * 1_000_000)
        self.items = item_id_strings(n_items)
        self.users = _prefixed("u", np.arange(n_users))
        self.collections = pa.array(collection_ids, type=pa.string())
        self.types = pa.array(EVENT_TYPES, type=pa.string())
        self.surfaces = pa.array(SURFACES, type=pa.string())
        self.regions = pa.array(region_names(spec.n_regions), type=pa.string())
        # A search query is the name of a category, as a shopper would type it.
        self.query_names = pa.array([name.lower() for name in category_names], type=pa.string())

    def table(self, ev: EventArrays, first_event: int) -> pa.Table:
        n = len(ev)
        is_search = ev.kind == SEARCH
        is_purchase = ev.kind == PURCHASE
        ts = self.start_us + np.round(ev.t * 1e6).astype(np.int64)
        return pa.table({
            "event_id": _prefixed("e", np.arange(first_event, first_event + n)),
            "ts": pa.array(ts, type=pa.timestamp("us", tz="UTC")),
            "user_id": self.users.take(pa.array(ev.user)),
            "session_id": _range_strings("s", ev.session),
            "event_type": self.types.take(pa.array(ev.kind)),
            "item_id": self.items.take(_masked(ev.item, is_search)),
            "collection_id": self.collections.take(_masked(ev.collection, is_search)),
            "row": _masked(ev.row, is_search),
            "position": _masked(ev.position, is_search),
            "request_id": _range_strings("r", ev.request, is_search),
            "surface": self.surfaces.take(pa.array(ev.surface)),
            "location": self.regions.take(pa.array(ev.region)),
            "query": self.query_names.take(_masked(ev.query, ~is_search)),
            "quantity": _masked(ev.quantity, ~is_purchase),
            "price": pa.array(ev.price.astype(np.float64), mask=~is_purchase),
            "propensity": pa.array(ev.propensity.astype(np.float64), mask=is_search),
        }, schema=EVENTS.arrow_schema)


def _masked(values: np.ndarray, mask: np.ndarray) -> pa.Array:
    return pa.array(np.asarray(values, dtype=np.int64), mask=np.asarray(mask, dtype=bool))


def _range_strings(prefix: str, numbers: np.ndarray, mask: np.ndarray | None = None) -> pa.Array:
    """prefix + number for numbers that span a narrow range (a chunk's requests or sessions):
    formats each distinct value once and gathers, instead of formatting every row."""
    valid = numbers if mask is None else numbers[~mask]
    lo = int(valid.min(initial=0))
    hi = int(valid.max(initial=0))
    names = _prefixed(prefix, np.arange(lo, hi + 1))
    offsets = np.asarray(numbers, dtype=np.int64) - lo
    return names.take(pa.array(offsets, mask=mask))


def _prefixed(prefix: str, numbers: np.ndarray | pa.Array) -> pa.Array:
    arr = numbers if isinstance(numbers, pa.Array) else pa.array(np.asarray(numbers, dtype=np.int64))
    return pc.binary_join_element_wise(prefix, pc.cast(arr, pa.string()), "")


class _EventPartWriter:
    """Writes events into part-00000.parquet, part-00001.parquet, ... of at most `max_rows` rows."""

    def __init__(self, folder: Path, max_rows: int) -> None:
        self.folder = folder
        self.folder.mkdir(parents=True, exist_ok=True)
        self.max_rows = max_rows
        self.rows_written = 0
        self._part = -1
        self._in_part = 0
        self._writer: pq.ParquetWriter | None = None

    def write(self, table: pa.Table) -> None:
        while table.num_rows:
            if self._writer is None or self._in_part >= self.max_rows:
                self._next_part(table.schema)
            take = min(table.num_rows, self.max_rows - self._in_part)
            self._writer.write_table(table.slice(0, take))
            self._in_part += take
            self.rows_written += take
            table = table.slice(take)

    def _next_part(self, schema: pa.Schema) -> None:
        if self._writer is not None:
            self._writer.close()
        self._part += 1
        self._in_part = 0
        self._writer = pq.ParquetWriter(self.folder / f"part-{self._part:05d}.parquet", schema,
                                        **_EVENT_WRITE_OPTIONS)

    def close(self) -> None:
        if self._writer is None:
            self._next_part(EVENTS.arrow_schema)
        self._writer.close()


def _peak_rss_mb() -> float:
    try:
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    except (AttributeError, OSError):  # pragma: no cover - non-Unix
        import psutil

        return psutil.Process().memory_info().rss / 2**20
