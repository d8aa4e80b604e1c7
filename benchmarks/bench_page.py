"""Benchmark: page building latency, per stage and end to end, in process on one core.

A page of 20 collections x 20 items (the issue's shape) for users sampled from the store
(active users and never-seen ones), at moments on the log's last day. The same requests
run through the default pipeline and, as the baseline in the same run, the popularity
pipeline (no models: sources, rules and page assembly only), so the models' share of the
time is visible. The process is pinned to one core and LightGBM predicts on one thread.

    python benchmarks/bench_page.py --data-dir /path/with/store-and-models --pages 300 --repeat 3

The data dir holds a store (shelfrank.duckdb) and trained models (models/), as made by
`shelfrank simulate / ingest / train` with that data dir (standard scale: 500,000 items,
3,000 categories). Reports p50 and p99 per stage, min and median over the repeats.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from datetime import timedelta
from pathlib import Path

import numpy as np


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=300, help="pages per pipeline per repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--items", type=int, default=20)
    parser.add_argument("--pipelines", nargs="+", default=["default", "popularity"])
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {sorted(os.sched_getaffinity(0))[0]})
    os.environ.setdefault("OMP_NUM_THREADS", "1")

    import duckdb

    from shelfrank.contracts import PageRequest
    from shelfrank.page.engine import HomepageEngine

    con = duckdb.connect(str(args.data_dir / "shelfrank.duckdb"), read_only=True)
    started = time.perf_counter()
    engine = HomepageEngine.from_store(con, args.data_dir / "models")
    startup = time.perf_counter() - started
    end = con.sql("SELECT max(ts) FROM events").fetchall()[0][0]
    active = [r[0] for r in con.sql("SELECT user_id FROM events WHERE event_type IN ('click', 'add_to_cart', "
                                    "'purchase') GROUP BY user_id ORDER BY hash(user_id) LIMIT 5000").fetchall()]
    con.close()
    n_items, n_categories = len(engine.catalog), len(engine.catalog.category_ids)
    print(f"engine over {n_items:,} items, {n_categories:,} categories built in {startup:.1f} s; "
          f"sources: {', '.join(engine.sources)}", file=sys.stderr)
    rng = np.random.default_rng(0)

    def requests(n: int) -> list[PageRequest]:
        out = []
        for k in range(n):
            user = active[int(rng.integers(len(active)))] if rng.random() < 0.9 else f"new-user-{k}"
            at = end - timedelta(seconds=float(rng.uniform(0, 86_400)))
            out.append(PageRequest(user, at, rows=args.rows, items=args.items, seed=k))
        return out

    for warm in requests(20):  # caches, lazy packing, first-call allocations
        for name in args.pipelines:
            engine.build(warm, name)
    results: dict[str, dict[str, list[tuple[float, float]]]] = {n: {} for n in args.pipelines}
    for _ in range(args.repeat):
        batch = requests(args.pages)
        for name in args.pipelines:
            timings: dict[str, list[float]] = {}
            for request in batch:
                page = engine.build(request, name)
                for stage, ms in page.timings_ms.items():
                    timings.setdefault(stage, []).append(ms)
            for stage, values in timings.items():
                results[name].setdefault(stage, []).append((float(np.percentile(values, 50)),
                                                            float(np.percentile(values, 99))))
    print(f"\n{args.rows} x {args.items} page, {n_items:,} items, {n_categories:,} categories, one core; "
          f"{args.pages} pages x {args.repeat} repeats; ms, min / median over repeats\n")
    for name in args.pipelines:
        print(f"pipeline `{name}`\n\n| stage | p50 min | p50 median | p99 min | p99 median |\n|---|---|---|---|---|")
        for stage, pairs in results[name].items():
            p50 = [p for p, _ in pairs]
            p99 = [q for _, q in pairs]
            print(f"| {stage} | {min(p50):.2f} | {statistics.median(p50):.2f} | {min(p99):.2f} | "
                  f"{statistics.median(p99):.2f} |")
        print()


if __name__ == "__main__":
    main()
