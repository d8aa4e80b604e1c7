"""Benchmark: fitting item embeddings for a 100k-item catalog on this machine.

Synthetic sessions with planted clusters from tests/models/synthetic_sessions.py
(2,000 categories x 50 items, 300k sessions x 5 engagements, 10% cold items). Reports fit
time, peak resident memory, neighbour precision@10 (same planted cluster; chance 1/2000)
on a sample of items with history, and how often a cold item's nearest category vector is
its own.

    python benchmarks/bench_embeddings.py --sessions 300000 --dim 48 --threads 2
"""

from __future__ import annotations

import argparse
import resource
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tests" / "models"))
from synthetic_sessions import planted_sessions  # noqa: E402

from shelfrank.models.embeddings import ItemEmbeddings  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--categories", type=int, default=2000)
    parser.add_argument("--items-per-category", type=int, default=50)
    parser.add_argument("--sessions", type=int, default=300_000)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--iterations", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    data = planted_sessions(n_categories=args.categories, items_per_category=args.items_per_category,
                            n_sessions=args.sessions, noise=0.1, seed=0)
    n_items = len(data.cold)
    start = time.perf_counter()
    model = ItemEmbeddings(dim=args.dim, iterations=args.iterations, threads=args.threads).fit(
        data.item_index, data.group_index, data.weight, data.content)
    seconds = time.perf_counter() - start
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024

    category = data.content["category"]
    rng = np.random.default_rng(0)
    sample = rng.choice(np.flatnonzero(~data.cold), 2000, replace=False)
    precision = np.mean([np.mean(category[model.similar(int(i), 10)[0]] == category[i]) for i in sample])
    cold = np.flatnonzero(data.cold)
    nearest = np.argmax(model.vectors_[cold] @ model.category_vectors_.T, axis=1)
    start = time.perf_counter()
    for i in sample[:200]:
        model.similar(int(i), 10)
    similar_ms = (time.perf_counter() - start) / 200 * 1000

    print(f"items {n_items:,}, events {len(data.item_index):,}, sessions {args.sessions:,}, dim {args.dim}, "
          f"iterations {args.iterations}, threads {args.threads}")
    print(f"fit {seconds:.1f} s (ALS + content projection), peak RSS {peak_mb:.0f} MB")
    print(f"precision@10 (same planted cluster, chance {1 / args.categories:.4f}): {precision:.3f}")
    print(f"cold items whose nearest category vector is their own: {np.mean(nearest == category[cold]):.3f}")
    print(f"exact similar(k=10) over {n_items:,} items: {similar_ms:.2f} ms")


if __name__ == "__main__":
    main()
