"""Benchmark: training and evaluation time and peak memory, per scale, with the evaluation numbers.

For each scale: simulate, ingest (not timed here; see bench_simulate_ingest.py), then
`train` and `evaluate` each in a fresh process so peak RSS is their own. The baseline in
the same run is the cost of the point-in-time feature build alone (OfflineFeatures on the
same sampled training impressions), which is most of what training does before LightGBM.

    python benchmarks/bench_train.py --scales small standard
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import sys
import tempfile
from pathlib import Path

import psutil
from isolated_step import run_isolated

PREPARE = """
import sys
from pathlib import Path
from shelfrank.config import StoreConfig
from shelfrank.simulate import simulate
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_folder
scale, work = sys.argv[1], Path(sys.argv[2])
simulate(scale, 7, work / "sim")
with Store.open(StoreConfig(data_dir=work / "data")) as store:
    ingest_folder(store, work / "sim")
print("{}")
"""

FEATURES_ONLY = """
import json, resource, sys, time
from pathlib import Path
from shelfrank.config import StoreConfig
from shelfrank.features.definitions import FeatureSpace
from shelfrank.features.offline import fit_vocabularies
from shelfrank.models.training import TrainOptions, impression_set, time_split
from shelfrank.store.database import Store
work = Path(sys.argv[1])
options = TrainOptions()
with Store.open(StoreConfig(data_dir=work / "data")) as store:
    t = time.perf_counter()
    split = time_split(store.con, options.test_days)
    space = FeatureSpace(vocabularies=fit_vocabularies(store.con))
    s = impression_set(store.con, space, split.start, split.split, options.max_train_requests, options.seed)
    seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "examples": len(s.stage)}))
"""

TRAIN = """
import json, resource, sys, time
from pathlib import Path
from shelfrank.config import StoreConfig
from shelfrank.models.training import TrainOptions, train
from shelfrank.store.database import Store
work = Path(sys.argv[1])
with Store.open(StoreConfig(data_dir=work / "data")) as store:
    t = time.perf_counter()
    trained = train(store.con, work / "data" / "models", TrainOptions())
    seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "examples": len(trained.train_set.stage)}))
"""

EVALUATE = """
import json, resource, sys, time
from pathlib import Path
from shelfrank.config import Settings, StoreConfig
from shelfrank.store.database import Store
from shelfrank.training_run import run_evaluation
work = Path(sys.argv[1])
settings = Settings(store=StoreConfig(data_dir=work / "data"))
with Store.open(settings.store) as store:
    t = time.perf_counter()
    result = run_evaluation(store, settings, work / "report", work / "sim" / "truth")
    seconds = time.perf_counter() - t
print(json.dumps({"seconds": seconds, "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
                  "truth": result.truth_value, "normalized": result.normalized_value,
                  "best": result.best_ranker, "requests": result.n_truth_requests}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scales", nargs="+", default=["small"], choices=["tiny", "small", "standard"])
    parser.add_argument("--work", type=Path, default=None)
    parser.add_argument("--out", type=Path, default=None, help="also write the raw results as JSON here")
    args = parser.parse_args()
    root = args.work or Path(tempfile.mkdtemp(prefix="shelfrank-bench-train-"))
    results = {}
    for scale in args.scales:
        work = root / scale
        shutil.rmtree(work, ignore_errors=True)
        run_isolated(PREPARE, scale, str(work))
        results[scale] = {
            "features only (baseline)": run_isolated(FEATURES_ONLY, str(work)),
            "train": run_isolated(TRAIN, str(work)),
            "evaluate": run_isolated(EVALUATE, str(work)),
        }
        print(f"{scale}: " + ", ".join(f"{k} {v['seconds']:.0f}s" for k, v in results[scale].items()), file=sys.stderr)
        shutil.rmtree(work, ignore_errors=True)

    print(f"\nMachine: {psutil.cpu_count()} cores ({platform.machine()}), "
          f"{psutil.virtual_memory().total / 2**30:.0f} GiB, Python {platform.python_version()}.\n")
    print("| scale | step | examples | seconds | peak RSS MB |")
    print("|---|---|---:|---:|---:|")
    for scale, steps in results.items():
        for step, r in steps.items():
            print(f"| {scale} | {step} | {r.get('examples', '')} | {r['seconds']:.0f} | {r['peak_rss_mb']:,.0f} |")
    for scale, steps in results.items():
        ev = steps["evaluate"]
        print(f"\n{scale}: ground truth over {ev['requests']} held-out requests (best ranker: {ev['best']})\n")
        print("| policy | clicks | add to carts | purchases | revenue | normalized purchases [95% CI] |")
        print("|---|---:|---:|---:|---:|---:|")
        for policy, v in ev["truth"].items():
            norm = ev["normalized"].get(policy)
            norm_text = f"{norm[0]:+.3f} [{norm[1]:+.3f}, {norm[2]:+.3f}]" if norm else ""
            print(f"| {policy} | {v['clicks']:.3f} | {v['add_to_carts']:.3f} | {v['purchases']:.3f} "
                  f"| {v['revenue']:.2f} | {norm_text} |")
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
