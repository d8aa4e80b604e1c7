"""Benchmark: offline point-in-time features (rows/s) and online `get` latency.

A synthetic store is generated inside DuckDB (no simulator needed): items in verticals /
categories / brands, users, an event log that is mostly impressions with some clicks, carts
and purchases, spread uniformly over `--days`. Offline computes `--examples` random
(user, item, ts) examples; online replays the whole log into the in-memory state and times
`get` for one user and `--slate` items.

    python benchmarks/bench_features.py --events 10000000 --examples 1000000
    python benchmarks/bench_features.py --events 200000 --examples 20000   # a quick check
"""

from __future__ import annotations

import argparse
import os
import platform
import resource
import statistics
import time
from datetime import UTC, datetime, timedelta

import duckdb
import numpy as np

from shelfrank.contracts import CONTRACTS
from shelfrank.features import FeatureSpace, InMemoryFeatureState, OfflineFeatures, fit_vocabularies

START = datetime(2026, 1, 1, tzinfo=UTC)


def build_store(con: duckdb.DuckDBPyConnection, n_events: int, n_users: int, n_items: int, days: int) -> None:
    for contract in CONTRACTS.values():
        cols = ", ".join(f'"{f.name}" {f.duckdb_type}' for f in contract.fields)
        con.execute(f"CREATE TABLE {contract.name} ({cols})")
    con.execute(f"""
        INSERT INTO items (item_id, title, vertical, category_id, brand, price, has_image, in_stock, created_at)
        SELECT 'i' || i, 'Item ' || i, 'v' || (i % 8), 'c' || (i % 300), 'b' || (i % 1000),
               round(1 + random() * 200, 2), random() < 0.9, random() < 0.95,
               TIMESTAMPTZ '{START.isoformat()}' - INTERVAL (CAST(random() * 365 AS INT)) DAY
        FROM range({n_items}) t(i)
    """)
    con.execute(f"""
        INSERT INTO users (user_id, location, subscription)
        SELECT 'u' || u, 'r' || (u % 20), CASE WHEN u % 3 = 0 THEN 'member' ELSE 'none' END
        FROM range({n_users}) t(u)
    """)
    # Skewed item popularity (power law) so item keys have very different event counts.
    con.execute(f"""
        INSERT INTO events (event_id, ts, user_id, session_id, event_type, item_id, row, position, surface, location)
        SELECT 'e' || k,
               TIMESTAMPTZ '{START.isoformat()}' + INTERVAL (CAST(r1 * {days * 86400} AS BIGINT)) SECOND,
               'u' || u, 's' || u || '-' || CAST(r1 * {days} AS INT),
               CASE WHEN r2 < 0.85 THEN 'impression' WHEN r2 < 0.95 THEN 'click'
                    WHEN r2 < 0.985 THEN 'add_to_cart' ELSE 'purchase' END,
               'i' || CAST(floor({n_items} * pow(random(), 2)) AS BIGINT),
               CAST(random() * 10 AS INT), CAST(random() * 20 AS INT),
               CASE WHEN u % 3 = 0 THEN 'ios' ELSE 'web' END, 'r' || (u % 20)
        FROM (SELECT k, random() AS r1, random() AS r2, CAST(floor(random() * {n_users}) AS BIGINT) AS u
              FROM range({n_events}) t(k))
    """)


def examples(con: duckdb.DuckDBPyConnection, n: int, n_users: int, n_items: int, days: int):
    return con.sql(f"""
        SELECT 'u' || CAST(floor(random() * {n_users}) AS BIGINT) AS user_id,
               'i' || CAST(floor({n_items} * pow(random(), 2)) AS BIGINT) AS item_id,
               TIMESTAMPTZ '{START.isoformat()}' + INTERVAL (CAST(random() * {days * 86400} AS BIGINT)) SECOND AS ts,
               'web' AS surface, 'r1' AS location, NULL::VARCHAR AS session_id
        FROM range({n})
    """).to_arrow_table()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--events", type=int, default=2_000_000)
    parser.add_argument("--examples", type=int, default=200_000)
    parser.add_argument("--users", type=int, default=100_000)
    parser.add_argument("--items", type=int, default=50_000)
    parser.add_argument("--days", type=int, default=60)
    parser.add_argument("--slate", type=int, default=200)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-online", action="store_true")
    parser.add_argument("--skip-offline", action="store_true")
    args = parser.parse_args()

    con = duckdb.connect(":memory:", config={"threads": args.threads})
    t = time.perf_counter()
    build_store(con, args.events, args.users, args.items, args.days)
    print(f"generated {args.events:,} events in {time.perf_counter() - t:.1f} s")
    space = FeatureSpace(vocabularies=fit_vocabularies(con))
    ex = examples(con, args.examples, args.users, args.items, args.days)

    # CPU seconds too: on a shared box wall time measures the neighbours as much as the code.
    t, cpu = time.perf_counter(), time.process_time()
    table = OfflineFeatures(con, space).compute(ex) if not args.skip_offline else None
    offline_s, offline_cpu = time.perf_counter() - t, time.process_time() - cpu
    if table is not None:
        print(f"offline: {table.num_rows:,} examples x {len(space.names)} features over {args.events:,} events "
              f"in {offline_s:.1f} s = {table.num_rows / offline_s:,.0f} rows/s (threads={args.threads}; "
              f"{offline_cpu:.1f} CPU s, load average {os.getloadavg()[0]:.1f})")

    if not args.skip_online:
        items = con.sql("SELECT * FROM items").to_arrow_table()
        users = con.sql("SELECT * FROM users").to_arrow_table()
        state = InMemoryFeatureState(space, items, users)
        batch = 200_000
        log = con.sql("SELECT * FROM events ORDER BY ts").to_arrow_table()
        t = time.perf_counter()
        for start in range(0, log.num_rows, batch):
            state.update(log.slice(start, batch))
        total = log.num_rows
        replay_s = time.perf_counter() - t
        print(f"online update: {total:,} events in {replay_s:.1f} s = {total / replay_s:,.0f} events/s "
              f"(batches of {batch:,})")
        rng = np.random.default_rng(0)
        item_ids = items.column("item_id").to_numpy(zero_copy_only=False)
        now = START + timedelta(days=args.days)
        context = {"surface": "web", "location": "r1", "session_id": "s1"}
        latencies, cpu = [], time.process_time()
        for _ in range(300):
            user = f"u{int(rng.integers(args.users))}"
            slate = item_ids[rng.choice(len(item_ids), size=args.slate, replace=False)]
            t = time.perf_counter()
            state.get(user, slate, now, context)
            latencies.append((time.perf_counter() - t) * 1000)
        cpu_ms = (time.process_time() - cpu) / len(latencies) * 1000
        latencies.sort()
        print(f"online get, {args.slate} items: median {statistics.median(latencies):.2f} ms, "
              f"p99 {latencies[int(0.99 * len(latencies))]:.2f} ms, mean CPU {cpu_ms:.2f} ms")
    print(f"peak RSS {resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024:,.0f} MB; "
          f"{platform.processor() or platform.machine()}")


if __name__ == "__main__":
    main()
