"""Benchmark: page building latency, per stage and end to end, in process on one core.

A thin wrapper over `shelfrank.bench` (the core of `shelfrank bench`) without the HTTP part:
pages of 20 collections x 20 items for known users and new visitors, default pipeline and the
popularity baseline, segment cache on and off; p50 / p95 / p99, min and median over repeats.

    python benchmarks/bench_page.py --data-dir /path/with/store-and-models --pages 300 --repeat 3

is `shelfrank --data-dir DIR bench --no-http --pages 300 --repeat 3`. The data dir holds a store
(shelfrank.duckdb) and trained models (models/), as made by `shelfrank simulate / ingest / train`.
"""

from __future__ import annotations

import argparse
from pathlib import Path

from rich.console import Console

from shelfrank.bench import BenchOptions, has_models, run_bench
from shelfrank.config import load_settings


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True)
    parser.add_argument("--pages", type=int, default=300, help="pages per table line per repeat")
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--rows", type=int, default=20)
    parser.add_argument("--items", type=int, default=20)
    args = parser.parse_args()
    if not ((args.data_dir / "shelfrank.duckdb").is_file() and has_models(args.data_dir)):
        parser.error(f"{args.data_dir} holds no store with trained models (`shelfrank bench` can build one)")
    settings = load_settings()
    settings = settings.model_copy(update={"store": settings.store.model_copy(update={"data_dir": args.data_dir})})
    options = BenchOptions(pages=args.pages, repeat=args.repeat, rows=args.rows, items=args.items, http=False)
    print(run_bench(settings, "standard", options, Console(stderr=True)))


if __name__ == "__main__":
    main()
