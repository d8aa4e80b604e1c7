"""Check: the standard-scale simulation meets its budget (not a test: it takes minutes).

    python benchmarks/check_simulate_standard.py [--seed 7] [--out /tmp/shelfrank-standard]

Budget: at least 20 million events, under 5 minutes, under 8 GB peak RSS on a 2-core machine.
Prints the summary (counts, measured facts, time, memory, CPU seconds) as JSON and exits 1
if a budget is missed.
"""

from __future__ import annotations

import argparse
import json
import resource
import shutil
import sys
import tempfile
from pathlib import Path

from shelfrank.simulate import simulate

MIN_EVENTS = 20_000_000
MAX_SECONDS = 300.0
MAX_RSS_MB = 8 * 1024


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--out", type=Path, default=None, help="keep the data here (default: a temp dir)")
    args = parser.parse_args()
    out = args.out or Path(tempfile.mkdtemp(prefix="shelfrank-standard-"))
    summary = simulate("standard", args.seed, out)
    usage = resource.getrusage(resource.RUSAGE_SELF)
    report = {
        "events": summary.counts["events"], "requests": summary.n_requests, "sessions": summary.n_sessions,
        "seconds": round(summary.seconds, 1), "cpu_seconds": round(usage.ru_utime + usage.ru_stime, 1),
        "peak_rss_mb": round(summary.peak_rss_mb), "counts": summary.counts,
        "facts": {k: round(v, 4) for k, v in summary.facts.items()},
    }
    print(json.dumps(report, indent=1))
    if args.out is None:
        shutil.rmtree(out, ignore_errors=True)
    missed = [name for name, ok in (("events", summary.counts["events"] >= MIN_EVENTS),
                                    ("seconds", summary.seconds < MAX_SECONDS),
                                    ("peak_rss_mb", summary.peak_rss_mb < MAX_RSS_MB)) if not ok]
    if missed:
        print(f"budget missed: {', '.join(missed)}", file=sys.stderr)
        sys.exit(1)


if __name__ == "__main__":
    main()
