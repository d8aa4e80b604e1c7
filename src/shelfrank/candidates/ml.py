"""Personalized collection sources from the item embeddings: the user's taste vector against
category vectors (predicted categories) and against item clusters (themes that cut across
categories).

The taste vector is the decayed, funnel-weighted mean of the vectors of the items the user
engaged with (:func:`taste_vector`; the page builder fills ``UserContext.taste`` with it).
A user without one (no history) gets nothing from these sources; the page falls back to
the curated and rules sources. Both sources answer "which groups are nearest to this taste"
with a :class:`~shelfrank.candidates.ann.VectorIndex` over the groups' unit vectors, walk
the answer best first and keep groups that still have enough in-stock items, so stock
changes need no rebuild. Details and measured numbers: docs/retrieval.md.
"""

from __future__ import annotations

import hashlib
import math
import os
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import scipy.sparse as sp

from shelfrank.candidates.ann import VectorIndex
from shelfrank.candidates.base import CandidateCollection, UserContext
from shelfrank.models.embeddings import EngagementWeights
from shelfrank.store.catalog import Catalog
from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE, UserHistory

SECONDS_PER_DAY = 86_400.0


def taste_vector(history: UserHistory, item_vectors: np.ndarray, t: float, half_life_days: float = 7.0,
                 weights: EngagementWeights = EngagementWeights()) -> np.ndarray | None:
    """The user's taste: unit vector of sum_i w(event_i) * 0.5 ** (age_i / half_life) * v(item_i).

    Events at or after ``t`` and items outside ``item_vectors`` (added to the catalog after the
    embeddings were fitted) are left out. None when nothing is left (a new user) or the weighted
    vectors cancel out.
    """
    if half_life_days <= 0:
        raise ValueError(f"half_life_days must be > 0, got {half_life_days}")
    items = np.asarray(history.items, dtype=np.int64)
    keep = (history.ts < t) & (items >= 0) & (items < len(item_vectors))
    if not keep.any():
        return None
    by_code = np.zeros(max(CLICK, ADD_TO_CART, PURCHASE) + 1)
    by_code[[CLICK, ADD_TO_CART, PURCHASE]] = weights.click, weights.add_to_cart, weights.purchase
    codes = np.asarray(history.events, dtype=np.int64)[keep]
    # np.minimum / np.maximum, not np.clip: its wrapper costs more than the work on a request's history
    event_weight = np.where((codes >= 0) & (codes < len(by_code)),
                            by_code[np.minimum(np.maximum(codes, 0), len(by_code) - 1)], 0.0)
    age_days = (t - np.asarray(history.ts, dtype=np.float64)[keep]) / SECONDS_PER_DAY
    w = event_weight * np.exp2(-age_days / half_life_days)
    taste = w @ np.asarray(item_vectors[items[keep]], dtype=np.float64)
    norm = math.sqrt(float(taste @ taste))  # np.linalg.norm's own formula for a vector, without its wrapper
    if not np.isfinite(norm) or norm <= 1e-12:
        return None
    return (taste / norm).astype(np.float32)


def _prior(similarity: float) -> float:
    """Cosine in [-1, 1] -> [0, 1]."""
    return min(max((float(similarity) + 1.0) / 2.0, 0.0), 1.0)


def _nearest(index: VectorIndex, taste: np.ndarray, want: int) -> Iterator[tuple[int, float]]:
    """(id, similarity) best first, fetching more (doubling) while the caller keeps asking."""
    seen: set[int] = set()
    fetched, k = 0, 2 * want + 8
    while fetched < len(index):
        ids, sims = index.query(taste, k=min(k, len(index)))
        for group, similarity in zip(ids.tolist(), sims.tolist(), strict=True):  # per group, not per item
            if group not in seen:  # a wider search may reorder the head slightly
                seen.add(group)
                yield group, similarity
        fetched, k = len(ids), 2 * k


def _collect(index: VectorIndex, taste: np.ndarray, n: int,
             make: Callable[[int, float], CandidateCollection | None]) -> list[CandidateCollection]:
    out: list[CandidateCollection] = []
    if n <= 0 or len(index) == 0:
        return out
    for group, similarity in _nearest(index, taste, n):
        candidate = make(group, similarity)
        if candidate is not None:
            out.append(candidate)
            if len(out) == n:
                break
    return out


class PredictedCategoriesSource:
    """The leaf categories nearest to the user's taste, each as a collection of its most popular
    in-stock items (``cat:<category_id>``, the id the store's logs use, so learned collection
    statistics apply).

    category_vectors: [n_categories, d], row c = catalog category code c (e.g.
    ``ItemEmbeddings.category_vectors_``); zero rows (categories without items) are left out.
    index: a prebuilt index whose ids are category codes (default: built here).
    n_collections: collections per request; pool_size: items per collection; min_items: a
    category with fewer in-stock items is skipped (capped at pool_size).
    """

    name = "predicted_categories"
    fail_open = True

    def __init__(self, catalog: Catalog, category_vectors: np.ndarray, index: VectorIndex | None = None,
                 n_collections: int = 8, pool_size: int = 100, min_items: int = 4) -> None:
        vectors = np.asarray(category_vectors, dtype=np.float32)
        n_categories = len(catalog.category_ids)
        if vectors.ndim != 2 or len(vectors) > n_categories:
            raise ValueError(f"category_vectors must be [n_categories, d] with at most {n_categories} rows "
                             f"(one per catalog category code), got shape {vectors.shape}")
        self.catalog = catalog
        self.n_collections = n_collections
        self.pool_size = pool_size
        self.min_items = min(min_items, pool_size)  # a pool smaller than min_items is the caller's choice
        if index is None:
            codes = np.arange(len(vectors))
            has_items = np.diff(catalog.category_indptr)[: len(vectors)] > 0
            is_parent = np.isin(codes, catalog.category_parent)
            usable = has_items & ~is_parent & np.isfinite(vectors).all(axis=1) & (np.linalg.norm(vectors, axis=1) > 0)
            index = VectorIndex().fit(vectors[usable], ids=codes[usable])
        elif len(index) and index.dim != vectors.shape[1]:
            raise ValueError(f"index holds {index.dim}-d vectors, category_vectors are {vectors.shape[1]}-d")
        self.index = index

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        if user.taste is None:
            return []
        return _collect(self.index, user.taste, self.n_collections, self._collection)

    def _collection(self, category: int, similarity: float) -> CandidateCollection | None:
        items = self.catalog.items_in_category(category, limit=self.pool_size, in_stock_only=True)
        if len(items) < self.min_items:
            return None
        name = str(self.catalog.category_names[category])
        return CandidateCollection(
            collection_id=f"cat:{self.catalog.category_ids[category]}", title=name, source="ml",
            generator=self.name, items=items.astype(np.int64), reason=f"Picked for you: {name}",
            signals={"similarity": similarity}, prior=_prior(similarity),
        )


CLUSTERS_FORMAT = 1  # the saved fit's layout; bump when fit() changes what it computes


class ItemClusters:
    """Spherical k-means over item vectors: clusters of items that are engaged together.

    Hyperparameters: n_clusters; iterations (Lloyd steps on the sample); sample_size (rows the
    centroids are learned on; every item is then assigned, and centroids re-estimated once from
    all members); seed. k-means++ initialization; an emptied cluster is re-seeded at the sample
    point farthest from its centroid. Items with a zero vector get no cluster (label -1).

    Learned attributes: centroids_ (float32 [k, d], unit), labels_ (int64 [n_items]),
    closeness_ (float32 [n_items], cosine to the own centroid), member_indptr_ / members_ (CSR:
    members of each cluster, closest first).
    """

    def __init__(self, n_clusters: int, iterations: int = 20, sample_size: int = 50_000, seed: int = 0) -> None:
        self.n_clusters = n_clusters
        self.iterations = iterations
        self.sample_size = sample_size
        self.seed = seed

    def fit(self, item_vectors: np.ndarray) -> ItemClusters:
        if self.n_clusters < 1 or self.iterations < 0 or self.sample_size < 1:
            raise ValueError(f"n_clusters and sample_size must be >= 1 and iterations >= 0, got {self.n_clusters}, "
                             f"{self.sample_size}, {self.iterations}")
        vectors = np.asarray(item_vectors, dtype=np.float32)
        if vectors.ndim != 2:
            raise ValueError(f"item_vectors must be 2-D (items x dim), got shape {vectors.shape}")
        norms = np.linalg.norm(vectors, axis=1)
        valid = np.flatnonzero(np.isfinite(norms) & (norms > 1e-12))
        if len(valid) == 0:
            raise ValueError("item_vectors has no non-zero finite row to cluster")
        unit = vectors[valid] / norms[valid, None]
        rng = np.random.default_rng(self.seed)
        k = min(self.n_clusters, len(valid))
        sample = unit[np.sort(rng.choice(len(unit), min(self.sample_size, len(unit)), replace=False))]
        centroids = _kmeans_plus_plus(sample, k, rng)
        for _ in range(self.iterations):
            labels, closeness = _assign(sample, centroids)
            centroids = _recentre(sample, labels, centroids, closeness)
        labels, _ = _assign(unit, centroids)
        centroids = _recentre(unit, labels, centroids, None)
        labels, closeness = _assign(unit, centroids)

        n_items = len(vectors)
        self.centroids_ = centroids
        self.labels_ = np.full(n_items, -1, dtype=np.int64)
        self.labels_[valid] = labels
        self.closeness_ = np.zeros(n_items, dtype=np.float32)
        self.closeness_[valid] = closeness
        order = valid[np.lexsort((-closeness, labels))]
        self.members_ = order.astype(np.int64)
        self.member_indptr_ = np.concatenate([[0], np.cumsum(np.bincount(labels, minlength=k))]).astype(np.int64)
        return self

    FITTED = ("centroids_", "labels_", "closeness_", "members_", "member_indptr_")

    def fit_cached(self, item_vectors: np.ndarray, cache_dir: Path | None) -> ItemClusters:
        """`fit`, or the fit of the same vectors with the same parameters saved in `cache_dir` by an
        earlier start (k-means over 500,000 items takes ~17 s; the engine needs it on every start).
        A missing, unreadable or mismatched file is fitted again."""
        vectors = np.ascontiguousarray(item_vectors, dtype=np.float32)
        if cache_dir is None:
            return self.fit(vectors)
        digest = hashlib.sha256(vectors.tobytes())
        digest.update(repr((vectors.shape, self.n_clusters, self.iterations, self.sample_size, self.seed,
                            CLUSTERS_FORMAT)).encode())
        path = Path(cache_dir) / f"{digest.hexdigest()[:24]}.npz"
        try:
            with np.load(path) as saved:
                fitted = {name: saved[name] for name in self.FITTED}
            if len(fitted["labels_"]) == len(vectors) and fitted["member_indptr_"][-1] == len(fitted["members_"]):
                for name, value in fitted.items():
                    setattr(self, name, value)
                return self
        except Exception:  # noqa: BLE001 - not there yet, or damaged (a short zip, a missing array): fit again
            pass
        self.fit(vectors)
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            partial = path.with_name(f"{path.stem}.{os.getpid()}.partial.npz")
            np.savez(partial, **{name: getattr(self, name) for name in self.FITTED})
            os.replace(partial, path)
        except OSError:
            pass  # a read-only cache folder: fit on every start
        return self

    def members(self, cluster: int) -> np.ndarray:
        """Catalog indices of the cluster's items, closest to the centroid first."""
        return self.members_[self.member_indptr_[cluster]: self.member_indptr_[cluster + 1]]


def _assign(unit: np.ndarray, centroids: np.ndarray, chunk: int = 65_536) -> tuple[np.ndarray, np.ndarray]:
    """Nearest centroid by cosine per row (chunked matrix products): (labels, cosine)."""
    labels = np.empty(len(unit), dtype=np.int64)
    closeness = np.empty(len(unit), dtype=np.float32)
    for start in range(0, len(unit), chunk):
        scores = unit[start: start + chunk] @ centroids.T
        labels[start: start + chunk] = scores.argmax(axis=1)
        closeness[start: start + chunk] = scores.max(axis=1)
    return labels, closeness


def _recentre(unit: np.ndarray, labels: np.ndarray, centroids: np.ndarray,
              closeness: np.ndarray | None) -> np.ndarray:
    """Normalized member mean per cluster; an empty cluster moves to the worst-fitting point
    (when ``closeness`` is given) or keeps its centroid."""
    k = len(centroids)
    membership = sp.csr_matrix((np.ones(len(labels), dtype=np.float32), (labels, np.arange(len(labels)))),
                               shape=(k, len(labels)))
    sums = np.asarray(membership @ unit, dtype=np.float32)
    norms = np.linalg.norm(sums, axis=1)
    empty = norms <= 1e-12
    out = np.where(empty[:, None], centroids, sums / np.where(empty, 1.0, norms)[:, None]).astype(np.float32)
    if closeness is not None and empty.any():
        worst = np.argsort(closeness, kind="stable")[: int(empty.sum())]
        out[np.flatnonzero(empty)[: len(worst)]] = unit[worst]
    return out


def _kmeans_plus_plus(unit: np.ndarray, k: int, rng: np.random.Generator) -> np.ndarray:
    """k-means++ seeding with squared Euclidean distance on unit rows (= 2 - 2 cos)."""
    chosen = np.empty(k, dtype=np.int64)
    chosen[0] = rng.integers(len(unit))
    distance = np.maximum(2.0 - 2.0 * (unit @ unit[chosen[0]]), 0.0).astype(np.float64)
    for i in range(1, k):  # k steps, each one vectorized over the sample
        total = distance.sum()
        pick = rng.choice(len(unit), p=distance / total) if total > 0 else rng.integers(len(unit))
        chosen[i] = pick
        distance = np.minimum(distance, np.maximum(2.0 - 2.0 * (unit @ unit[pick]), 0.0))
    return unit[chosen].copy()


def cluster_titles(catalog: Catalog, clusters: ItemClusters, second_share: float = 0.2,
                   brand_share: float = 0.6) -> list[str]:
    """A title per cluster from its dominant categories and brand: "Running Shoes & Socks",
    "Coffee from Acme". The second category is named when it holds at least ``second_share`` of
    the members, the brand when one holds at least ``brand_share``."""
    k = len(clusters.centroids_)
    labels = clusters.labels_
    sizes = np.bincount(labels[labels >= 0], minlength=k)

    def counts(codes: np.ndarray, n_codes: int) -> sp.csr_matrix:
        ok = (labels >= 0) & (codes >= 0)
        return sp.csr_matrix((np.ones(int(ok.sum())), (labels[ok], codes[ok])), shape=(k, max(n_codes, 1)))

    by_category = counts(catalog.category, len(catalog.category_ids))
    by_brand = counts(catalog.brand, len(catalog.brands))
    titles: list[str] = []
    seen: set[str] = set()
    for c in range(k):  # build time, once per cluster
        row = by_category.getrow(c)
        order = row.indices[np.argsort(-row.data, kind="stable")]
        shares = np.sort(row.data)[::-1] / max(sizes[c], 1)
        names = [str(catalog.category_names[order[j]]) for j in range(min(2, len(order)))
                 if j == 0 or shares[j] >= second_share]
        title = " & ".join(names) if names else "Picks"
        brands = by_brand.getrow(c)
        top_brand = int(brands.indices[np.argmax(brands.data)]) if brands.nnz else -1
        if top_brand >= 0 and (brands.data.max() >= brand_share * sizes[c] or title in seen):
            title = f"{title} from {catalog.brands[top_brand]}"
        seen.add(title)
        titles.append(title)
    return titles


class ItemClustersSource:
    """The item clusters nearest to the user's taste, each as a collection (``cluster:<k>``) of its
    in-stock members ordered by ``max(closeness, 0) * log(e + popularity)``: closeness to the
    centroid decides among unknown items, popularity lifts the proven ones (log: a best-seller
    should not beat a close match by its raw count).

    Build once with :meth:`build` (fits the clustering) or from a fitted :class:`ItemClusters`.
    Cluster ids are stable for one fitted clustering only (refitting renumbers them).
    """

    name = "item_clusters"
    fail_open = True

    def __init__(self, catalog: Catalog, clusters: ItemClusters, n_collections: int = 6, pool_size: int = 100,
                 min_items: int = 4, titles: list[str] | None = None) -> None:
        if len(clusters.labels_) != len(catalog):
            raise ValueError(f"clusters cover {len(clusters.labels_)} items, the catalog has {len(catalog)}")
        self.catalog = catalog
        self.clusters = clusters
        self.n_collections = n_collections
        self.pool_size = pool_size
        self.min_items = min(min_items, pool_size)
        self.titles = titles if titles is not None else cluster_titles(catalog, clusters)
        non_empty = np.flatnonzero(np.diff(clusters.member_indptr_) > 0)
        self.index = VectorIndex().fit(clusters.centroids_[non_empty], ids=non_empty)
        self._ranked_members: dict[int, np.ndarray] = {}
        self._ranked_popularity: np.ndarray | None = None

    def _ranked(self, cluster: int) -> np.ndarray:
        """The cluster's members best first: closeness to the centroid times log popularity (ties
        keep the closest-first order). Computed once per cluster while the popularity stays."""
        if self._ranked_popularity is not self.catalog.popularity:
            self._ranked_members, self._ranked_popularity = {}, self.catalog.popularity
        ranked = self._ranked_members.get(cluster)
        if ranked is None:
            members = self.clusters.members(cluster)
            score = np.maximum(self.clusters.closeness_[members], 0.0) * np.log(np.e + self.catalog.popularity[members])
            ranked = members[np.argsort(-score, kind="stable")]
            self._ranked_members[cluster] = ranked
        return ranked

    @classmethod
    def build(cls, catalog: Catalog, item_vectors: np.ndarray, n_clusters: int, seed: int = 0,
              iterations: int = 20, sample_size: int = 50_000, cache_dir: Path | None = None,
              **params) -> ItemClustersSource:
        """Fit the clustering on the item vectors (rows = catalog indices) and build the source;
        with `cache_dir`, a fit of the same vectors saved there is loaded instead."""
        clusters = ItemClusters(n_clusters, iterations=iterations, sample_size=sample_size, seed=seed)
        return cls(catalog, clusters.fit_cached(item_vectors, cache_dir), **params)

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        if user.taste is None:
            return []
        return _collect(self.index, user.taste, self.n_collections, self._collection)

    def _collection(self, cluster: int, similarity: float) -> CandidateCollection | None:
        ranked = self._ranked(cluster)
        members = ranked[self.catalog.in_stock[ranked]]
        if len(members) < self.min_items:
            return None
        members = members[: self.pool_size]
        title = self.titles[cluster]
        return CandidateCollection(
            collection_id=f"cluster:{cluster}", title=title, source="ml", generator=self.name,
            items=members.astype(np.int64), reason=f"Picked for you: {title}",
            signals={"similarity": similarity, "cluster_size": float(len(self.clusters.members(cluster)))},
            prior=_prior(similarity),
        )
