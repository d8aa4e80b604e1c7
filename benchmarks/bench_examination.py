"""Benchmark: fitting the examination curve on 1M impressions, and how well each estimator recovers it.

Synthetic logs from tests/models/synthetic_logs.py (8 rows x 10 positions, a known curve
1 / (1 + 0.25 row) x exp(-0.22 position), a biased logging policy with a 5% randomized
share). Reports fit time and mean / max absolute error against the true curve for the
randomized-share, EM, hybrid and naive estimators, with few items (many impressions each) and
with 100k items (about ten impressions each).

    python benchmarks/bench_examination.py --pages 12500
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
from synthetic_logs import simulate_impressions, true_curve  # noqa: E402

from shelfrank.models.examination import ExaminationCurve, curve_error  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pages", type=int, default=12_500, help="80 impressions per page")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    truth = true_curve(np.arange(8)[:, None], np.arange(10)[None, :])
    print("| catalog | impressions | method | fit s | iterations | MAE | max error |")
    print("|---|---|---|---|---|---|---|")
    for n_collections in (40, 2000):
        logs = simulate_impressions(args.pages, seed=args.seed, n_collections=n_collections)
        for method in ("randomized", "em", "hybrid", "naive"):
            start = time.perf_counter()
            curve = ExaminationCurve(method=method).fit(
                logs.rows, logs.positions, logs.clicked, groups=logs.items, propensity=logs.propensity
            )
            seconds = time.perf_counter() - start
            grid = curve.grid()
            print(f"| {n_collections * 50:,} items | {len(logs.rows):,} | {method} | {seconds:.2f} | "
                  f"{curve.n_iter_} | {curve_error(grid, truth):.4f} | {np.abs(grid - truth).max():.4f} |")


if __name__ == "__main__":
    main()
