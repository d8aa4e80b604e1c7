"""Scorers: the collection retrieval model and the item rankers, applied to hydrated features.

Both score at the top slot (row 0, position 0): collections are compared as if each stood
first, items as if each stood leftmost, so the learned position bias does not leak into
the ranking (the design's inference-at-position-0 rule).
"""

from __future__ import annotations

import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from shelfrank.arrays import group_sums, take_rows
from shelfrank.models.collection_retrieval import CollectionRetrievalModel
from shelfrank.models.compiled import TreePredictor
from shelfrank.models.item_ranker import FactorizedRanker, PositionFeatureRanker
from shelfrank.page.hydrate import HydratedFeatures


@dataclass(frozen=True)
class CollectionBatch:
    """Candidate collections as flat (collection, item) pairs: the first `m` items of each pool."""

    collection: np.ndarray  # (P,) index of the pair's collection
    item_row: np.ndarray  # (P,) index into the hydrated items
    n_collections: int


def group_means(X: np.ndarray, group: np.ndarray, n_groups: int) -> np.ndarray:
    """(n_groups, d) mean of the rows of each group (0 for an empty group): the rows grouped (a sort,
    skipped when they come grouped already) and summed group by group (`group_sums`)."""
    if len(group) > 1 and bool((group[1:] < group[:-1]).any()):
        order = np.argsort(group, kind="stable")
        g, rows = group[order], X[order]
    else:  # already grouped (pairs are made collection by collection): no sort, no copy
        g, rows = group, X
    counts = np.bincount(g, minlength=n_groups)
    out = group_sums(rows, counts) if len(g) else np.zeros((n_groups, X.shape[1]))
    return out / np.maximum(counts, 1)[:, None]


# A spread below this share of a feature's mean is the rounding of a constant, not a spread.
CONSTANT_SPREAD = 1e-9


class _LazyPredictor:
    """A booster's compiled predictor, made on first use: compiling costs seconds, and most variant
    rankers are never used by a service. `prepare()` compiles in the caller (engine start, hot swap);
    `get()` never waits for a compile on the request path: until the compiled code is ready (built
    in a background thread) it scores with LightGBM, which gives the same scores."""

    def __init__(self, booster, raw_score: bool, backend: str, cache_dir: Path | None) -> None:
        self._args = (booster, raw_score, backend, cache_dir)
        self._predictor: TreePredictor | None = None
        self._interim: TreePredictor | None = None
        self._lock = threading.Lock()
        self._compiling = False

    def prepare(self) -> TreePredictor:
        with self._lock:
            if self._predictor is None:
                booster, raw_score, backend, cache_dir = self._args
                self._predictor = TreePredictor(booster, raw_score=raw_score, backend=backend, cache_dir=cache_dir)
            return self._predictor

    def get(self) -> TreePredictor:
        if self._predictor is not None:
            return self._predictor
        with self._lock:
            if self._predictor is not None:
                return self._predictor
            booster, raw_score, backend, _ = self._args
            if backend != "compiled":
                self._predictor = TreePredictor(booster, raw_score=raw_score, backend=backend)
                return self._predictor
            if not self._compiling:
                self._compiling = True
                threading.Thread(target=self.prepare, name="shelfrank-compile-trees", daemon=True).start()
            if self._interim is None:
                self._interim = TreePredictor(booster, raw_score=raw_score, backend="lightgbm")
            return self._interim


class RetrievalScorer:
    """P(engage | user, collection, context) from the mean features of the collection's leading items."""

    name = "collection_retrieval"

    def __init__(self, model: CollectionRetrievalModel, backend: str = "compiled",
                 cache_dir: Path | None = None) -> None:
        self.model = model
        self._predictor = _LazyPredictor(model.booster_, False, backend, cache_dir)

    @property
    def predictor(self) -> TreePredictor:
        return self._predictor.get()

    def prepare(self) -> None:
        self._predictor.prepare()

    def score(self, features: HydratedFeatures, batch: CollectionBatch, n_items_shown: np.ndarray) -> np.ndarray:
        counts = np.bincount(batch.collection, minlength=batch.n_collections).astype(np.float64)
        # The mean of a collection's pair rows: its items' rows averaged, and its own columns as they
        # are (they are the same in each of its pairs).
        means = group_means(features.item_rows[batch.item_row], batch.collection, batch.n_collections)
        means[:, features.columns] = features.collection_columns
        design = np.zeros((batch.n_collections, means.shape[1] + 2), dtype=np.float32)
        design[:, : means.shape[1]] = means
        design[:, means.shape[1]] = n_items_shown
        scores = self.predictor.predict(design)
        return np.where(counts > 0, scores, -np.inf)


class RankerScorer:
    """A trained item ranker at position 0: expected funnel gain (position-feature ranker) or the
    relevance part P(engage | examined) (factorized ranker)."""

    def __init__(self, name: str, ranker: PositionFeatureRanker | FactorizedRanker, backend: str = "compiled",
                 cache_dir: Path | None = None) -> None:
        self.name = name
        self.ranker = ranker
        factorized = isinstance(ranker, FactorizedRanker)
        self._predictor = _LazyPredictor(ranker.booster_, factorized, backend, cache_dir)
        self._gain = ranker.booster_.feature_importance(importance_type="gain").astype(np.float64)

    @property
    def predictor(self) -> TreePredictor:
        return self._predictor.get()

    def prepare(self) -> None:
        self._predictor.prepare()

    @property
    def booster(self):
        return self.ranker.booster_

    def design(self, X: np.ndarray) -> np.ndarray:
        if isinstance(self.ranker, PositionFeatureRanker):  # slot features at 0: row 0, position 0
            design = np.zeros((len(X), X.shape[1] + len(self.ranker.position_features)), dtype=np.float32)
            design[:, : X.shape[1]] = X
            return design
        return np.asarray(X, dtype=np.float32)

    def score(self, X: np.ndarray) -> np.ndarray:
        """One thread: a page's few thousand rows finish before a thread pool would start paying off,
        and the service runs pages side by side."""
        if len(X) == 0:
            return np.zeros(0)
        raw = self.predictor.predict(self.design(X))
        if isinstance(self.ranker, FactorizedRanker):
            return 1.0 / (1.0 + np.exp(-(raw + self.ranker.base_score_)))
        return raw

    def contributions(self, X: np.ndarray, reference: np.ndarray, names: tuple[str, ...],
                      top: int = 3) -> list[dict[str, float]]:
        """The `top` signals that set each row apart: for every feature that varies among the page's
        candidates (`reference`) and has split gain, the row's standardized deviation from them,
        times the feature's share of the model's total split gain. Signed: positive = the item is
        above the page's typical value. Signals that round to 0 are left out; ties in strength
        keep the features' declaration order.

        Exact per-item SHAP values (LightGBM ``pred_contrib``) cost about 2 ms per item with
        these models, too much on the request path; this ranks the same strong signals for
        a few microseconds per item. Slot features (row, position) are not signals: they are
        fixed at inference.
        """
        if len(X) == 0:
            return []
        gain = self._gain[: len(names)]  # the named features only: slot features are not signals
        share = gain / gain.sum() if gain.sum() > 0 else gain
        # A feature equal on every candidate (the user's and the context's) sets no item apart; left in,
        # its rounding-level spread would turn into a large z-score. Dropping it also halves the work.
        varying = np.flatnonzero((reference != reference[:1]).any(axis=0) & (share > 0))
        reference, X, share = reference[:, varying], X[:, varying], share[varying]
        label_of = np.asarray(names, dtype=object)[varying]
        finite = np.isfinite(reference)
        if finite.all():  # the usual case: three passes instead of eight
            mean = reference.mean(axis=0)
            centered = reference - mean
            std = np.sqrt(np.einsum("ij,ij->j", centered, centered) / len(reference))
        else:
            count = np.maximum(finite.sum(axis=0), 1)
            mean = np.where(finite, reference, 0.0).sum(axis=0) / count
            std = np.sqrt(np.where(finite, (reference - mean) ** 2, 0.0).sum(axis=0) / count)
        spread = std > CONSTANT_SPREAD * np.abs(mean)  # not a constant (with missing values) read through rounding
        scale = np.where(spread, share / np.where(spread, std, 1.0), 0.0)  # z-score times gain share
        weight = (X - mean) * scale
        nan = np.isnan(weight)  # a missing value: no signal
        if nan.any():
            weight[nan] = 0.0
        if np.isinf(weight).any():  # as np.nan_to_num (its wrapper costs ~50 us a call here)
            weight = np.nan_to_num(weight)
        order = _strongest(np.abs(weight), top)
        picked = np.round(take_rows(weight, order), 4)
        labels = label_of[order]
        # Signals that round to 0 say nothing and are left out; sorted by strength, they are the last
        # ones of their row, so rows are grouped by how many signals they keep.
        kept = (picked != 0.0).sum(axis=1)
        if (kept == picked.shape[1]).all():
            if picked.shape[1] == 3:  # the default: dict displays build 2x faster than dict(zip(...))
                return [{a: x, b: y, c: z}
                        for (a, b, c), (x, y, z) in zip(labels.tolist(), picked.tolist(), strict=True)]
            return list(map(dict, map(zip, labels.tolist(), picked.tolist())))
        out: list[dict[str, float]] = [{} for _ in range(len(X))]
        for k in range(1, picked.shape[1] + 1):
            rows = np.flatnonzero(kept == k)
            if len(rows):
                for i, d in zip(rows.tolist(), map(dict, map(zip, labels[rows, :k].tolist(),
                                                                picked[rows, :k].tolist())), strict=True):
                    out[i] = d
        return out


def _strongest(strength: np.ndarray, top: int) -> np.ndarray:
    """(rows, min(top, columns)) column indices of each row's largest values, largest first, ties in
    column order: what a stable descending argsort gives, by `top` argmax passes instead of a sort."""
    n, width = strength.shape
    k = min(top, width)
    out = np.empty((n, k), dtype=np.int64)
    if k == 0 or n == 0:
        return out
    left = strength.copy()
    rows = np.arange(n)
    for j in range(k):
        out[:, j] = best = left.argmax(axis=1)
        left[rows, best] = -np.inf
    return out


class PopularityScorer:
    """Baseline and fallback: log of the item's decayed funnel-weighted popularity."""

    name = "popularity"

    def __init__(self, popularity: np.ndarray) -> None:
        self.popularity = popularity

    def score_items(self, items: np.ndarray) -> np.ndarray:
        return np.log1p(self.popularity[items])
