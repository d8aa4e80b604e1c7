"""The homepage engine: the page pipeline plus the state it reads, behind one small surface.

The CLI (`shelfrank page`), the evaluation and the HTTP service all use this class:

    engine = HomepageEngine.from_store(con, models_dir)
    page = engine.build(PageRequest(user_id="u1", at=now))        # -> Page
    engine.apply_events(events)        # Arrow table, EVENTS contract, already validated
    engine.apply_inventory(updates)    # Arrow table, INVENTORY contract
    engine.upsert_items(items)         # Arrow table, ITEMS contract (new items, price, image, stock)
    engine.upsert_collection(definition) / engine.delete_collection(collection_id)
    engine.load_models(version)        # hot swap; on failure the old models keep serving

Every method is safe to call from several threads: mutations and page builds share one
re-entrant lock, and a model swap loads outside it and replaces the reference in one step.
"""

from __future__ import annotations

import threading
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from shelfrank.candidates.base import CollectionSource, UserContext
from shelfrank.candidates.popular import PopularCategoriesSource
from shelfrank.contracts import PageRequest
from shelfrank.errors import UserFacingError
from shelfrank.features.online import InMemoryFeatureState
from shelfrank.models.artifacts import list_versions
from shelfrank.page.builder import PageModels, PageResources, build_page
from shelfrank.page.cache import SegmentCache
from shelfrank.page.hydrate import FeatureHydrator
from shelfrank.page.pipeline import PagePipeline, configured_default, pipelines_from
from shelfrank.page.result import Page
from shelfrank.page.scorers import RankerScorer, RetrievalScorer
from shelfrank.store.catalog import Catalog, CuratedDefinition, curated_definitions
from shelfrank.store.history import UserHistory

# Measured on ground truth at small and standard scale (docs/training.md): position-as-feature
# is ahead of the factorized ranker by a margin inside the confidence interval.
DEFAULT_RANKER = "position_feature"


class HomepageEngine:
    def __init__(self, catalog: Catalog, features: InMemoryFeatureState | None, models: PageModels,
                 definitions: list[CuratedDefinition], models_dir: Path | None = None,
                 history_state: object | None = None, category_repeat_rate: np.ndarray | None = None,
                 page_config=None, cache_entries: int = 256) -> None:
        self._lock = threading.RLock()
        self._pipelines = pipelines_from(configured_default(page_config))
        self._page_config = page_config
        self.catalog = catalog
        self.features = features
        self.models = models
        self.models_dir = models_dir
        self.history_state = history_state
        self._definitions = {d.collection_id: d for d in definitions}
        self.cache = SegmentCache(max_entries=cache_entries)  # 0 disables it
        self._hydrator: FeatureHydrator | None = None  # made once per feature state (and feature space)
        self.category_repeat_rate = category_repeat_rate
        self.sources: dict[str, CollectionSource] = {}
        self._share_item_vectors(models)
        self._build_sources()

    def _share_item_vectors(self, models: PageModels) -> None:
        """The feature state's catalog vectors and the models' item vectors are usually the same
        embedding rows in the same catalog order: keep one array, so that a page's random reads of
        an item's vector (first pass, similarity features) touch the same memory, and the engine
        holds one copy (96 MB at standard scale) instead of two. Only equal arrays are swapped (a
        reference assignment), so it needs no lock: pages read the same values either way."""
        vectors, features = models.item_vectors, self.features
        if vectors is None or features is None:
            return
        mine = features.catalog_vectors
        if mine is not vectors and mine.shape == vectors.shape and mine.dtype == vectors.dtype \
                and np.array_equal(mine, vectors):
            features.catalog_vectors = vectors

    # --- construction -------------------------------------------------------------------

    @classmethod
    def from_store(cls, con: duckdb.DuckDBPyConnection, models_dir: Path, as_of: datetime | None = None,
                   require_models: bool = True, page_config=None, cache_entries: int = 256) -> HomepageEngine:
        """The engine over the store's catalog and events (before `as_of`), with the LATEST models;
        `page_config` (config.PageConfig) sets the default pipeline the variants derive from."""
        catalog = Catalog.from_store(con, as_of)
        definitions = curated_definitions(con)
        models, space = load_page_models(models_dir, require=require_models, **_tree_options(page_config))
        models.prepare()
        features = None
        if space is not None:
            features = InMemoryFeatureState(space, con.sql("SELECT * FROM items").to_arrow_table(),
                                            con.sql("SELECT * FROM users").to_arrow_table(),
                                            con.sql("SELECT * FROM collections").to_arrow_table())
        if features is not None:
            for batch in _event_batches(con, as_of):
                features.update(batch)
        history = _history_state(con, catalog, as_of)
        return cls(catalog, features, models, definitions, models_dir, history, _repeat_rates(con, catalog, as_of),
                   page_config, cache_entries)

    def _build_sources(self) -> None:
        cat = self.catalog
        category_collections = {d.rule_categories[0]: d.collection_id for d in self._definitions.values()
                                if d.source == "rules" and len(d.rule_categories) == 1 and not d.rule_brands}
        sources: dict[str, CollectionSource] = {}
        sources.update(_optional_sources(self))
        sources["popular_categories"] = PopularCategoriesSource(cat, collection_ids=category_collections)
        self.sources = sources

    # --- reads --------------------------------------------------------------------------

    @property
    def pipelines(self) -> tuple[str, ...]:
        return tuple(self._pipelines)

    def pipeline(self, name: str) -> PagePipeline:
        try:
            return self._pipelines[name]
        except KeyError:
            raise ValueError(f"unknown pipeline {name!r}; expected one of: {', '.join(self._pipelines)}") from None

    @property
    def model_version(self) -> str:
        return self.models.version

    def known_user(self, user_id: str) -> bool:
        if self.features is not None and (user_id in self.features.profiles or user_id in self.features.user_codes):
            return True
        return self.history_state is not None and len(self._history(user_id)) > 0

    def collections(self) -> list[CuratedDefinition]:
        with self._lock:
            return list(self._definitions.values())

    def available_model_versions(self) -> list[str]:
        if self.models_dir is None:
            return []
        return [m.version for m in list_versions(self.models_dir, "collection_retrieval")]

    def build(self, request: PageRequest, pipeline: str | PagePipeline = "default") -> Page:
        """The page for one request with a named pipeline declaration (or a custom one)."""
        spec = pipeline if isinstance(pipeline, PagePipeline) else self.pipeline(pipeline)
        with self._lock:
            if not self.models.rankers and spec.ranker != "popularity":
                return build_page(self._resources(PageModels()), self._pipelines["fallback"], request,
                                  "no models loaded")
            return build_page(self._resources(self.models), spec, request)

    def fallback_page(self, request: PageRequest, reason: str) -> Page:
        """Curated and popular collections, items by popularity, rules applied; needs no model."""
        with self._lock:
            return build_page(self._resources(PageModels()), self._pipelines["fallback"], request,
                              reason or "fallback")

    def _resources(self, models: PageModels) -> PageResources:
        hydrator = None
        if self.features is not None and models.rankers:
            if self._hydrator is None or self._hydrator.state is not self.features:
                self._hydrator = FeatureHydrator(self.features)
            hydrator = self._hydrator
        return PageResources(self.catalog, hydrator, self.sources, models, self.user_context,
                             self.cache if models is self.models else None)

    def user_context(self, request: PageRequest) -> UserContext:
        t = request.at.astimezone(UTC).timestamp()
        location, subscription = ("", "")
        if self.features is not None:
            location, subscription = self.features.profiles.get(request.user_id, ("", ""))
        history = self._history(request.user_id).before(t)
        taste = None
        if self.models.item_vectors is not None and len(history):
            taste = _taste(history, self.models.item_vectors, t)
        # str(): the profiles hold numpy strings, and the page's JSON takes plain ones
        return UserContext(request=request, t=t, location=str(request.location or location),
                           known=self.known_user(request.user_id), history=history, taste=taste,
                           subscription=str(subscription))

    def _history(self, user_id: str) -> UserHistory:
        if self.history_state is None:
            return UserHistory()
        return self.history_state.history(user_id)

    # --- writes -------------------------------------------------------------------------

    def apply_events(self, events: pa.Table) -> None:
        if events.num_rows == 0:
            return
        with self._lock:
            if self.features is not None:
                self.features.update(events)
            if self.history_state is not None:
                self.history_state.update(events)

    def apply_inventory(self, updates: pa.Table) -> None:
        if updates.num_rows == 0:
            return
        with self._lock:
            idx = self.catalog.index_of(np.asarray(updates.column("item_id").to_pylist(), dtype=object))
            stock = pc.coalesce(updates.column("in_stock"), pc.greater(updates.column("quantity"), 0))
            stock_values = np.asarray(stock.to_pylist(), dtype=object)
            known = (idx >= 0) & np.asarray([v is not None for v in stock_values])
            # Newest update per item wins: apply in time order.
            order = np.argsort(np.asarray(pc.cast(updates.column("ts"), pa.int64()).to_numpy()), kind="stable")
            for j in order[known[order]]:
                self.catalog.in_stock[idx[j]] = bool(stock_values[j])
            price = np.asarray(pc.fill_null(updates.column("price"), np.nan).to_numpy(zero_copy_only=False), float)
            priced = (idx >= 0) & np.isfinite(price)
            self.catalog.price[idx[priced]] = price[priced]
            if self.features is not None:
                self.features.update_inventory(updates)
            self.cache.invalidate()

    def upsert_items(self, items: pa.Table) -> None:
        """Changed price, image or stock of known items apply at once; new items rebuild the catalog."""
        with self._lock:
            idx = self.catalog.index_of(np.asarray(items.column("item_id").to_pylist(), dtype=object))
            known = idx >= 0
            rows = items.to_pylist()
            for j in np.flatnonzero(known):
                row, i = rows[j], idx[j]
                if row.get("price") is not None:
                    self.catalog.price[i] = float(row["price"])
                stock = row.get("in_stock")
                if stock is None and row.get("stock_quantity") is not None:
                    stock = row["stock_quantity"] > 0
                if stock is not None:
                    self.catalog.in_stock[i] = bool(stock)
                if row.get("has_image") is not None or row.get("image_url") is not None:
                    has = row.get("has_image")
                    self.catalog.has_image[i] = bool(has) if has is not None else bool(row.get("image_url"))
                    if row.get("image_url") is not None:
                        self.catalog.image_urls[i] = row["image_url"]
            self.cache.invalidate()
            if (~known).any():
                raise UserFacingError(
                    f"{int((~known).sum())} item(s) are not in the catalog; new items are added with "
                    "`shelfrank ingest` and picked up when the engine restarts")

    def upsert_collection(self, definition: CuratedDefinition) -> None:
        with self._lock:
            self._definitions[definition.collection_id] = definition
            self.cache.invalidate()
            curated = self.sources.get("curated")
            if curated is not None and hasattr(curated, "upsert"):
                curated.upsert(definition)

    def delete_collection(self, collection_id: str) -> bool:
        with self._lock:
            existed = self._definitions.pop(collection_id, None) is not None
            self.cache.invalidate()
            curated = self.sources.get("curated")
            if curated is not None and hasattr(curated, "remove"):
                curated.remove(collection_id)
            return existed

    def load_models(self, version: str | None = None) -> str:
        """Load a model version (LATEST by default) and swap it in; on failure the old models stay."""
        if self.models_dir is None:
            raise UserFacingError("this engine was built without a models folder")
        models, space = load_page_models(self.models_dir, version, require=True, **_tree_options(self._page_config))
        if self.features is not None and space is not None and space.names != self.features.space.names:
            raise UserFacingError(f"model version {models.version} uses other features than the serving state; "
                                  "restart the service to switch feature sets")
        models.prepare()  # compiled before the swap, so no request waits for it
        self._share_item_vectors(models)  # compares ~100 MB at standard scale: outside the lock
        with self._lock:
            self.models = models
            self._build_sources()
            self.cache.invalidate()
        return models.version


def _tree_options(page_config) -> dict:
    if page_config is None:
        return {}
    return {"backend": page_config.tree_backend, "cache_dir": page_config.compiled_cache_dir}


def load_page_models(models_dir: Path, version: str | None = None, require: bool = True,
                     backend: str = "compiled", cache_dir: Path | None = None):
    """(PageModels, FeatureSpace) of one training run; empty models when none and not required.
    Tree models score through `backend` (models/compiled.py), compiled on first use into `cache_dir`
    (default: the user's cache folder)."""
    from shelfrank.models.compiled import default_cache_dir
    from shelfrank.models.training import load_trained

    try:
        trained = load_trained(Path(models_dir), version)
    except UserFacingError:
        if require:
            raise
        return PageModels(), None
    cache_dir = Path(cache_dir) if cache_dir is not None else default_cache_dir()
    rankers = {name: RankerScorer(name, r, backend, cache_dir) for name, r in trained.rankers.items()}
    embeddings = getattr(trained, "embeddings", None)
    version_id = Path(trained.paths.get("collection_retrieval", Path(""))).name
    return PageModels(
        version=version_id, rankers=rankers, default_ranker=DEFAULT_RANKER,
        retrieval=RetrievalScorer(trained.retrieval, backend, cache_dir),
        examination_grid=np.asarray(trained.space.examination_curve),
        item_vectors=getattr(embeddings, "vectors_", None),
    ), trained.space


REPLAY_BATCH_ROWS = 1_000_000


def _event_batches(con: duckdb.DuckDBPyConnection, as_of: datetime | None):
    """The store's events before `as_of` in time order, a million at a time: replaying 25M events
    as one Arrow table (plus the state's per-event arrays) peaked at 21 GB at standard scale."""
    where = "" if as_of is None else "WHERE ts < $as_of"
    relation = con.sql(f"SELECT * FROM events {where} ORDER BY ts", params=None if as_of is None else {"as_of": as_of})
    reader = relation.to_arrow_reader(REPLAY_BATCH_ROWS)
    # DuckDB hands out chunks of ~120k rows whatever the batch size asked; the state's per-batch
    # costs (hash tables of the catalog's ids, inserts into the sorted keyed counters) are paid
    # per update, so chunks are gathered into batches of a million.
    pending, rows = [], 0
    for batch in reader:
        pending.append(batch)
        rows += batch.num_rows
        if rows >= REPLAY_BATCH_ROWS:
            yield pa.Table.from_batches(pending)
            pending, rows = [], 0
    if pending:
        yield pa.Table.from_batches(pending)


def _history_state(con: duckdb.DuckDBPyConnection, catalog: Catalog, as_of: datetime | None):
    from shelfrank.store.history import InMemoryUserHistory

    return InMemoryUserHistory.from_store(con, catalog, as_of)


def _repeat_rates(con: duckdb.DuckDBPyConnection, catalog: Catalog, as_of: datetime | None) -> np.ndarray | None:
    from shelfrank.candidates.rules import category_repeat_rates

    return category_repeat_rates(con, catalog, as_of)


def _optional_sources(engine: HomepageEngine) -> dict[str, CollectionSource]:
    """The curated and rules sources, and the ML sources when the models carry item embeddings."""
    out: dict[str, CollectionSource] = {}
    from shelfrank.candidates.curated import CuratedCollectionsSource

    out["curated"] = CuratedCollectionsSource(list(engine._definitions.values()), engine.catalog, curated_only=True)
    if engine.history_state is not None:
        from shelfrank.candidates.rules import default_rule_sources

        for source in default_rule_sources(engine.catalog, engine.history_state, engine._definitions.values(),
                                           category_repeat_rate=engine.category_repeat_rate):
            out[source.name] = source
    vectors = engine.models.item_vectors
    if vectors is not None and len(vectors) == len(engine.catalog):
        from shelfrank.candidates.ml import ItemClustersSource, PredictedCategoriesSource

        out["predicted_categories"] = PredictedCategoriesSource(engine.catalog, category_vectors(engine.catalog,
                                                                                                 vectors))
        n_clusters = int(np.clip(len(engine.catalog) // 250, 16, 2_000))
        out["item_clusters"] = ItemClustersSource.build(engine.catalog, vectors, n_clusters, seed=0,
                                                        cache_dir=_cache_root(engine._page_config) / "item-clusters")
    return out


def _cache_root(page_config) -> Path:
    """The folder of the engine's derived caches (compiled trees, item clusters): the parent of
    page.compiled_cache_dir when set, else ~/.cache/shelfrank."""
    from shelfrank.models.compiled import default_cache_dir

    configured = getattr(page_config, "compiled_cache_dir", None)
    return Path(configured).parent if configured is not None else default_cache_dir().parent


def category_vectors(catalog: Catalog, item_vectors: np.ndarray) -> np.ndarray:
    """Unit mean vector of each catalog category's items (rows = the catalog's category codes)."""
    sums = np.zeros((len(catalog.category_ids), item_vectors.shape[1]))
    known = catalog.category >= 0
    np.add.at(sums, catalog.category[known], item_vectors[known])
    norms = np.linalg.norm(sums, axis=1, keepdims=True)
    return (sums / np.maximum(norms, 1e-12)).astype(np.float32)


def _taste(history: UserHistory, vectors: np.ndarray, t: float) -> np.ndarray | None:
    from shelfrank.candidates.ml import taste_vector

    return taste_vector(history, vectors, t)


__all__ = ["DEFAULT_RANKER", "HomepageEngine", "load_page_models"]
