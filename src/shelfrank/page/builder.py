"""The page runner: one request through a pipeline declaration, stage by stage, timed.

    context -> sources -> first pass -> retrieval -> item ranking -> rules (stock, images)
    -> diversity -> ordering -> rules (dedupe, thin, similar, pinned) -> cut to size
    -> exploration -> explanations

Every stage is vectorized over the whole page (all collections' items in one feature read
and one model call); the only Python loops run over rows (tens), never over items.
"""

from __future__ import annotations

import hashlib
import math
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC

import numpy as np

from shelfrank.arrays import in_sorted, prefix_cells, unique_inverse, unique_sorted
from shelfrank.candidates.base import CandidateCollection, CollectionSource, UserContext
from shelfrank.candidates.first_pass import first_pass
from shelfrank.contracts import PageRequest
from shelfrank.page.cache import SegmentCache
from shelfrank.page.diversify import AttributeSimilarity, DPPDiversifier, EmbeddingSimilarity, MMRDiversifier
from shelfrank.page.explore import explore_slots, slots_after
from shelfrank.page.hydrate import FeatureHydrator
from shelfrank.page.order import OrderByMarginalGain, OrderByTopKMean
from shelfrank.page.pipeline import PagePipeline
from shelfrank.page.result import CollectionRow, ItemSlot, Page
from shelfrank.page.rules import (
    DedupeItemsAcrossPage,
    DemoteMissingImages,
    DropJustCarted,
    DropOutOfStock,
    DropSimilarCollections,
    DropThinCollections,
    InsertPinnedCollections,
)
from shelfrank.page.scorers import CollectionBatch, PopularityScorer, RankerScorer, RetrievalScorer
from shelfrank.page.slate import Slate
from shelfrank.store.catalog import Catalog
from shelfrank.store.history import ADD_TO_CART, PURCHASE

DAY = 86_400.0
SLACK_ITEMS = 6  # diversity picks this many more than shown, so page-wide dedupe rarely thins a row


@dataclass
class PageModels:
    """What the models part of a page needs; None members switch their stages to baselines."""

    version: str = ""
    rankers: Mapping[str, RankerScorer] = field(default_factory=dict)
    default_ranker: str = ""
    retrieval: RetrievalScorer | None = None
    examination_grid: np.ndarray | None = None  # (rows, positions) for marginal-gain ordering
    item_vectors: np.ndarray | None = None  # (n_items, d) unit vectors, catalog order

    def prepare(self) -> None:
        """Compile the models the default pipeline scores with now, not on the first request."""
        ranker = self.rankers.get(self.default_ranker)
        for scorer in (ranker, self.retrieval):
            if scorer is not None:
                scorer.prepare()  # compiles, or loads the cached code


@dataclass
class PageResources:
    catalog: Catalog
    hydrator: FeatureHydrator | None
    sources: Mapping[str, CollectionSource]
    models: PageModels
    user_context: Callable[[PageRequest], UserContext]
    cache: SegmentCache | None = None


@dataclass
class _Prepared:
    """What the deterministic stages produced: enough to explore, cut and explain a page."""

    slate: Slate
    pool: Slate
    chosen: list[CandidateCollection]
    by_id: dict[str, tuple[CandidateCollection, float, float]]
    ranker: RankerScorer | None
    ranker_name: str
    pair_features: np.ndarray | None
    rows_idx: np.ndarray
    cols_idx: np.ndarray
    rule_counts: Counter


class _Clock:
    def __init__(self) -> None:
        self.timings: dict[str, float] = {}
        self._start = self._last = time.perf_counter()

    def lap(self, stage: str) -> None:
        now = time.perf_counter()
        self.timings[stage] = self.timings.get(stage, 0.0) + (now - self._last) * 1e3
        self._last = now

    def total(self) -> dict[str, float]:
        out = {k: round(v, 3) for k, v in self.timings.items()}
        out["total"] = round((time.perf_counter() - self._start) * 1e3, 3)
        return out


def request_seed(request: PageRequest, pipeline: str) -> tuple[int, str]:
    """A seed and a request id that depend only on the request (a page is deterministic)."""
    key = f"{request.user_id}|{request.at.astimezone(UTC).isoformat()}|{request.location}|{request.surface}|" \
          f"{request.rows}|{request.items}|{request.session_id}|{request.seed}|{pipeline}"
    digest = hashlib.blake2b(key.encode(), digest_size=16).digest()
    return int.from_bytes(digest[:8], "little"), digest.hex()


def build_page(resources: PageResources, pipeline: PagePipeline, request: PageRequest,
               fallback_reason: str = "") -> Page:
    clock = _Clock()
    cat = resources.catalog
    seed, request_id = request_seed(request, pipeline.name)
    rng = np.random.default_rng(seed)

    user = resources.user_context(request)
    clock.lap("context")

    key = resources.cache.key(request, pipeline, user) if resources.cache is not None else None
    prepared = resources.cache.get(key) if key is not None else None
    if prepared is None:
        prepared = _prepare(resources, pipeline, request, user, clock)
        if key is not None:
            resources.cache.put(key, prepared)
    else:
        clock.lap("cache")
    rule_counts = Counter(prepared.rule_counts)

    shown = _explore_and_cut(prepared.slate, prepared.pool, prepared.chosen, pipeline, request, user.t, cat, rng)
    clock.lap("exploration")
    rows = _explain(shown, prepared.by_id, cat, prepared.ranker, prepared.pair_features,
                    prepared.pool, prepared.rows_idx, prepared.cols_idx, user, pipeline)
    clock.lap("explain")
    ranker_name = prepared.ranker_name
    return Page(
        request_id=request_id, user_id=request.user_id, at=request.at.astimezone(UTC).isoformat(),
        surface=request.surface, location=user.location, rows=tuple(rows),
        model_version=resources.models.version if ranker_name != "popularity" else "",
        pipeline=pipeline.name, new_user=not user.known, fallback=bool(fallback_reason),
        fallback_reason=fallback_reason, timings_ms=clock.total(),
        rule_counts={k: int(v) for k, v in sorted(rule_counts.items()) if v},
    )


def _prepare(resources: PageResources, pipeline: PagePipeline, request: PageRequest, user: UserContext,
             clock: _Clock) -> _Prepared:
    """Every deterministic stage: sources to page rules. The result depends on the request's user
    context, not on the request's random draws (exploration comes after)."""
    cat = resources.catalog
    rule_counts: Counter = Counter()
    # --- sources (fail-open ones are traced and skipped) ---------------------------------
    candidates: list[CandidateCollection] = []
    names = pipeline.sources if pipeline.sources is not None else tuple(resources.sources)
    for name in names:
        source = resources.sources.get(name)
        if source is None:
            continue
        try:
            candidates.extend(source.propose(user))
        except Exception:
            if not source.fail_open:
                raise
            rule_counts[f"source_failed:{name}"] += 1
    clock.lap("sources")

    vectors = resources.models.item_vectors
    kept, first_scores, removed = first_pass(candidates, cat.in_stock, pipeline.max_candidates, pipeline.min_items,
                                             user.taste, vectors)
    rule_counts.update(removed)
    clock.lap("first_pass")

    context = {"surface": request.surface, "location": user.location, "session_id": request.session_id}
    hydrator = resources.hydrator
    retrieval_scores = np.full(len(kept), np.nan)
    n_keep = int(np.ceil(request.rows * pipeline.keep_per_row)) + 2
    use_retrieval = pipeline.retrieval and resources.models.retrieval is not None and hydrator is not None
    reads = hydrator.for_request(user.user_id, user.t, context) if hydrator is not None else None
    if use_retrieval and len(kept) > 0:
        leading = [c.items[: pipeline.retrieval_items] for c in kept]
        flat = np.concatenate(leading)
        unique, item_row = unique_inverse(flat)
        owner = np.repeat(np.arange(len(kept)), [len(x) for x in leading])
        feats = reads.hydrate(unique, cat.item_ids, [c.collection_id for c in kept])
        shown = np.minimum([len(c.items) for c in kept], request.items).astype(np.float64)
        retrieval_scores = resources.models.retrieval.score(feats, CollectionBatch(owner, item_row, len(kept)), shown)
        order_value = retrieval_scores
    else:
        order_value = first_scores
    pinned = np.asarray([c.pinned_row >= 0 for c in kept], dtype=bool)
    order = np.lexsort((-order_value, ~pinned))[: max(n_keep, int(pinned.sum()))] if len(kept) else np.zeros(0, int)
    chosen = [kept[i] for i in order]
    chosen_retrieval = retrieval_scores[order] if len(kept) else np.zeros(0)
    chosen_first = first_scores[order] if len(kept) else np.zeros(0)
    rule_counts["retrieval_cut"] += len(kept) - len(chosen)
    clock.lap("retrieval")

    # --- item ranking: every chosen collection's pool in one feature read and one model call ---
    slate = _pool_slate(chosen, pipeline.item_pool)
    ranker_name = resources.models.default_ranker if pipeline.ranker == "default" else pipeline.ranker
    ranker = resources.models.rankers.get(ranker_name)
    rows_idx, cols_idx = prefix_cells((slate.items >= 0).sum(axis=1))  # pools are row prefixes
    pair_items = slate.items[rows_idx, cols_idx]
    pair_features = None
    if ranker is not None and reads is not None and len(pair_items):
        unique, item_row = unique_inverse(pair_items)
        feats = reads.hydrate(unique, cat.item_ids, [c.collection_id for c in chosen])
        pair_features = feats.pairs(rows_idx, item_row)
        pair_scores = ranker.score(pair_features)
    else:
        ranker_name = "popularity"
        pair_scores = PopularityScorer(cat.popularity).score_items(pair_items)
    scores = np.full(slate.items.shape, -np.inf)
    scores[rows_idx, cols_idx] = pair_scores
    slate = Slate(slate.collection_ids, slate.items, scores, slate.collection_scores, slate.pinned_rows)
    pool = slate  # before diversity: the exploration's eligible items come from here
    clock.lap("ranking")

    slate = DropOutOfStock(cat.in_stock).apply(slate)
    slate = DropJustCarted(_just_carted(user)).apply(slate)
    slate = DemoteMissingImages(cat.has_image, remove=pipeline.remove_no_image).apply(slate)
    clock.lap("rules")

    # --- diversity inside each row -----------------------------------------------------------
    k = min(request.items + SLACK_ITEMS, slate.items.shape[1]) if slate.items.shape[1] else 0
    if pipeline.diversity != "none" and k > 0:
        picks = _diversify(slate, pipeline, cat, vectors, k)
    else:
        picks = np.argsort(-slate.scores, axis=1, kind="stable")[:, :k]
    slate = _select(slate, picks)
    clock.lap("diversity")

    # --- vertical order, then the page-level rules --------------------------------------------
    if pipeline.ordering == "marginal_gain" and resources.models.examination_grid is not None:
        slate = OrderByMarginalGain(resources.models.examination_grid, cat.category, cat.brand,
                                    visible=request.items).apply(slate)
    else:
        slate = OrderByTopKMean(pipeline.top_k).apply(slate)
    clock.lap("ordering")
    if pipeline.dedupe_items:
        slate = DedupeItemsAcrossPage(visible=request.items).apply(slate)
        slate = _refill(slate, pool, request.items, cat.in_stock)
    slate = DropThinCollections(pipeline.min_items).apply(slate)
    slate = DropSimilarCollections(cat.category, pipeline.max_collection_similarity, request.items).apply(slate)
    slate = InsertPinnedCollections().apply(slate)
    for trace in slate.trace:
        rule_counts.update(trace.removed)
        if trace.demoted:
            rule_counts[trace.stage.replace("demote_", "demoted_")] += trace.demoted
    clock.lap("rules")
    by_id = {c.collection_id: (c, chosen_retrieval[i], chosen_first[i]) for i, c in enumerate(chosen)}
    return _Prepared(slate, pool, chosen, by_id, ranker if ranker_name != "popularity" else None, ranker_name,
                     pair_features, rows_idx, cols_idx, rule_counts)


CART_MEMORY_HOURS = 24.0


def _just_carted(user: UserContext) -> np.ndarray:
    """Items the user added to the cart or bought in the last day: not pushed again on the page
    (buying again comes later, through the buy-again source's own delay)."""
    h = user.history
    if not len(h):
        return np.zeros(0, dtype=np.int64)
    recent = (h.events >= ADD_TO_CART) & (h.ts >= user.t - CART_MEMORY_HOURS * 3_600.0)
    return np.asarray(h.items[recent], dtype=np.int64)


def _pool_slate(chosen: list[CandidateCollection], item_pool: int) -> Slate:
    pools = [c.items[:item_pool] for c in chosen]
    lengths = np.asarray([len(p) for p in pools], dtype=np.int64)
    n = int(lengths.max(initial=0))
    items = np.full((len(chosen), n), -1, dtype=np.int64)
    if n:  # each row's pool is a prefix of it: one scatter of them all
        items[np.arange(n)[None, :] < lengths[:, None]] = np.concatenate(pools)
    return Slate(
        collection_ids=np.asarray([c.collection_id for c in chosen], dtype=object), items=items,
        scores=np.where(items >= 0, 0.0, -np.inf), collection_scores=np.zeros(len(chosen)),
        pinned_rows=np.asarray([c.pinned_row for c in chosen], dtype=np.int64),
    )


def _diversify(slate: Slate, pipeline: PagePipeline, cat: Catalog, vectors: np.ndarray | None, k: int) -> np.ndarray:
    safe = np.maximum(slate.items, 0)
    if pipeline.similarity == "embeddings" and vectors is not None:
        similarity = EmbeddingSimilarity(vectors[safe])
    else:
        codes = np.stack([cat.category[safe], cat.brand[safe], cat.category[safe] * 8 + cat.price_band[safe]], axis=-1)
        similarity = AttributeSimilarity(np.where(slate.items[..., None] >= 0, codes, -1))
    cls = MMRDiversifier if pipeline.diversity == "mmr" else DPPDiversifier
    return cls(pipeline.diversity_strength).select(slate.scores, similarity, k)


def _select(slate: Slate, picks: np.ndarray) -> Slate:
    """Keep the picked candidates, in pick order: `scores` becomes a display order (non-increasing
    along the picks), `relevance` keeps the ranker's scores."""
    rows = np.arange(len(picks))[:, None]
    ok = picks >= 0
    safe = np.maximum(picks, 0)
    items = np.where(ok, slate.items[rows, safe], -1)
    relevance = np.where(ok, slate.relevance[rows, safe], -np.inf)
    picked_scores = np.where(ok, slate.scores[rows, safe], -np.inf)
    # Display order = pick order: a strictly decreasing key that keeps the pick sequence.
    display = np.where(np.isfinite(picked_scores), -np.arange(picks.shape[1], dtype=np.float64)[None, :], -np.inf)
    return Slate(slate.collection_ids, items, display, slate.collection_scores, slate.pinned_rows, slate.trace,
                 relevance)


def _refill(slate: Slate, pool: Slate, width: int, in_stock: np.ndarray) -> Slate:
    """Rows that the page-wide dedupe left short take their next best pool items not yet on the page,
    appended after their shown items (a row keeps its diversified head)."""
    live = np.flatnonzero(slate.live_collections)
    counts = slate.valid.sum(axis=1)
    short = live[counts[live] < width]
    if not len(short):
        return slate
    at = (np.arange(len(slate.items))[:, None], slate.display_order[:, :width])
    on_page = unique_sorted(slate.items[at][live][slate.valid[at][live]])
    # Every short row's pool in the pool's display order, and which of its items could still come in.
    rows = np.asarray([pool.row_of[str(cid)] for cid in slate.collection_ids[short].tolist()], dtype=np.int64)
    slots = pool.display_order[rows]
    at = (rows[:, None], slots)
    candidates = pool.items[at]
    usable = (candidates >= 0) & np.isfinite(pool.scores[at])
    usable &= in_stock[np.maximum(candidates, 0)]
    usable &= ~in_sorted(candidates.ravel(), on_page).reshape(candidates.shape)
    extra_items, extra_rel, extra_rows = [], [], []
    taken: set[int] = set()  # items an earlier short row took
    for i in np.flatnonzero(usable.any(axis=1)).tolist():  # short rows whose pool has something left
        c = int(short[i])
        picks = [k for k in np.flatnonzero(usable[i]).tolist() if int(candidates[i, k]) not in taken]
        picks = np.asarray(picks[: width - int(counts[c])], dtype=np.int64)
        add = candidates[i, picks]
        taken.update(add.tolist())
        extra_items.append(add)
        extra_rel.append(pool.relevance[rows[i], slots[i, picks]])
        extra_rows.append(c)
    n_extra = max((len(x) for x in extra_items), default=0)
    if n_extra == 0:
        return slate
    C, n = slate.items.shape
    items = np.concatenate([slate.items, np.full((C, n_extra), -1, dtype=np.int64)], axis=1)
    scores = np.concatenate([slate.scores, np.full((C, n_extra), -np.inf)], axis=1)
    relevance = np.concatenate([slate.relevance, np.full((C, n_extra), -np.inf)], axis=1)
    for c, add, rel in zip(extra_rows, extra_items, extra_rel, strict=True):
        floor = np.min(scores[c][np.isfinite(scores[c])], initial=0.0)
        items[c, n: n + len(add)] = add
        scores[c, n: n + len(add)] = floor - 1.0 - np.arange(len(add))
        relevance[c, n: n + len(add)] = rel
    return Slate(slate.collection_ids, items, scores, slate.collection_scores, slate.pinned_rows, slate.trace,
                 relevance)


@dataclass
class _Shown:
    """The page as shown, after exploration and the cut: (R, W) matrices whose row r holds its
    first lengths[r] slots (the rest is padding), so explanations read them without a loop."""

    collection_ids: list[str]
    items: np.ndarray  # (R, W) int64 catalog indices
    relevance: np.ndarray  # (R, W) the ranker's scores; NaN for an item placed by exploration
    explored: np.ndarray  # (R, W) bool: placed by exploration
    propensity: np.ndarray  # (R, W) P(this item at this slot), its row's propensity included
    lengths: np.ndarray  # (R,)
    row_propensity: list[float]
    explored_row: list[bool]
    scores: list[float]  # each row's ordering score

    @property
    def mask(self) -> np.ndarray:
        return np.arange(self.items.shape[1])[None, :] < self.lengths[:, None]


def _explore_and_cut(slate: Slate, pool: Slate, chosen: list[CandidateCollection], pipeline: PagePipeline,
                     request: PageRequest, t: float, cat: Catalog, rng: np.random.Generator) -> _Shown:
    live = np.flatnonzero(slate.live_collections)
    shown_rows = live[: request.rows]
    created = {c.collection_id: c.created_t for c in chosen}
    new_rows = np.asarray([c for c in live[request.rows:].tolist()
                           if t - created.get(str(slate.collection_ids[c]), -np.inf) < pipeline.new_item_days * DAY],
                          dtype=np.int64)
    placement = explore_slots(shown_rows, new_rows, pipeline.explore_collections,
                              min(pipeline.explore_first_row, max(len(shown_rows) - 1, 0)), rng)
    rows = np.asarray(placement.shown, dtype=np.int64)
    collection_ids = [str(c) for c in slate.collection_ids[rows].tolist()]
    # Every shown row's first `items` slots in display order, as (R, items) matrices: valid slots
    # come first (removed ones are -inf, sorted last).
    order = slate.display_order[rows, : request.items]
    at = (rows[:, None], order)
    items, relevance = slate.items[at], slate.relevance[at]  # copies (fancy indexing): changed in place below
    lengths = slate.valid[at].sum(axis=1)
    explored = np.zeros(items.shape, dtype=bool)
    propensity = np.ones(items.shape)
    if pipeline.explore_items > 0 and len(rows):
        _explore_items(items, relevance, explored, propensity, lengths, rows, collection_ids, pool, pipeline, t, cat,
                       rng)
    propensity *= placement.propensity[:, None]
    return _Shown(collection_ids, items, relevance, explored, propensity, lengths, placement.propensity.tolist(),
                  placement.explored.tolist(), slate.collection_scores[rows].astype(np.float64).tolist())


def _explore_items(items: np.ndarray, relevance: np.ndarray, explored: np.ndarray, propensity: np.ndarray,
                   lengths: np.ndarray, rows: np.ndarray, collection_ids: list[str], pool: Slate,
                   pipeline: PagePipeline, t: float, cat: Catalog, rng: np.random.Generator) -> None:
    """Per row, with probability epsilon, one visible slot goes to a new in-stock item of the row's pool
    that is not on the page yet (explore.py has the rule and its propensities). Works in place on
    the shown matrices: one draw per row at once, propensities of the rows that could explore set as
    one matrix; only rows that do explore (a few percent) take a step of their own."""
    epsilon = pipeline.explore_items
    width = items.shape[1]
    valid = np.arange(width)[None, :] < lengths[:, None]
    on_page = unique_sorted(items[valid])
    # Items exploration may place in a row: its pool's new, in-stock items not yet on the page.
    candidates = pool.items[np.asarray([pool.row_of[c] for c in collection_ids], dtype=np.int64)]
    safe = np.maximum(candidates, 0)
    eligible = (candidates >= 0) & (t - cat.created_t[safe] < pipeline.new_item_days * DAY) & cat.in_stock[safe]
    eligible &= ~in_sorted(candidates.ravel(), on_page).reshape(candidates.shape)
    first = np.minimum(pipeline.explore_first_position, np.maximum(lengths - 1, 0))
    draws = rng.random(len(rows))  # whether each row explores
    can = (lengths - first > 0) & eligible.any(axis=1)
    # A row that could explore keeps each item at its place with (1 - eps) + eps * P(slot > q).
    propensity[can] = (1.0 - epsilon) + epsilon * slots_after(lengths, first, width)[can]
    exploring = np.flatnonzero(can & (draws < epsilon))
    if not len(exploring):
        return
    placed: list[int] = []  # items explored into rows above: no longer eligible below
    for r in range(int(exploring[0]), len(rows)):
        if not can[r]:
            continue
        pickable = candidates[r][eligible[r]]
        if placed:
            pickable = pickable[~in_sorted(pickable, np.sort(np.asarray(placed, dtype=np.int64)))]
        k = int(lengths[r])
        if len(pickable) == 0:  # its only new items went into rows above
            propensity[r, :k] = 1.0
            continue
        if draws[r] >= epsilon:
            continue
        place = explore_slots(items[r, :k], pickable, epsilon, int(first[r]), rng, float(draws[r]))
        rel = np.full(k, np.nan)
        rel[~place.explored] = relevance[r, : k - 1]
        items[r, :k], relevance[r, :k], explored[r, :k], propensity[r, :k] = place.shown, rel, place.explored, \
            place.propensity
        placed.append(int(place.shown[place.slot]))


_BADGES = tuple(tuple(b for b, on in zip(("new", "explore", "bought before"), (code & 1, code & 2, code & 4),
                                         strict=True) if on) for code in range(8))
EXPLORED_REASON = "New: shown to learn how it does"
BOUGHT_REASON = "You bought this before"


def _explain(shown: _Shown, by_id: Mapping[str, tuple[CandidateCollection, float, float]], cat: Catalog,
             ranker: RankerScorer | None, pair_features: np.ndarray | None, pool: Slate, rows_idx: np.ndarray,
             cols_idx: np.ndarray, user: UserContext, pipeline: PagePipeline) -> list[CollectionRow]:
    """The page's rows with every shown item's display fields, reason, badges and top signals.
    Built as columns over the whole page (numpy, then one list per field) and zipped into the
    slots in one pass: no per-item Python beyond the slot's construction."""
    mask = shown.mask
    shown_rows, positions = prefix_cells(shown.lengths)  # row-major: the page in reading order
    lengths = shown.lengths.tolist()
    n = len(shown_rows)
    idx = shown.items[mask].astype(np.int64, copy=False)
    explored = shown.explored[mask]
    # Top signals of the ranked (not explored) shown items: one call for the whole page.
    signals: list[dict[str, float]] | None = None
    if ranker is not None and pair_features is not None and n:
        # Locate each shown (collection, item) among the scored pairs: sort the pair keys once.
        width = np.int64(len(cat) + 1)
        pair_key = rows_idx.astype(np.int64) * width + pool.items[rows_idx, cols_idx]
        order = np.argsort(pair_key, kind="stable")
        sorted_keys = pair_key[order]
        wanted = np.asarray([pool.row_of[c] for c in shown.collection_ids], dtype=np.int64)[shown_rows] * width + idx
        pos = np.minimum(np.searchsorted(sorted_keys, wanted), len(order) - 1)
        found = (sorted_keys[pos] == wanted) & ~explored
        names = tuple(ranker.ranker.feature_names_[: pair_features.shape[1]])
        values = ranker.contributions(pair_features[order[pos[found]]], pair_features, names)
        if found.all():
            signals = values
        else:
            signals = [{} for _ in range(n)]
            for j, v in zip(np.flatnonzero(found).tolist(), values, strict=True):
                signals[j] = v
    if signals is None:
        signals = [{} for _ in range(n)]
    bought = np.sort(user.history.items[user.history.events == PURCHASE]) if len(user.history) \
        else np.zeros(0, np.int64)
    new = user.t - cat.created_t[idx] < pipeline.new_item_days * DAY
    was_bought = in_sorted(idx, bought)
    badge_code = new.astype(np.int64) + 2 * explored + 4 * was_bought
    cands = [by_id[c][0] for c in shown.collection_ids]
    # Each item takes its row's reason, except the few explored or bought before (patched in place).
    row_reasons = [c.reason for c in cands]
    reasons = [row_reasons[r] for r in shown_rows.tolist()]
    for j in np.flatnonzero(explored | was_bought).tolist():
        reasons[j] = EXPLORED_REASON if explored[j] else BOUGHT_REASON
    # Badges likewise: most items have none.
    badges: list[tuple[str, ...]] = [()] * n
    for j in np.flatnonzero(badge_code).tolist():
        badges[j] = _BADGES[badge_code[j]]
    relevance = shown.relevance[mask]
    propensity = shown.propensity[mask]
    columns = (
        cat.item_ids[idx].tolist(),
        positions.tolist(),
        np.round(np.where(np.isfinite(relevance), relevance, 0.0), 6).tolist(),
        np.round(propensity, 6).tolist(),
        cat.titles[idx].tolist(),
        cat.item_brand_names[idx].tolist(),
        cat.item_category_ids[idx].tolist(),
        cat.item_category_names[idx].tolist(),
        np.round(cat.price[idx], 2).tolist(),
        cat.image_urls[idx].tolist(),
        cat.has_image[idx].tolist(),
        explored.tolist(),
        badges,
        reasons,
        signals,
    )
    slots = list(map(ItemSlot, *columns))
    out: list[CollectionRow] = []
    start = 0
    for r, (cid, cand, length, score, explored_row, row_p) in enumerate(zip(
            shown.collection_ids, cands, lengths, shown.scores, shown.explored_row, shown.row_propensity,
            strict=True)):
        _, retrieval, first = by_id[cid]
        retrieval = float(retrieval)
        row_signals = {**{k: float(v) for k, v in cand.signals.items()}, "prior": round(float(cand.prior), 4),
                       "first_pass": round(float(first), 4)}
        finite = math.isfinite(retrieval)
        if finite:
            row_signals["retrieval"] = round(retrieval, 6)
        out.append(CollectionRow(
            collection_id=cid, title=cand.title, source=cand.source, generator=cand.generator, row=r,
            score=round(score, 6) if math.isfinite(score) else 0.0,
            reason="New collection: shown to learn how it does" if explored_row else cand.reason,
            items=tuple(slots[start: start + length]),
            retrieval_score=round(retrieval, 6) if finite else None,
            explore=explored_row, pinned=cand.pinned_row >= 0, propensity=round(row_p, 6),
            signals=row_signals,
        ))
        start += length
    return out
