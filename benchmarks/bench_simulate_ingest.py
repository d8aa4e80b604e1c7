"""Benchmark: simulator and ingest time and peak memory, per scale.

Each measurement runs in a fresh Python process, so its peak RSS is its own. Ingest is
compared in the same run with a baseline: DuckDB loading the same Parquet files with
no validation at all (`CREATE TABLE AS SELECT * FROM read_parquet(...)`), which is the
floor any checked ingest pays on top of.

    python benchmarks/bench_simulate_ingest.py --scales small --repeat 3
    python benchmarks/bench_simulate_ingest.py --scales small standard --repeat 2 --out docs/benchmarks-simulate.json

Results are printed as a Markdown table to paste into docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import statistics
import sys
import tempfile
from pathlib import Path

import psutil
from isolated_step import run_isolated

SIMULATE = """
import json, resource, sys, time
from pathlib import Path
from shelfrank.simulate import simulate
t = time.perf_counter()
summary = simulate(sys.argv[1], int(sys.argv[2]), Path(sys.argv[3]))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "events": summary.counts.get("events", 0)}))
"""

INGEST = """
import json, resource, sys, time
from pathlib import Path
from shelfrank.config import StoreConfig
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_folder
t = time.perf_counter()
with Store.open(StoreConfig(data_dir=Path(sys.argv[2]))) as store:
    reports = ingest_folder(store, Path(sys.argv[1]))
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": sum(r.accepted for r in reports)}))
"""

RAW_LOAD = """
import json, resource, sys, time
from pathlib import Path
import duckdb
src, dst = Path(sys.argv[1]), Path(sys.argv[2])
dst.mkdir(parents=True, exist_ok=True)
t = time.perf_counter()
con = duckdb.connect(str(dst / "raw.duckdb"))
con.execute("SET threads = 2")
rows = 0
for path in sorted(src.glob("*.parquet")) + [src / "events"]:
    pattern = str(path / "*.parquet") if path.is_dir() else str(path)
    name = path.stem if path.is_file() else path.name
    con.execute(f"CREATE TABLE {name} AS SELECT * FROM read_parquet('{pattern}')")
    rows += con.execute(f"SELECT count(*) FROM {name}").fetchone()[0]
con.close()
seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "rows": rows}))
"""


def summarize(samples: list[dict], key: str) -> tuple[float, float]:
    values = [s[key] for s in samples]
    return min(values), statistics.median(values)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["small"], choices=["tiny", "small", "standard"])
    parser.add_argument("--repeat", type=int, default=3)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--work", type=Path, default=None, help="scratch folder (default: a temp dir)")
    parser.add_argument("--out", type=Path, default=None, help="also write the raw samples as JSON here")
    args = parser.parse_args()

    work = args.work or Path(tempfile.mkdtemp(prefix="shelfrank-bench-"))
    results: dict[str, dict[str, list[dict]]] = {}
    for scale in args.scales:
        results[scale] = {"simulate": [], "ingest": [], "raw_load": []}
        for i in range(args.repeat):
            sim_dir, store_dir, raw_dir = work / f"{scale}-sim", work / f"{scale}-store", work / f"{scale}-raw"
            for d in (sim_dir, store_dir, raw_dir):
                shutil.rmtree(d, ignore_errors=True)
            results[scale]["simulate"].append(run_isolated(SIMULATE, scale, str(args.seed), str(sim_dir)))
            results[scale]["raw_load"].append(run_isolated(RAW_LOAD, str(sim_dir), str(raw_dir)))
            results[scale]["ingest"].append(run_isolated(INGEST, str(sim_dir), str(store_dir)))
            print(f"{scale} run {i + 1}/{args.repeat}: "
                  + ", ".join(f"{k} {v[-1]['seconds']:.1f}s" for k, v in results[scale].items()), file=sys.stderr)
        for d in work.glob(f"{scale}-*"):
            shutil.rmtree(d, ignore_errors=True)

    cpu = platform.processor() or platform.machine()
    print(f"\nMachine: {psutil.cpu_count()} cores ({cpu}), {psutil.virtual_memory().total / 2**30:.0f} GiB, "
          f"Python {platform.python_version()}; {args.repeat} runs each, min / median.\n")
    print("| scale | step | rows | seconds (min / median) | peak RSS MB (min / median) | vs raw load |")
    print("|---|---|---:|---:|---:|---:|")
    for scale, steps in results.items():
        raw_min, _ = summarize(steps["raw_load"], "seconds")
        for step, samples in steps.items():
            s_min, s_med = summarize(samples, "seconds")
            m_min, m_med = summarize(samples, "peak_rss_mb")
            rows = samples[0].get("events", samples[0].get("rows", 0))
            ratio = f"{s_min / raw_min:.2f}x" if step == "ingest" else ""
            print(f"| {scale} | {step} | {rows:,} | {s_min:.1f} / {s_med:.1f} "
                  f"| {m_min:,.0f} / {m_med:,.0f} | {ratio} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
