"""Benchmark: the ANN first pass (shelfrank.candidates.ann.VectorIndex) against exact numpy search.

Standard-scale shapes: 500,000 x 48 unit item vectors with planted structure (60 themes ->
3,000 categories -> items), the 3,000 normalized category means, and 200 taste vectors
(decayed means of 3-20 items from one or two categories, as taste_vector makes them).
Reports, in one run: build time; per-query latency p50 / p99 (one query at a time, one
thread, top-200) over items and over categories for several ef_search values, with recall@200
against exact search; exact search latency as the baseline; masked queries (over-fetch vs
hnswlib's filter callable); the ML sources' propose() latency; the clustering fit time.
Latencies are repeated passes over the 200 queries: min and median of the per-pass p50 / p99.

    python benchmarks/bench_ann.py            # standard shapes, a few minutes
    python benchmarks/bench_ann.py --quick    # 20,000 items, 300 categories: seconds
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
from threadpoolctl import threadpool_limits

from shelfrank.candidates.ann import VectorIndex, exact_search
from shelfrank.candidates.base import UserContext
from shelfrank.candidates.ml import ItemClusters, ItemClustersSource, PredictedCategoriesSource, taste_vector
from shelfrank.contracts import PageRequest
from shelfrank.store.catalog import Catalog
from shelfrank.store.history import CLICK, UserHistory

K = 200
T = 1_800_000_000.0


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


def planted(n_items: int, n_categories: int, dim: int, rng: np.random.Generator):
    themes = rng.normal(size=(60, dim))
    category_centre = unit(themes[rng.integers(0, 60, n_categories)] + 0.7 * rng.normal(size=(n_categories, dim)))
    category = np.sort(rng.integers(0, n_categories, n_items))
    items = np.empty((n_items, dim), dtype=np.float32)
    for start in range(0, n_items, 100_000):  # chunks keep the float64 temporaries small
        rows = slice(start, start + 100_000)
        noise = rng.normal(size=(len(category[rows]), dim)) / np.sqrt(dim)
        items[rows] = unit(category_centre[category[rows]] + 0.8 * noise)
    counts = np.bincount(category, minlength=n_categories)
    sums = np.zeros((n_categories, dim))
    np.add.at(sums, category, items)  # once, at set-up
    category_vectors = unit(sums / np.maximum(counts, 1)[:, None] + 1e-9)
    return items, category, category_vectors


def histories(category: np.ndarray, n_categories: int, n_users: int, rng: np.random.Generator):
    by_category = np.argsort(category, kind="stable")
    starts = np.searchsorted(category[by_category], np.arange(n_categories + 1))
    out = []
    for _ in range(n_users):  # set-up only
        cats = rng.integers(0, n_categories, rng.integers(1, 3))
        cats = cats[starts[cats + 1] > starts[cats]]
        picks = np.concatenate([rng.choice(by_category[starts[c]: starts[c + 1]], rng.integers(3, 11))
                                for c in cats]) if len(cats) else rng.integers(0, len(category), 5)
        ts = T - rng.uniform(0, 30 * 86_400, len(picks))
        out.append(UserHistory(picks.astype(np.int64), np.full(len(picks), CLICK, dtype=np.int8), ts,
                               np.full(len(picks), "s", dtype=object)))
    return out


def latencies(fn, queries: np.ndarray, repeat: int) -> tuple[tuple[float, float], tuple[float, float]]:
    """(p50 min, p50 median), (p99 min, p99 median) in ms over `repeat` passes of one query at a time."""
    p50s, p99s = [], []
    for _ in range(repeat):
        samples = np.empty(len(queries))
        for i, q in enumerate(queries):
            started = time.perf_counter()
            fn(q)
            samples[i] = time.perf_counter() - started
        p50s.append(np.percentile(samples, 50) * 1e3)
        p99s.append(np.percentile(samples, 99) * 1e3)
    return (min(p50s), statistics.median(p50s)), (min(p99s), statistics.median(p99s))


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(np.intersect1d(f, t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def exact_truth(vectors: np.ndarray, queries: np.ndarray, k: int) -> np.ndarray:
    return np.concatenate([exact_search(vectors, queries[i: i + 20], k)[0] for i in range(0, len(queries), 20)])


def synthetic_catalog(category: np.ndarray, rng: np.random.Generator) -> Catalog:
    n = len(category)
    ids = np.char.add("i", np.char.zfill(np.arange(n).astype(str), 7)).astype(object)
    table = pa.table({
        "item_id": ids, "title": ids, "vertical": np.full(n, "shop", dtype=object),
        "category_id": np.char.add("c", category.astype(str)).astype(object),
        "brand": np.char.add("b", (category * 4 + rng.integers(0, 4, n)).astype(str)).astype(object),
        "price": rng.uniform(1, 100, n), "image_url": np.full(n, "x", dtype=object),
        "has_image": np.ones(n, dtype=bool), "in_stock": rng.random(n) < 0.9,
        "stock_quantity": np.ones(n, dtype=np.int64),
        "created_at": pa.array(np.full(n, 0, dtype="datetime64[us]"), pa.timestamp("us", tz="UTC")),
        "tags": pa.array([[]] * n, pa.list_(pa.string())),
    })
    return Catalog(table, None, dict(zip(ids.tolist(), rng.pareto(1.5, n).tolist(), strict=True)))


def row(name: str, cells: list[str]) -> None:
    print("| " + " | ".join([name, *cells]) + " |", flush=True)


def main() -> None:
    with threadpool_limits(limits=1):  # single-threaded BLAS: the exact baseline gets the same one core
        run()


def run() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="20,000 items, 300 categories")
    parser.add_argument("--items", type=int, default=500_000)
    parser.add_argument("--categories", type=int, default=3_000)
    parser.add_argument("--dim", type=int, default=48)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--repeat", type=int, default=5, help="passes over the queries")
    parser.add_argument("--build-repeat", type=int, default=1)
    parser.add_argument("--build-threads", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--clusters", type=int, default=500)
    parser.add_argument("--ef", type=int, nargs="+", default=[200, 256, 400])
    args = parser.parse_args()
    if args.quick:
        args.items, args.categories, args.clusters = 20_000, 300, 50
    rng = np.random.default_rng(0)
    started = time.perf_counter()
    items, category, category_vectors = planted(args.items, args.categories, args.dim, rng)
    users = histories(category, args.categories, args.queries, rng)
    queries = np.stack([taste_vector(h, items, T) for h in users])
    print(f"{platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}; "
          f"{args.items:,} x {args.dim} items, {args.categories:,} categories, {len(queries)} taste vectors, "
          f"top-{K}; data set up in {time.perf_counter() - started:.1f} s\n")

    # Build.
    print("| build | seconds (min / median) |\n|---|---:|")
    builds = {}
    for threads in args.build_threads:
        samples = []
        for _ in range(args.build_repeat):
            index = VectorIndex(M=16, ef_construction=200, threads=threads).fit(items)
            samples.append(index.build_seconds_)
        builds[threads] = index
        row(f"items, M=16, ef_construction=200, {threads} thread{'s' * (threads > 1)}",
            [f"{min(samples):.1f} / {statistics.median(samples):.1f}"])
    item_index = builds[args.build_threads[0]]
    category_index = VectorIndex(exact_below=0).fit(category_vectors)
    row("categories, M=16, ef_construction=200, 1 thread", [f"{category_index.build_seconds_:.2f}"])

    # Query latency and recall.
    print(f"\n| query (one at a time, 1 thread, top-{K}) | p50 ms (min / median) | p99 ms (min / median) | "
          f"recall@{K} |\n|---|---:|---:|---:|")
    for name, index, vectors in (("items", item_index, items), ("categories", category_index, category_vectors)):
        truth = exact_truth(vectors, queries, K)
        (e50, e50m), (e99, e99m) = latencies(lambda q, v=vectors: exact_search(v, q, K), queries, args.repeat)
        row(f"{name}: exact numpy (baseline; VectorIndex's path below 10,000 rows)",
            [f"{e50:.3f} / {e50m:.3f}", f"{e99:.3f} / {e99m:.3f}", "1.000"])
        for ef in args.ef:
            index.set_ef(ef)
            found = index.query(queries, K)[0]
            (p50, p50m), (p99, p99m) = latencies(lambda q, i=index: i.query(q, K), queries, args.repeat)
            row(f"{name}: HNSW ef_search={ef}", [f"{p50:.3f} / {p50m:.3f}", f"{p99:.3f} / {p99m:.3f}",
                                                 f"{recall(found, truth):.3f}"])
        index.set_ef(256)
    if 2 in builds:
        truth = exact_truth(items, queries, K)
        found = builds[2].query(queries, K)[0]
        row("items: HNSW ef_search=256, graph built with 2 threads", ["", "", f"{recall(found, truth):.3f}"])
    started = time.perf_counter()
    for i in range(0, len(queries), 20):
        exact_search(items, queries[i: i + 20], K)
    row("items: exact numpy, batches of 20 queries (per query)",
        [f"{(time.perf_counter() - started) / len(queries) * 1e3:.3f}", "", "1.000"])

    # Masks: over-fetch and mask (VectorIndex) vs hnswlib's filter callable.
    print(f"\n| masked query (top-{K}) | p50 ms (min / median) | p99 ms (min / median) | recall@{K} |"
          "\n|---|---:|---:|---:|")
    for share in (0.5, 0.2, 0.05):
        mask = rng.random(args.items) < share
        allowed = np.flatnonzero(mask)
        truth = allowed[exact_truth(items[allowed], queries, K)]
        found = item_index.query(queries, K, mask=mask)[0]
        (p50, p50m), (p99, p99m) = latencies(lambda q, m=mask: item_index.query(q, K, mask=m), queries,
                                             args.repeat)
        row(f"{share:.0%} allowed: over-fetch + mask", [f"{p50:.3f} / {p50m:.3f}", f"{p99:.3f} / {p99m:.3f}",
                                                       f"{recall(found, truth):.3f}"])

        def filtered(q, m=mask, hnsw=item_index._index):
            return hnsw.knn_query(q, k=K, num_threads=1, filter=lambda j: m[j])

        found = np.concatenate([filtered(q)[0] for q in queries])
        (p50, p50m), (p99, p99m) = latencies(filtered, queries, 1)
        row(f"{share:.0%} allowed: hnswlib filter callable (1 pass)",
            [f"{p50:.3f} / {p50m:.3f}", f"{p99:.3f} / {p99m:.3f}", f"{recall(found, truth):.3f}"])

    # The ML sources end to end: clustering fit once, propose() per request.
    started = time.perf_counter()
    clusters = ItemClusters(args.clusters, seed=0).fit(items)
    fit_seconds = time.perf_counter() - started
    catalog = synthetic_catalog(category, rng)
    started = time.perf_counter()
    cluster_source = ItemClustersSource(catalog, clusters)
    cluster_build = time.perf_counter() - started
    category_source = PredictedCategoriesSource(catalog, category_vectors)
    request = PageRequest(user_id="u", at=datetime.fromtimestamp(T, UTC))
    contexts = [UserContext(request, T, "", True, h, taste=q) for h, q in zip(users, queries, strict=True)]
    print("\n| ML source step | p50 ms (min / median) | p99 ms (min / median) |\n|---|---:|---:|")
    row(f"ItemClusters.fit, {args.clusters} clusters (once)", [f"{fit_seconds:.1f} s", ""])
    row("ItemClustersSource init: titles + centroid index (once)", [f"{cluster_build:.1f} s", ""])
    for name, fn in (("taste_vector (3-20 events)", lambda c: taste_vector(c.history, items, T)),
                     ("PredictedCategoriesSource.propose (8 collections)", category_source.propose),
                     ("ItemClustersSource.propose (6 collections)", cluster_source.propose)):
        (p50, p50m), (p99, p99m) = latencies(fn, contexts, args.repeat)
        row(name, [f"{p50:.3f} / {p50m:.3f}", f"{p99:.3f} / {p99m:.3f}"])


if __name__ == "__main__":
    main()
