"""Approximate nearest neighbours by cosine: a thin, typed wrapper over hnswlib.

The first pass of candidate generation asks "which of N vectors are closest to this taste
vector?" with N up to the whole catalog. Exact search is one matrix-vector product over all
N rows (about 20 ms at 500,000 x 64); an HNSW graph answers the same top-200 in well under
a millisecond at ~0.95+ recall (numbers in docs/retrieval.md and docs/benchmarks.md).

* Cosine = inner product on unit vectors: rows and queries are L2-normalized here, so
  callers may pass raw vectors. A zero or non-finite row has no direction and is refused
  with the row named; index only the rows that have one by passing ``ids``.
* ids are row numbers by default, or any non-negative integers (e.g. category codes).
* Deterministic: the graph is built single-threaded from a fixed seed (``threads > 1`` is
  faster but the graph then depends on thread scheduling).
* Small sets are searched exactly: below ``exact_below`` rows (10,000 by default) one matrix
  product beats the graph (3,000 x 48: 0.14 ms exact vs 0.28 ms HNSW at ef 256, measured) and
  is exact, so the category and cluster indexes build no graph at all.
* ``mask`` (allowed ids) is applied by over-fetching and masking, not by hnswlib's Python
  filter callable (a Python call per visited node). When few ids are allowed, an exact search
  over just those rows is both exact and cheaper; the choice is by estimated cost.
"""

from __future__ import annotations

import json
import time
from importlib.metadata import version as package_version
from pathlib import Path

import hnswlib
import numpy as np

from shelfrank.arrays import take_rows

FORMAT = 1
# Over-fetching stops paying past this share of the index: search the allowed rows exactly.
EXACT_SHARE = 0.25
# One candidate an HNSW query visits costs about as much as this many rows of exact search
# (500,000 x 48, top-200: ef 256 takes 0.6 ms, exact 18 ms; gathering the allowed rows doubles
# exact's cost). Masked queries pick over-fetch or exact by this estimate.
HNSW_ROW_COST = 40


def exact_search(vectors: np.ndarray, queries: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """Top-k rows of ``vectors`` by inner product per query, best first: (rows [q, k], scores [q, k]).

    The baseline the index is measured against; also the index's own fallback for masked queries.
    """
    queries = np.atleast_2d(queries)
    k = min(k, len(vectors))
    if k <= 0:
        return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
    scores = queries @ vectors.T
    if k < len(vectors):
        top = np.argpartition(-scores, k - 1, axis=1)[:, :k]
    else:
        top = np.broadcast_to(np.arange(len(vectors)), scores.shape).copy()
    top_scores = take_rows(scores, top)
    order = np.argsort(-top_scores, axis=1, kind="stable")
    return take_rows(top, order).astype(np.int64), take_rows(top_scores, order)


def _unit_rows(vectors: np.ndarray, what: str) -> np.ndarray:
    """float32 C-contiguous unit rows; a zero or non-finite row is a ValueError naming it."""
    array = np.asarray(vectors)
    if array.ndim != 2:
        raise ValueError(f"{what} must be 2-D (rows x dim), got shape {array.shape}")
    array = np.ascontiguousarray(array, dtype=np.float32)
    finite = np.isfinite(array).all(axis=1)
    norms = np.linalg.norm(array, axis=1)
    bad = ~finite | (norms <= 1e-12)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        kind = "non-finite values" if not finite[row] else "a zero vector"
        raise ValueError(f"{what} row {row} is {kind}: cosine needs a direction "
                         f"({int(bad.sum())} such rows; leave them out, or pass ids for the rows kept)")
    if np.abs(norms - 1.0).max(initial=0.0) > 1e-4:
        array = array / norms[:, None]
    return array


class VectorIndex:
    """An HNSW index over unit vectors, queried by cosine similarity.

    Hyperparameters: ``M`` (graph degree; memory ~ n * M * 8 bytes on top of the vectors),
    ``ef_construction`` (build beam; higher = better graph, slower build), ``ef_search``
    (query beam, raised to k when smaller; the recall/latency knob, settable later),
    ``seed``, ``threads`` (build threads; 1 = deterministic), ``exact_below`` (fewer rows than
    this: no graph, every query is an exact search; 0 = always build the graph).

    Learned attributes: ``ids_`` (int64 [n], the id of each row), ``vectors_`` (float32 [n, d]
    unit rows, kept for exact masked search), ``build_seconds_``.
    """

    def __init__(self, M: int = 16, ef_construction: int = 200, ef_search: int = 256, seed: int = 0,
                 threads: int = 1, exact_below: int = 10_000) -> None:
        self.M = M
        self.ef_construction = ef_construction
        self.ef_search = ef_search
        self.seed = seed
        self.threads = threads
        self.exact_below = exact_below

    # ---------- building ----------

    def fit(self, vectors: np.ndarray, ids: np.ndarray | None = None) -> VectorIndex:
        """Index the rows of ``vectors`` (n, d) under ``ids`` (default: row numbers)."""
        if self.M < 2 or self.ef_construction < 1 or self.ef_search < 1 or self.threads < 1:
            raise ValueError(f"M must be >= 2 and ef_construction, ef_search, threads >= 1; got M={self.M}, "
                             f"ef_construction={self.ef_construction}, ef_search={self.ef_search}, "
                             f"threads={self.threads}")
        started = time.perf_counter()
        unit = _unit_rows(vectors, "vectors")
        n, dim = unit.shape
        if dim == 0:
            raise ValueError("vectors have 0 columns")
        if ids is None:
            labels = np.arange(n, dtype=np.int64)
        else:
            labels = np.asarray(ids)
            if labels.shape != (n,) or (n and not np.issubdtype(labels.dtype, np.integer)):
                raise ValueError(f"ids must be {n} integers (one per row), got shape {labels.shape}, "
                                 f"dtype {labels.dtype}")
            labels = labels.astype(np.int64)
            if n and (labels.min() < 0 or len(np.unique(labels)) != n):
                raise ValueError("ids must be distinct non-negative integers")
        index = None
        if n >= self.exact_below:
            index = hnswlib.Index(space="ip", dim=dim)
            index.init_index(max_elements=max(n, 1), ef_construction=self.ef_construction, M=self.M,
                             random_seed=self.seed)
            if n:
                index.add_items(unit, labels, num_threads=self.threads)
            index.set_ef(self.ef_search)
        self._index = index
        self.ids_ = labels
        self.vectors_ = unit
        self._row_of = self._rows_by_id(labels)
        self._ids_are_rows = bool(np.array_equal(labels, np.arange(n)))
        self.build_seconds_ = time.perf_counter() - started
        return self

    @classmethod
    def build(cls, vectors: np.ndarray, ids: np.ndarray | None = None, **params) -> VectorIndex:
        """``VectorIndex(**params).fit(vectors, ids)``."""
        return cls(**params).fit(vectors, ids)

    @staticmethod
    def _rows_by_id(labels: np.ndarray) -> np.ndarray:
        row_of = np.full(int(labels.max()) + 1 if len(labels) else 0, -1, dtype=np.int64)
        row_of[labels] = np.arange(len(labels))
        return row_of

    def __len__(self) -> int:
        self._check_fitted()
        return len(self.ids_)

    @property
    def dim(self) -> int:
        self._check_fitted()
        return self.vectors_.shape[1]

    def set_ef(self, ef_search: int) -> None:
        """Change the query beam (recall vs latency) without rebuilding."""
        if ef_search < 1:
            raise ValueError(f"ef_search must be >= 1, got {ef_search}")
        self.ef_search = ef_search
        if getattr(self, "_index", None) is not None:
            self._index.set_ef(ef_search)

    @property
    def exact(self) -> bool:
        """True when queries are answered by exact search (no graph: fewer than exact_below rows)."""
        self._check_fitted()
        return self._index is None

    # ---------- querying ----------

    def query(self, vectors: np.ndarray, k: int, mask: np.ndarray | None = None,
              threads: int = 1) -> tuple[np.ndarray, np.ndarray]:
        """The k nearest ids by cosine, best first: (ids, similarities).

        ``vectors``: one query (d,) -> arrays of shape (k',), or a batch (q, d) -> (q, k').
        k' = min(k, number of candidates): asking for more than the index holds (or than the mask
        allows) is not an error; an empty index answers with empty arrays.
        ``mask``: bool per id (an entry for every id; False = never return it).
        """
        self._check_fitted()
        if k < 0:
            raise ValueError(f"k must be >= 0, got {k}")
        single = np.ndim(vectors) == 1
        queries = _unit_rows(np.atleast_2d(vectors), "query")
        if queries.shape[1] != self.dim:
            raise ValueError(f"query has dimension {queries.shape[1]}, the index holds {self.dim}-d vectors")
        if mask is None:
            ids, sims = self._search(queries, min(k, len(self.ids_)), threads)
        else:
            ids, sims = self._masked_search(queries, k, self._allowed_by_row(mask), threads)
        return (ids[0], sims[0]) if single else (ids, sims)

    def _search(self, queries: np.ndarray, k: int, threads: int) -> tuple[np.ndarray, np.ndarray]:
        if k == 0:
            return np.zeros((len(queries), 0), dtype=np.int64), np.zeros((len(queries), 0), dtype=np.float32)
        if self._index is None or (k > len(self.ids_) * EXACT_SHARE and k > self.ef_search):
            # Most of the index is asked for: the graph may not reach k items; exact is cheap here.
            rows, sims = exact_search(self.vectors_, queries, k)
            return self.ids_[rows], sims.astype(np.float32)
        labels, distances = self._index.knn_query(queries, k=k, num_threads=threads)
        return labels.astype(np.int64), (1.0 - distances).astype(np.float32)

    def _allowed_by_row(self, mask: np.ndarray) -> np.ndarray:
        """The mask (indexed by id) as a bool per row; no copy when ids are row numbers."""
        mask = np.asarray(mask)
        if mask.dtype != bool or mask.ndim != 1 or len(mask) < len(self._row_of):
            raise ValueError(f"mask must be a 1-D bool array with an entry for every id (at least "
                             f"{len(self._row_of)}), got dtype {mask.dtype}, shape {mask.shape}")
        return mask[: len(self.ids_)] if self._ids_are_rows else mask[self.ids_]

    def _masked_search(self, queries: np.ndarray, k: int, allowed: np.ndarray,
                       threads: int) -> tuple[np.ndarray, np.ndarray]:
        n, n_allowed = len(self.ids_), int(np.count_nonzero(allowed))
        k_out = min(k, n_allowed)
        ids = np.full((len(queries), k_out), -1, dtype=np.int64)
        sims = np.full((len(queries), k_out), -np.inf, dtype=np.float32)
        if k_out == 0:
            return ids, sims
        # Expected allowed share of a fetch is n_allowed / n; fetch twice what that needs, then double.
        fetch = int(min(n, np.ceil(2.0 * k_out * n / n_allowed)))
        pending = np.arange(len(queries))
        if self._index is None or n_allowed <= HNSW_ROW_COST * max(fetch, self.ef_search):
            fetch = n + 1  # exact over the allowed rows is cheaper than walking the graph
        while len(pending) and fetch <= n * EXACT_SHARE:
            labels, distances = self._index.knn_query(queries[pending], k=max(fetch, 1), num_threads=threads)
            keep = allowed[labels if self._ids_are_rows else self._row_of[labels]]
            enough = keep.sum(axis=1) >= k_out
            for i in np.flatnonzero(enough):  # per query of the batch, not per item
                hits = np.flatnonzero(keep[i])[:k_out]
                ids[pending[i]] = labels[i, hits]
                sims[pending[i]] = 1.0 - distances[i, hits]
            pending = pending[~enough]
            fetch *= 2
        if len(pending):
            allowed_rows = np.flatnonzero(allowed)
            rows, scores = exact_search(self.vectors_[allowed_rows], queries[pending], k_out)
            ids[pending] = self.ids_[allowed_rows[rows]]
            sims[pending] = scores
        return ids, sims

    # ---------- persistence ----------

    def save(self, folder: Path, name: str = "vector_index") -> Path:
        """Write ``<name>.hnsw`` (graph), ``<name>.npz`` (ids, vectors) and ``<name>.json`` (metadata)."""
        self._check_fitted()
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        if self._index is not None:
            self._index.save_index(str(folder / f"{name}.hnsw"))
        np.savez(folder / f"{name}.npz", ids=self.ids_, vectors=self.vectors_)
        metadata = {"kind": "vector_index", "format": FORMAT, "n": len(self.ids_), "dim": self.dim,
                    "params": {"M": self.M, "ef_construction": self.ef_construction, "ef_search": self.ef_search,
                               "seed": self.seed, "threads": self.threads, "exact_below": self.exact_below},
                    "graph": self._index is not None,
                    "build_seconds": self.build_seconds_, "hnswlib": package_version("hnswlib")}
        target = folder / f"{name}.json"
        target.write_text(json.dumps(metadata, indent=1))
        return target

    @classmethod
    def load(cls, folder: Path, name: str = "vector_index") -> VectorIndex:
        folder = Path(folder)
        paths = [folder / f"{name}.{ext}" for ext in ("json", "npz", "hnsw")]
        needed = paths if not paths[0].is_file() or json.loads(paths[0].read_text()).get("graph", True) else paths[:2]
        missing = [p.name for p in needed if not p.is_file()]
        if missing:
            raise FileNotFoundError(f"no vector index {name!r} in {folder} (missing {', '.join(missing)})")
        metadata = json.loads(paths[0].read_text())
        if metadata.get("kind") != "vector_index" or metadata.get("format", 0) > FORMAT:
            raise ValueError(f"{paths[0]} is not a vector index this shelfrank reads "
                             f"(kind={metadata.get('kind')!r}, format={metadata.get('format')})")
        model = cls(**metadata["params"])
        with np.load(paths[1]) as arrays:
            model.ids_, model.vectors_ = arrays["ids"], arrays["vectors"]
        if model.vectors_.shape != (metadata["n"], metadata["dim"]):
            raise ValueError(f"{paths[1]} holds vectors of shape {model.vectors_.shape}, metadata says "
                             f"({metadata['n']}, {metadata['dim']}): the files do not belong together")
        model._index = None
        if metadata.get("graph", True):
            model._index = hnswlib.Index(space="ip", dim=metadata["dim"])
            model._index.load_index(str(paths[2]), max_elements=max(metadata["n"], 1))
            model._index.set_ef(model.ef_search)
        model._row_of = cls._rows_by_id(model.ids_)
        model._ids_are_rows = bool(np.array_equal(model.ids_, np.arange(len(model.ids_))))
        model.build_seconds_ = metadata["build_seconds"]
        return model

    def _check_fitted(self) -> None:
        if not hasattr(self, "ids_"):
            raise RuntimeError("VectorIndex is not built; call fit() / build() or load() first")
