"""Cheaper page-pipeline candidate cuts, measured on the simulator's ground truth.

Builds whole pages for held-out requests with the default pipeline and with cheaper cuts
(fewer collections kept after retrieval, fewer first-pass candidates, a shorter item pool,
fewer leading items for the retrieval model, and combinations), values them with the
simulator's truth (`shelfrank.evaluate.pages.evaluate_pages`, the same evaluation
`shelfrank evaluate --truth` runs) and prints, per pipeline: clicks and purchases per page,
normalized purchases, the paired difference in purchases against `default` with its 95%
bootstrap interval over users, how many requests' pages differ from default in value, and the
build time the evaluation records (p50 / p99).

`default` is PIPELINES["default"] with its candidate cuts pinned to the values a round was
measured against (ROUNDS: round 1, the first defaults, 2.0 collections per row, 150 candidates,
pool 30, 5 leading items; round 2, what round 1 adopted, 1.5 / 150 / 24 / 5), so a round's
comparison stays the same when the declared default moves to one of its cuts; the popularity
baseline of the normalized value gets the same pinned cuts. `--round` picks one (default: 2).

The split and the evaluation window are picked as `run_evaluation` picks them: the training
window's end of the LATEST models, up to the last logged impression.

    taskset -c 0 nice -n 5 .venv/bin/python benchmarks/eval_candidate_cuts.py \\
        --data-dir /work/smallws/data --requests 150 --rows 8 --items 10
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import duckdb
import numpy as np

import shelfrank
from shelfrank.evaluate.pages import evaluate_pages, paired_difference
from shelfrank.models.training import load_trained
from shelfrank.page.pipeline import PIPELINES, PagePipeline
from shelfrank.simulate import GroundTruth

# Round 1 measured cuts against the first defaults; round 2 against the defaults round 1 adopted.
ROUNDS: dict[int, tuple[dict[str, object], dict[str, dict[str, object]]]] = {
    1: ({"keep_per_row": 2.0, "max_candidates": 150, "item_pool": 30, "retrieval_items": 5}, {
        "default": {},
        "keep1.5": {"keep_per_row": 1.5},
        "cands100": {"max_candidates": 100},
        "pool24": {"item_pool": 24},
        "lead3": {"retrieval_items": 3},
        "cheap": {"keep_per_row": 1.5, "max_candidates": 100, "item_pool": 24},
    }),
    2: ({"keep_per_row": 1.5, "max_candidates": 150, "item_pool": 24, "retrieval_items": 5}, {
        "default": {},
        "keep1.25": {"keep_per_row": 1.25},
        "pool20": {"item_pool": 20},
        "pool16": {"item_pool": 16},
        "keep1.25_pool20": {"keep_per_row": 1.25, "item_pool": 20},
    }),
}


def candidate_pipelines(round_: int | None = None) -> dict[str, PagePipeline]:
    """The round's pinned default, its cuts and the popularity baseline (default: the latest round)."""
    round_ = max(ROUNDS) if round_ is None else round_
    baseline, cuts = ROUNDS[round_]
    default = PIPELINES["default"].with_(**baseline)
    out = {name: default if not changes else default.with_(
        name=name, description=f"default with {', '.join(f'{k}={v}' for k, v in changes.items())}", **changes)
        for name, changes in cuts.items()}
    out["popularity"] = PIPELINES["popularity"].with_(**baseline)
    return out


def find_truth(data_dir: Path) -> Path:
    found = sorted(p.parent for p in (data_dir / "simulated").glob("*/truth/meta.json"))
    if len(found) != 1:
        sys.exit(f"expected one ground-truth folder under {data_dir / 'simulated'}, found {len(found)}; "
                 "pass --truth-dir")
    return found[0]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", type=Path, required=True,
                        help="store folder with shelfrank.duckdb, models/ and simulated/<run>/truth")
    parser.add_argument("--db", type=Path, default=None,
                        help="DuckDB file (default: DATA_DIR/shelfrank.duckdb; pass a copy if it is locked)")
    parser.add_argument("--truth-dir", type=Path, default=None,
                        help="ground-truth folder (default: the one under DATA_DIR/simulated)")
    parser.add_argument("--requests", type=int, default=150, help="held-out requests (default 150)")
    parser.add_argument("--rows", type=int, default=8, help="rows per page (default 8)")
    parser.add_argument("--items", type=int, default=10, help="items per row (default 10)")
    parser.add_argument("--seed", type=int, default=0, help="request sample and page seed (default 0)")
    parser.add_argument("--json", type=Path, default=None, help="also write the numbers to this JSON file")
    parser.add_argument("--round", type=int, choices=sorted(ROUNDS), default=max(ROUNDS),
                        help="which set of cuts, against which pinned default (default: the latest)")
    args = parser.parse_args(argv)

    truth_dir = args.truth_dir or find_truth(args.data_dir)
    models_dir = args.data_dir / "models"
    con = duckdb.connect(str(args.db or args.data_dir / "shelfrank.duckdb"), read_only=True)
    split = load_trained(models_dir).split.split
    end = con.execute("SELECT max(ts) FROM events WHERE event_type = 'impression'").fetchall()[0][0]
    truth = GroundTruth.load(truth_dir)
    pipelines = candidate_pipelines(args.round)
    baseline, cuts = ROUNDS[args.round]

    started = time.perf_counter()
    result = evaluate_pages(con, models_dir, truth, split, end, pipelines=pipelines, n_requests=args.requests,
                            rows=args.rows, items=args.items, seed=args.seed)
    elapsed = time.perf_counter() - started

    n, n_users = len(result.samples.users), len(set(result.samples.users.tolist()))
    print(f"shelfrank from {Path(shelfrank.__file__).parent}; round {args.round}, default cuts {baseline}")
    print(f"{n} held-out requests of {n_users} users, pages of {args.rows} rows x {args.items} items, "
          f"seed {args.seed}, split {split:%Y-%m-%d %H:%M} .. {end:%Y-%m-%d %H:%M} UTC, {elapsed:.0f} s")
    print("| pipeline | purchases | clicks | normalized purchases [95% CI] | purchases vs default [95% CI] "
          "| pages differing | build p50 / p99 ms |")
    print("|---|---:|---:|---:|---:|---:|---:|")
    out = {"requests": n, "users": n_users, "rows": args.rows, "items": args.items, "seed": args.seed,
           "split": split.isoformat(), "end": end.isoformat(), "seconds": elapsed, "pipelines": {}}
    for name in (*pipelines, "oracle"):
        m = result.mean(name)
        norm = result.normalized.get(name, (float("nan"),) * 3)
        diff = paired_difference(result.samples, name, "default") if name != "default" else (0.0, 0.0, 0.0)
        values = result.samples.values
        differing = int(np.sum(np.abs(values[name][:, 2] - values["default"][:, 2]) > 1e-12))
        p50, p99 = result.latency_ms.get(name, (float("nan"), float("nan")))
        out["pipelines"][name] = {**m, "normalized": norm, "vs_default": diff, "latency_ms": (p50, p99),
                                  "pages_differing": differing,
                                  "changes": cuts.get(name, {})}
        vs = "0" if name == "default" else f"{diff[0]:+.5f} [{diff[1]:+.5f}, {diff[2]:+.5f}]"
        lat = "" if name == "oracle" else f"{p50:.1f} / {p99:.1f}"
        print(f"| {name} | {m['purchases']:.4f} | {m['clicks']:.4f} | "
              f"{norm[0]:+.3f} [{norm[1]:+.3f}, {norm[2]:+.3f}] | {vs} | {differing} | {lat} |")
    if args.json:
        args.json.write_text(json.dumps(out, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
