"""One contract, run against every diversifier, on data with a known answer."""

import numpy as np
import pytest

from shelfrank.page.diversify import (
    AttributeSimilarity,
    DPPDiversifier,
    EmbeddingSimilarity,
    MMRDiversifier,
    rescale_scores,
)

RELEVANCE_ONLY = {"mmr": MMRDiversifier(lam=1.0), "dpp": DPPDiversifier(theta=1.0)}
BALANCED = {"mmr": MMRDiversifier(lam=0.5), "dpp": DPPDiversifier(theta=0.5)}


def _clustered(n_rows=6, n=40, n_clusters=4, d=16, seed=0):
    """Candidates in tight clusters; the best-scored ones all sit in cluster 0."""
    rng = np.random.default_rng(seed)
    centers = rng.normal(size=(n_clusters, d))
    cluster = rng.integers(0, n_clusters, size=(n_rows, n))
    vectors = centers[cluster] + 0.05 * rng.normal(size=(n_rows, n, d))
    scores = rng.random((n_rows, n)) + 1.0 * (cluster == 0)
    return scores, vectors, cluster


@pytest.fixture(params=["mmr", "dpp"])
def name(request):
    return request.param


def test_picks_are_unique_valid_and_k_long(name):
    scores, vectors, _ = _clustered()
    scores[:, :5] = -np.inf  # filtered candidates
    picks = BALANCED[name].select(scores, EmbeddingSimilarity(vectors), k=10)
    assert picks.shape == (6, 10)
    for row in picks:
        assert len(set(row.tolist())) == 10
        assert row.min() >= 5


def test_relevance_only_setting_is_the_top_k(name):
    scores, vectors, _ = _clustered()
    picks = RELEVANCE_ONLY[name].select(scores, EmbeddingSimilarity(vectors), k=8)
    expected = np.argsort(-scores, axis=1)[:, :8]
    assert np.array_equal(np.sort(picks, axis=1), np.sort(expected, axis=1))


def test_more_diversity_weight_covers_more_clusters(name):
    scores, vectors, cluster = _clustered(n_rows=20, seed=1)
    similarity = EmbeddingSimilarity(vectors)
    top = RELEVANCE_ONLY[name].select(scores, similarity, k=8)
    diverse = BALANCED[name].select(scores, similarity, k=8)
    covered = lambda picks: np.mean([len(set(cluster[r, picks[r]])) for r in range(len(picks))])  # noqa: E731
    assert covered(diverse) >= covered(top) + 1.0, (covered(top), covered(diverse))


def test_an_exact_duplicate_is_not_picked_next_to_its_twin(name):
    vectors = np.eye(4)[None].repeat(1, axis=0).astype(float)
    vectors = np.concatenate([vectors[:, :1], vectors], axis=1)  # candidate 0 duplicates candidate 1
    scores = np.array([[1.0, 0.99, 0.6, 0.55, 0.5]])
    picks = BALANCED[name].select(scores, EmbeddingSimilarity(vectors), k=2)[0]
    assert picks[0] == 0 and picks[1] != 1


def test_rows_that_run_out_are_padded_with_minus_one(name):
    scores = np.array([[0.3, -np.inf, 0.9], [0.1, 0.2, 0.3]])
    vectors = np.random.default_rng(0).normal(size=(2, 3, 4))
    picks = BALANCED[name].select(scores, EmbeddingSimilarity(vectors), k=3)
    assert sorted(picks[0].tolist()) == [-1, 0, 2]
    assert sorted(picks[1].tolist()) == [0, 1, 2]


def test_attribute_similarity_spreads_categories_and_brands(name):
    # 12 candidates: the 6 best share category 0 and brand 0.
    category = np.array([0] * 6 + [1, 1, 2, 2, 3, 3])
    brand = np.array([0] * 6 + [1, 2, 3, 4, 5, 6])
    band = np.zeros(12, dtype=int)
    codes = np.stack([category, brand, band], axis=-1)[None]
    scores = np.linspace(1.0, 0.5, 12)[None]
    picks = BALANCED[name].select(scores, AttributeSimilarity(codes), k=4)[0]
    assert len(set(category[picks])) >= 3


def test_batch_equals_one_row_at_a_time(name):
    scores, vectors, _ = _clustered(n_rows=5, seed=2)
    similarity = EmbeddingSimilarity(vectors)
    batch = BALANCED[name].select(scores, similarity, k=6)
    for r in range(5):
        single = BALANCED[name].select(scores[r:r + 1], EmbeddingSimilarity(vectors[r:r + 1]), k=6)
        assert np.array_equal(batch[r], single[0])


def test_scores_are_rescaled_per_row_and_invalid_stay_invalid():
    out = rescale_scores(np.array([[2.0, 4.0, -np.inf], [5.0, 5.0, 5.0]]))
    assert out[0].tolist() == [0.0, 1.0, -np.inf]
    assert out[1].tolist() == [0.0, 0.0, 0.0]


def test_parameters_out_of_range_are_refused():
    with pytest.raises(ValueError, match="lam"):
        MMRDiversifier(lam=1.5)
    with pytest.raises(ValueError, match="theta"):
        DPPDiversifier(theta=-0.1)


def _reference_mmr(scores, vectors, k, lam):
    s = (scores - scores.min()) / (scores.max() - scores.min())
    v = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    chosen = []
    for _ in range(k):
        gains = [(lam * s[j] - (1 - lam) * max((v[j] @ v[i] for i in chosen), default=0.0), j)
                 for j in range(len(s)) if j not in chosen]
        chosen.append(max(gains)[1])
    return chosen


def test_mmr_matches_the_textbook_definition_including_negative_similarity():
    rng = np.random.default_rng(5)
    scores, vectors = rng.random((3, 30)), rng.normal(size=(3, 30, 8))
    picks = MMRDiversifier(lam=0.6).select(scores, EmbeddingSimilarity(vectors), k=8)
    for r in range(3):
        assert picks[r].tolist() == _reference_mmr(scores[r], vectors[r], 8, 0.6)
