import numpy as np
import pytest

from shelfrank.candidates import ann
from shelfrank.candidates.ann import VectorIndex, exact_search

GRAPH = {"exact_below": 0}  # small test sets would otherwise be searched exactly


def unit(x: np.ndarray) -> np.ndarray:
    return (x / np.linalg.norm(x, axis=-1, keepdims=True)).astype(np.float32)


@pytest.fixture(scope="module")
def clustered():
    """2,000 unit vectors around 40 centres (d=16) and 50 queries near random items."""
    rng = np.random.default_rng(0)
    centres = rng.normal(size=(40, 16))
    vectors = unit(centres[rng.integers(0, 40, 2000)] + 0.4 * rng.normal(size=(2000, 16)))
    queries = unit(vectors[rng.integers(0, 2000, 50)] + 0.2 * rng.normal(size=(50, 16)))
    return vectors, queries


@pytest.fixture(scope="module")
def index(clustered):
    built = VectorIndex(M=16, ef_construction=100, ef_search=64, **GRAPH).fit(clustered[0])
    assert not built.exact
    return built


def recall(found: np.ndarray, truth: np.ndarray) -> float:
    return float(np.mean([len(set(f) & set(t)) / len(t) for f, t in zip(found, truth, strict=True)]))


def test_recall_at_10_against_exact_search_is_at_least_095(index, clustered):
    vectors, queries = clustered
    found, _ = index.query(queries, k=10)
    truth, _ = exact_search(vectors, queries, 10)
    assert recall(found, truth) >= 0.95


def test_results_are_best_first_with_cosine_similarities(index, clustered):
    vectors, queries = clustered
    ids, sims = index.query(queries[0], k=20)
    assert ids.shape == sims.shape == (20,)
    assert np.all(np.diff(sims) <= 1e-6)
    np.testing.assert_allclose(sims, vectors[ids] @ queries[0], atol=1e-5)


def test_batch_query_equals_single_queries(index, clustered):
    _, queries = clustered
    batch_ids, batch_sims = index.query(queries[:10], k=15)
    for i in range(10):
        ids, sims = index.query(queries[i], k=15)
        np.testing.assert_array_equal(ids, batch_ids[i])
        np.testing.assert_allclose(sims, batch_sims[i], atol=1e-6)


def test_raw_vectors_are_normalized_so_similarity_is_cosine():
    vectors = np.array([[3.0, 0.0], [0.0, 0.5], [1.0, 1.0]])
    ids, sims = VectorIndex().fit(vectors).query(np.array([10.0, 0.0]), k=3)
    np.testing.assert_array_equal(ids, [0, 2, 1])
    np.testing.assert_allclose(sims, [1.0, np.sqrt(0.5), 0.0], atol=1e-6)


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_k_larger_than_the_index_returns_every_item(exact_below):
    vectors = unit(np.random.default_rng(1).normal(size=(7, 4)))
    index = VectorIndex(exact_below=exact_below).fit(vectors)
    ids, sims = index.query(vectors[:3], k=50)
    assert ids.shape == (3, 7)
    for row in ids:
        assert sorted(row) == list(range(7))
    assert index.query(vectors[0], k=0)[0].shape == (0,)


def test_small_sets_are_searched_exactly(clustered):
    vectors, queries = clustered
    index = VectorIndex().fit(vectors)
    assert index.exact
    ids, sims = index.query(queries, k=25)
    truth_ids, truth_sims = exact_search(vectors, queries, 25)
    np.testing.assert_array_equal(ids, truth_ids)
    np.testing.assert_allclose(sims, truth_sims, atol=1e-6)


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_empty_index_answers_with_empty_arrays(exact_below):
    index = VectorIndex(exact_below=exact_below).fit(np.zeros((0, 8), dtype=np.float32))
    ids, sims = index.query(np.ones(8), k=5)
    assert len(index) == 0 and ids.shape == sims.shape == (0,)


def test_zero_vectors_and_wrong_dimensions_are_clear_errors():
    with pytest.raises(ValueError, match="row 1 is a zero vector"):
        VectorIndex().fit(np.array([[1.0, 0.0], [0.0, 0.0]]))
    with pytest.raises(ValueError, match="non-finite"):
        VectorIndex().fit(np.array([[1.0, np.nan]]))
    index = VectorIndex().fit(np.eye(3))
    with pytest.raises(ValueError, match="query row 0 is a zero vector"):
        index.query(np.zeros(3), k=1)
    with pytest.raises(ValueError, match="dimension 2"):
        index.query(np.ones(2), k=1)
    with pytest.raises(RuntimeError, match="not built"):
        VectorIndex().query(np.ones(3), k=1)


@pytest.mark.parametrize("exact_below", [0, 10_000])
def test_ids_label_the_rows(exact_below):
    index = VectorIndex(exact_below=exact_below).fit(np.eye(3), ids=np.array([10, 4, 7]))
    ids, _ = index.query(np.array([0.0, 1.0, 0.1]), k=2)
    np.testing.assert_array_equal(ids, [4, 7])
    mask = np.ones(11, dtype=bool)
    mask[4] = False
    np.testing.assert_array_equal(index.query(np.array([0.0, 1.0, 0.1]), k=2, mask=mask)[0], [7, 10])
    with pytest.raises(ValueError, match="distinct"):
        VectorIndex().fit(np.eye(2), ids=np.array([1, 1]))


@pytest.mark.parametrize("over_fetch", [True, False])
@pytest.mark.parametrize("share", [0.5, 0.02])
def test_masked_query_returns_only_allowed_ids_and_the_true_top(index, clustered, share, over_fetch, monkeypatch):
    if over_fetch:  # force the graph path (these sizes would pick the exact path)
        monkeypatch.setattr(ann, "HNSW_ROW_COST", 0)
    vectors, queries = clustered
    allowed = np.random.default_rng(2).random(len(vectors)) < share
    ids, sims = index.query(queries, k=10, mask=allowed)
    assert allowed[ids].all()
    rows = np.flatnonzero(allowed)
    truth, _ = exact_search(vectors[rows], queries, 10)
    assert recall(ids, rows[truth]) >= 0.95


def test_mask_allowing_fewer_than_k_returns_all_allowed():
    vectors = unit(np.random.default_rng(3).normal(size=(100, 4)))
    allowed = np.zeros(100, dtype=bool)
    allowed[[5, 50, 70]] = True
    ids, _ = VectorIndex().fit(vectors).query(vectors[0], k=10, mask=allowed)
    assert sorted(ids) == [5, 50, 70]


def test_build_is_deterministic_for_a_seed(clustered):
    vectors, queries = clustered
    a = VectorIndex(ef_search=16, seed=3, **GRAPH).fit(vectors).query(queries, k=10)
    b = VectorIndex(ef_search=16, seed=3, **GRAPH).fit(vectors).query(queries, k=10)
    np.testing.assert_array_equal(a[0], b[0])


def test_save_load_round_trip(tmp_path, index, clustered):
    vectors, queries = clustered
    index.save(tmp_path)
    loaded = VectorIndex.load(tmp_path)
    assert not loaded.exact
    np.testing.assert_array_equal(loaded.query(queries, k=10)[0], index.query(queries, k=10)[0])
    VectorIndex().fit(vectors).save(tmp_path, name="small")
    assert VectorIndex.load(tmp_path, name="small").exact
    with pytest.raises(FileNotFoundError, match="missing"):
        VectorIndex.load(tmp_path, name="other")
