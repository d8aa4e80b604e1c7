"""ML sources on a catalog with a known answer: 6 categories of 30 items whose vectors point
along the category's own axis (plus noise), so a user's taste picks out a category."""

from datetime import UTC, datetime

import numpy as np
import pyarrow as pa
import pytest

from shelfrank.candidates.base import UserContext
from shelfrank.candidates.ml import (
    ItemClusters,
    ItemClustersSource,
    PredictedCategoriesSource,
    cluster_titles,
    taste_vector,
)
from shelfrank.contracts import PageRequest
from shelfrank.models.embeddings import ItemEmbeddings
from shelfrank.store.catalog import Catalog
from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE, UserHistory

NAMES = ["Shoes", "Socks", "Coffee", "Tea", "Phones", "Cables"]
PER_CATEGORY, DIM = 30, 8
N_ITEMS = PER_CATEGORY * len(NAMES)
T = 1_800_000_000.0
DAY = 86_400.0


def make_catalog(in_stock: np.ndarray | None = None) -> Catalog:
    rng = np.random.default_rng(0)
    category = np.repeat(np.arange(len(NAMES)), PER_CATEGORY)
    ids = [f"i{i:04d}" for i in range(N_ITEMS)]  # sorted ids: catalog index = row
    items = pa.table({
        "item_id": ids, "title": ids, "vertical": ["shop"] * N_ITEMS,
        "category_id": [f"c{c}" for c in category],
        "brand": [f"brand{2 * c + i % 2}" for i, c in enumerate(category)],
        "price": rng.uniform(1, 50, N_ITEMS),
        "image_url": ["x"] * N_ITEMS, "has_image": [True] * N_ITEMS,
        "in_stock": (np.ones(N_ITEMS, dtype=bool) if in_stock is None else in_stock).tolist(),
        "stock_quantity": [1] * N_ITEMS,
        "created_at": pa.array([datetime(2026, 1, 1, tzinfo=UTC)] * N_ITEMS, pa.timestamp("us", tz="UTC")),
        "tags": [[] for _ in range(N_ITEMS)],
    })
    categories = pa.table({"category_id": [f"c{c}" for c in range(len(NAMES))], "name": NAMES,
                           "parent_id": [""] * len(NAMES)})
    popularity = dict(zip(ids, rng.pareto(1.5, N_ITEMS).tolist(), strict=True))
    return Catalog(items, categories, popularity)


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def item_vectors() -> np.ndarray:
    rng = np.random.default_rng(1)
    category = np.repeat(np.arange(len(NAMES)), PER_CATEGORY)
    return unit(np.eye(DIM)[category] + 0.12 * rng.normal(size=(N_ITEMS, DIM)))


@pytest.fixture(scope="module")
def category_vectors(item_vectors) -> np.ndarray:
    return unit(item_vectors.reshape(len(NAMES), PER_CATEGORY, DIM).mean(axis=1))


@pytest.fixture(scope="module")
def clusters(item_vectors) -> ItemClusters:
    return ItemClusters(n_clusters=len(NAMES), seed=0).fit(item_vectors)


def history_in(category: int, n: int = 5, event: int = CLICK) -> UserHistory:
    items = np.arange(category * PER_CATEGORY, category * PER_CATEGORY + n)
    return UserHistory(items, np.full(n, event, dtype=np.int8), T - DAY * np.arange(n, 0, -1),
                       np.full(n, "s1", dtype=object))


def user(history: UserHistory, item_vectors: np.ndarray) -> UserContext:
    request = PageRequest(user_id="u1", at=datetime.fromtimestamp(T, UTC))
    return UserContext(request=request, t=T, location="", known=len(history) > 0, history=history,
                       taste=taste_vector(history, item_vectors, T))


NEW_USER = UserHistory()


# ---------- taste vector ----------


def test_taste_is_none_without_history(item_vectors):
    assert taste_vector(NEW_USER, item_vectors, T) is None
    future_only = UserHistory(np.array([0]), np.array([CLICK], dtype=np.int8), np.array([T + 1]),
                              np.array(["s"], dtype=object))
    assert taste_vector(future_only, item_vectors, T) is None


def test_taste_weights_events_by_funnel_stage_and_halves_per_half_life():
    vectors = np.eye(3, dtype=np.float32)
    # A click now, a purchase one half-life ago: weights 1 and 5 * 0.5.
    history = UserHistory(np.array([0, 1]), np.array([PURCHASE, CLICK], dtype=np.int8),
                          np.array([T - 7 * DAY, T - 1e-3]), np.array(["a", "b"], dtype=object))
    taste = taste_vector(history, vectors, T, half_life_days=7)
    np.testing.assert_allclose(taste, unit(np.array([2.5, 1.0, 0.0])), atol=1e-6)
    carts = UserHistory(np.array([0, 1]), np.array([ADD_TO_CART, CLICK], dtype=np.int8), np.array([T - 1, T - 1]),
                        np.array(["a", "a"], dtype=object))
    taste = taste_vector(carts, vectors, T)
    assert taste[0] == pytest.approx(3 * taste[1], rel=1e-3)


def test_taste_leaves_out_items_the_embeddings_do_not_cover():
    vectors = np.eye(2, dtype=np.float32)
    history = UserHistory(np.array([1, 5]), np.array([CLICK, PURCHASE], dtype=np.int8), np.array([T - 1, T - 1]),
                          np.array(["a", "a"], dtype=object))
    np.testing.assert_allclose(taste_vector(history, vectors, T), [0.0, 1.0])


# ---------- predicted categories ----------


@pytest.mark.parametrize("category", [0, 3, 5])
def test_history_in_one_category_gets_that_category_first(category, item_vectors, category_vectors):
    source = PredictedCategoriesSource(make_catalog(), category_vectors, n_collections=3)
    proposed = source.propose(user(history_in(category), item_vectors))
    assert len(proposed) == 3
    first = proposed[0]
    assert first.collection_id == f"cat:c{category}"
    assert (first.title, first.source, first.generator) == (NAMES[category], "ml", "predicted_categories")
    assert first.reason == f"Picked for you: {NAMES[category]}"
    assert [c.prior for c in proposed] == sorted((c.prior for c in proposed), reverse=True)
    assert 0.5 < first.prior <= 1.0 and first.signals["similarity"] > 0.9


def test_category_items_are_its_most_popular_in_stock_items(item_vectors, category_vectors):
    in_stock = np.ones(N_ITEMS, dtype=bool)
    in_stock[3 * PER_CATEGORY: 3 * PER_CATEGORY + 10] = False
    catalog = make_catalog(in_stock)
    source = PredictedCategoriesSource(catalog, category_vectors, pool_size=15)
    first = source.propose(user(history_in(3), item_vectors))[0]
    assert len(first.items) == 15 and first.items.dtype == np.int64
    assert (catalog.category[first.items] == 3).all() and catalog.in_stock[first.items].all()
    assert np.all(np.diff(catalog.popularity[first.items]) <= 0)


def test_a_category_out_of_stock_is_never_proposed_and_stock_changes_need_no_rebuild(item_vectors,
                                                                                    category_vectors):
    catalog = make_catalog()
    source = PredictedCategoriesSource(catalog, category_vectors, n_collections=6, min_items=4)
    catalog.set_stock(np.arange(3 * PER_CATEGORY, 4 * PER_CATEGORY - 3), False)  # 3 left < min_items
    proposed = source.propose(user(history_in(3), item_vectors))
    assert "cat:c3" not in {c.collection_id for c in proposed}
    assert len(proposed) == 5
    for c in proposed:
        assert catalog.in_stock[c.items].all()
    catalog.set_stock(np.arange(3 * PER_CATEGORY, 4 * PER_CATEGORY), True)
    assert source.propose(user(history_in(3), item_vectors))[0].collection_id == "cat:c3"


def test_category_vectors_with_zero_rows_leave_those_categories_out(item_vectors, category_vectors):
    vectors = category_vectors.copy()
    vectors[3] = 0.0
    source = PredictedCategoriesSource(make_catalog(), vectors, n_collections=6)
    proposed = source.propose(user(history_in(3), item_vectors))
    assert len(proposed) == 5 and "cat:c3" not in {c.collection_id for c in proposed}


def test_a_pool_smaller_than_min_items_still_fills_collections(item_vectors, category_vectors, clusters):
    catalog = make_catalog()
    context = user(history_in(1), item_vectors)
    for source in (PredictedCategoriesSource(catalog, category_vectors, pool_size=2, min_items=4),
                   ItemClustersSource(catalog, clusters, pool_size=2, min_items=4)):
        proposed = source.propose(context)
        assert proposed and all(len(c.items) == 2 for c in proposed)


# ---------- item clusters ----------


def test_planted_clusters_are_recovered_and_named_after_their_category(clusters):
    category = np.repeat(np.arange(len(NAMES)), PER_CATEGORY)
    for k in range(len(NAMES)):
        assert len(set(category[clusters.members(k)])) == 1
    assert sorted(cluster_titles(make_catalog(), clusters)) == sorted(NAMES)


def test_cluster_items_belong_to_the_cluster_in_stock_best_first(item_vectors, clusters):
    in_stock = np.random.default_rng(5).random(N_ITEMS) < 0.7
    catalog = make_catalog(in_stock)
    source = ItemClustersSource(catalog, clusters, n_collections=6, pool_size=12)
    proposed = source.propose(user(history_in(2), item_vectors))
    assert len(proposed) == 6
    assert len({c.collection_id for c in proposed}) == 6
    for c in proposed:
        cluster = int(c.collection_id.split(":")[1])
        assert (clusters.labels_[c.items] == cluster).all()
        assert catalog.in_stock[c.items].all() and len(np.unique(c.items)) == len(c.items) <= 12
        score = clusters.closeness_[c.items] * np.log(np.e + catalog.popularity[c.items])
        assert np.all(np.diff(score) <= 1e-6)
        assert (c.source, c.generator) == ("ml", "item_clusters")


def test_history_in_one_category_gets_its_cluster_first(item_vectors, clusters):
    source = ItemClustersSource(make_catalog(), clusters)
    first = source.propose(user(history_in(4), item_vectors))[0]
    assert first.title == "Phones" and first.reason == "Picked for you: Phones"
    assert (first.items // PER_CATEGORY == 4).all()


def test_clustering_is_deterministic_for_a_seed(item_vectors, clusters):
    again = ItemClusters(n_clusters=len(NAMES), seed=0).fit(item_vectors)
    np.testing.assert_array_equal(again.labels_, clusters.labels_)
    np.testing.assert_array_equal(again.centroids_, clusters.centroids_)


def test_zero_vector_items_get_no_cluster_and_build_fits_once(item_vectors):
    vectors = item_vectors.copy()
    vectors[7] = 0.0
    source = ItemClustersSource.build(make_catalog(), vectors, n_clusters=6, seed=1)
    assert source.clusters.labels_[7] == -1
    assert all(7 not in c.items for c in source.propose(user(history_in(0), item_vectors)))


# ---------- both ----------


def test_a_new_user_gets_nothing(item_vectors, category_vectors, clusters):
    catalog = make_catalog()
    new_user = user(NEW_USER, item_vectors)
    assert new_user.taste is None
    assert PredictedCategoriesSource(catalog, category_vectors).propose(new_user) == []
    assert ItemClustersSource(catalog, clusters).propose(new_user) == []


def test_with_fitted_embeddings_the_engaged_category_comes_first():
    """End to end on ItemEmbeddings: sessions that stay inside one category."""
    rng = np.random.default_rng(2)
    session_category = rng.integers(0, len(NAMES), 1200)
    items = session_category[:, None] * PER_CATEGORY + rng.integers(0, PER_CATEGORY, (1200, 4))
    catalog = make_catalog()
    content = {"category": catalog.category, "brand": catalog.brand, "price": catalog.price}
    embeddings = ItemEmbeddings(dim=8, iterations=8, threads=1, seed=0).fit(
        items.reshape(-1), np.repeat(np.arange(1200), 4), np.ones(items.size), content)
    source = PredictedCategoriesSource(catalog, embeddings.category_vectors_, n_collections=2)
    for category in (1, 4):
        history = history_in(category)
        context = user(history, embeddings.vectors_)
        assert source.propose(context)[0].collection_id == f"cat:c{category}"


def test_a_fit_is_saved_and_loaded_by_the_next_start_and_a_damaged_file_is_fitted_again(item_vectors, tmp_path,
                                                                                          monkeypatch):
    fresh = ItemClusters(n_clusters=len(NAMES), seed=0).fit(item_vectors)
    first = ItemClusters(n_clusters=len(NAMES), seed=0).fit_cached(item_vectors, tmp_path)
    [saved] = list(tmp_path.glob("*.npz"))
    for name in ItemClusters.FITTED:
        np.testing.assert_array_equal(getattr(first, name), getattr(fresh, name))

    def no_fit(self, vectors):
        raise AssertionError("fitted again instead of loading the saved fit")

    with monkeypatch.context() as m:
        m.setattr(ItemClusters, "fit", no_fit)
        loaded = ItemClusters(n_clusters=len(NAMES), seed=0).fit_cached(item_vectors, tmp_path)
    for name in ItemClusters.FITTED:
        np.testing.assert_array_equal(getattr(loaded, name), getattr(fresh, name))
    other = ItemClusters(n_clusters=len(NAMES) - 1, seed=0).fit_cached(item_vectors, tmp_path)
    assert len(other.centroids_) == len(NAMES) - 1 and len(list(tmp_path.glob("*.npz"))) == 2
    saved.write_bytes(saved.read_bytes()[:50])
    again = ItemClusters(n_clusters=len(NAMES), seed=0).fit_cached(item_vectors, tmp_path)
    np.testing.assert_array_equal(again.labels_, fresh.labels_)
