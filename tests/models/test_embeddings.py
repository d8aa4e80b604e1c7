"""Item embeddings on a catalog with planted clusters (tests/models/synthetic_sessions.py)."""

import numpy as np
import pytest
from synthetic_sessions import planted_sessions

from shelfrank.models.embeddings import EngagementWeights, ItemEmbeddings

PARAMS = {"dim": 32, "iterations": 10, "threads": 1, "seed": 7}


@pytest.fixture(scope="module")
def sessions():
    return planted_sessions(n_categories=20, items_per_category=50, n_sessions=3000, noise=0.2, seed=0)


@pytest.fixture(scope="module")
def model(sessions):
    return ItemEmbeddings(**PARAMS).fit(sessions.item_index, sessions.group_index, sessions.weight, sessions.content)


def _precision_at_k(model, category, items, k=10):
    hits = [np.mean(category[model.similar(int(i), k)[0]] == category[i]) for i in items]
    return float(np.mean(hits))


def test_vectors_are_normalized_float32(model, sessions):
    assert model.vectors_.dtype == np.float32
    assert model.vectors_.shape == (len(sessions.cold), 32)
    np.testing.assert_allclose(np.linalg.norm(model.vectors_, axis=1), 1.0, rtol=1e-5)


def test_neighbours_share_the_planted_cluster_far_above_chance(model, sessions):
    category = sessions.content["category"]
    warm = np.flatnonzero(~sessions.cold)
    precision = _precision_at_k(model, category, warm)
    # Chance is 1/20 = 0.05; measured 0.96 (0.89 without content blending).
    assert precision > 0.85


def test_neighbours_come_from_co_engagement_not_only_content(sessions):
    # Without content blending the ALS vectors alone must find the clusters.
    model = ItemEmbeddings(**PARAMS, content_blend=0.0).fit(
        sessions.item_index, sessions.group_index, sessions.weight, sessions.content)
    category = sessions.content["category"]
    well_known = np.flatnonzero(model.history_ >= 10)
    # Measured: 0.93.
    assert _precision_at_k(model, category, well_known) > 0.85


def test_cold_items_land_among_their_category(model, sessions):
    category = sessions.content["category"]
    cold = np.flatnonzero(sessions.cold)
    warm = ~sessions.cold
    assert len(cold) > 50 and not model.has_history_[cold].any()
    similarity = model.vectors_[cold] @ model.vectors_.T
    same = np.where((category[cold][:, None] == category[None, :]) & warm, similarity, np.nan)
    other = np.where((category[cold][:, None] != category[None, :]) & warm, similarity, np.nan)
    # Measured: cosine 0.71 to their category's items vs 0.02 to the rest.
    assert np.nanmean(same) > np.nanmean(other) + 0.3
    assert np.mean(np.nanmean(same, axis=1) > np.nanmean(other, axis=1)) == 1.0
    nearest_category = np.argmax(model.vectors_[cold] @ model.category_vectors_.T, axis=1)
    assert np.mean(nearest_category == category[cold]) > 0.95


def test_new_items_from_content_alone_land_near_their_look_alikes(model, sessions):
    # Brand 9 sells in category 3, brand 34 in category 11; the second item's price is unknown.
    new = {"category": np.array([3, 11]), "brand": np.array([9, 34]), "price": np.array([15.0, np.nan])}
    vectors = model.vectors_for_content(new)
    assert vectors.dtype == np.float32
    nearest_category = np.argmax(vectors @ model.category_vectors_.T, axis=1)
    np.testing.assert_array_equal(nearest_category, [3, 11])
    neighbours = np.argsort(-(vectors @ model.vectors_.T), axis=1)[:, :10]
    assert np.mean(sessions.content["category"][neighbours] == np.array([[3], [11]])) > 0.9


def test_category_and_brand_vectors_are_normalized_means(model, sessions):
    category = sessions.content["category"]
    assert model.category_vectors_.shape == (20, 32)
    expected = model.vectors_[category == 4].mean(axis=0)
    np.testing.assert_allclose(model.category_vectors_[4], expected / np.linalg.norm(expected), atol=1e-5)
    collections = model.pooled_vectors(np.array([0, 1, 2, 60]), np.array([0, 0, 0, 2]), n_groups=3)
    assert collections.shape == (3, 32)
    assert np.all(collections[1] == 0)  # an empty collection has no direction
    np.testing.assert_allclose(np.linalg.norm(collections[[0, 2]], axis=1), 1.0, rtol=1e-5)


def test_fitting_is_deterministic_for_a_seed_whatever_the_threads(model, sessions):
    again = ItemEmbeddings(**{**PARAMS, "threads": 2}).fit(
        sessions.item_index, sessions.group_index, sessions.weight, sessions.content)
    np.testing.assert_array_equal(again.vectors_, model.vectors_)
    assert again.input_hash_ == model.input_hash_


def test_save_load_round_trip(tmp_path, model):
    model.save(tmp_path)
    loaded = ItemEmbeddings.load(tmp_path)
    assert loaded.get_params() == model.get_params()
    for name in ("vectors_", "category_vectors_", "brand_vectors_", "content_weights_", "history_"):
        np.testing.assert_array_equal(getattr(loaded, name), getattr(model, name))
    np.testing.assert_array_equal(loaded.similar(5, 10)[0], model.similar(5, 10)[0])
    new = {"category": np.array([2]), "brand": np.array([7]), "price": np.array([9.0])}
    np.testing.assert_array_equal(loaded.vectors_for_content(new), model.vectors_for_content(new))
    assert {"numpy", "scipy", "implicit"} <= set(loaded.libraries_)
    assert loaded.input_hash_ == model.input_hash_


def test_engagement_weights_map_event_types():
    weights = EngagementWeights(click=1, add_to_cart=3, purchase=5)
    np.testing.assert_array_equal(weights.of(["impression", "click", "add_to_cart", "purchase", "search"]),
                                  [0, 1, 3, 5, 0])
    with pytest.raises(ValueError, match="purchase"):
        EngagementWeights(purchase=-1)


CONTENT = {"category": np.array([0, 1, 1]), "brand": np.array([0, 0, 1]), "price": np.array([1.0, 2.0, 3.0])}


@pytest.mark.parametrize(
    ("events", "content", "message"),
    [
        ((np.array([0, 1]), np.array([0]), np.array([1.0, 1.0])), CONTENT, "one entry per event"),
        ((np.array([0, -1]), np.array([0, 0]), np.array([1.0, 1.0])), CONTENT, "item_index must be >= 0"),
        ((np.array([0, 1]), np.array([0, -2]), np.array([1.0, 1.0])), CONTENT, "group_index must be >= 0"),
        ((np.array([0, 3]), np.array([0, 0]), np.array([1.0, 1.0])), CONTENT, "outside the catalog"),
        ((np.array([0, 1]), np.array([0, 0]), np.array([1.0, np.nan])), CONTENT, "weight must be finite"),
        ((np.array([0, 1]), np.array([0, 0]), np.array([1.0, 1.0])), {**CONTENT, "brand": np.array([0, 1])},
         "same length"),
        ((np.array([0, 1]), np.array([0, 0]), np.array([1.0, 1.0])), {"category": CONTENT["category"]}, "lacks"),
    ],
)
def test_bad_input_is_a_clear_value_error(events, content, message):
    with pytest.raises(ValueError, match=message):
        ItemEmbeddings(**PARAMS).fit(*events, item_content=content)


def test_lookups_reject_indices_outside_the_catalog(model):
    with pytest.raises(ValueError, match="outside the catalog"):
        model.vectors_for(np.array([0, 10_000]))
    with pytest.raises(ValueError, match="outside the catalog"):
        model.similar(-1, 5)


def test_single_item_sessions_and_zero_weights_are_not_co_engagement():
    content = {"category": np.array([0, 0, 1, 1]), "brand": np.array([0, 0, 1, 1]), "price": np.ones(4)}
    # Session 0 engages items 0 and 1; session 1 only item 2; session 2 saw item 3 (weight 0: an impression).
    model = ItemEmbeddings(**PARAMS).fit(np.array([0, 1, 1, 2, 3]), np.array([0, 0, 0, 1, 2]),
                                         np.array([1.0, 1.0, 3.0, 5.0, 0.0]), content)
    np.testing.assert_array_equal(model.history_, [1.0, 4.0, 0.0, 0.0])
    np.testing.assert_array_equal(model.has_history_, [True, True, False, False])


def test_item_ids_are_kept_saved_and_looked_up(tmp_path):
    content = {"category": np.array([0, 0, 1]), "brand": np.array([0, 1, 1]), "price": np.array([1.0, 2.0, 3.0])}
    model = ItemEmbeddings(dim=4, iterations=2, threads=1).fit(
        np.array([0, 1, 1, 2]), np.array([0, 0, 1, 1]), np.ones(4), content, item_ids=["a", "b", "c"])
    model.save(tmp_path)
    loaded = ItemEmbeddings.load(tmp_path)
    assert loaded.item_ids_.tolist() == ["a", "b", "c"]
    vectors, found = loaded.vectors_for_ids(["c", "zz", "a"])
    assert found.tolist() == [True, False, True]
    np.testing.assert_array_equal(vectors[[0, 2]], model.vectors_[[2, 0]])
    assert not vectors[1].any()
    with pytest.raises(ValueError, match="name each of the 3"):
        ItemEmbeddings(dim=4, iterations=2, threads=1).fit(np.array([0]), np.array([0]), np.ones(1), content,
                                                           item_ids=["a", "b"])
