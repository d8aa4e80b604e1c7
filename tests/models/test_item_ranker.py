"""The item ranker on synthetic logs with a known truth.

Each group is a collection of 10 items shown in one request. The logging policy orders
items by `popularity`, a feature that has nothing to do with relevance; the user
examines position p with probability 1 / (1 + p); `bait` raises clicks and lowers
conversion. A ranker that ignores position learns that popularity "works"; one trained
on clicks alone favours bait.
"""

import numpy as np
import pytest

from shelfrank.evaluate.metrics import ndcg_at_k
from shelfrank.models.item_ranker import (
    CLICKS_ONLY,
    BoostingParams,
    FactorizedRanker,
    FunnelWeights,
    PositionFeatureRanker,
    deepest_stage,
)

GROUP = 10
PARAMS = BoostingParams(n_estimators=120, num_leaves=15, learning_rate=0.08, min_child_samples=40)
FEATURES = ["relevance_signal", "popularity", "bait", "row", "position"]


def _sigmoid(z):
    return 1 / (1 + np.exp(-z))


def _world(n_groups: int, seed: int, logged: bool = True):
    rng = np.random.default_rng(seed)
    n = n_groups * GROUP
    rel, pop = rng.normal(size=n), rng.normal(size=n)
    bait = (rng.random(n) < 0.15).astype(float)
    p_click = _sigmoid(-1.2 + 1.2 * rel + 1.3 * bait)
    p_cart = _sigmoid(-0.5 + 0.8 * rel - 3.0 * bait)
    groups = np.repeat(np.arange(n_groups), GROUP)
    # Logged position: by popularity (plus noise) within each group.
    key = pop + 0.3 * rng.normal(size=n)
    order = np.lexsort((-key, groups))
    position = np.empty(n)
    position[order] = np.tile(np.arange(GROUP), n_groups)
    examination = 1.0 / (1.0 + position)
    clicked = rng.random(n) < examination * p_click
    carted = clicked & (rng.random(n) < p_cart)
    purchased = carted & (rng.random(n) < 0.5)
    X = np.column_stack([rel, pop, bait, np.zeros(n), position]).astype(np.float32)
    return {
        "X": X, "groups": groups, "examination": examination, "p_click": p_click,
        "p_purchase": p_click * p_cart * 0.5, "stage": deepest_stage(clicked, carted, purchased),
    }


@pytest.fixture(scope="module")
def train():
    return _world(6000, seed=1)


@pytest.fixture(scope="module")
def test():
    return _world(1500, seed=2)


def _ndcg(scores, truth, groups):
    # Graded truth: relevance quantile 0..4, so NDCG rewards getting the order right.
    labels = np.digitize(truth, np.quantile(truth, [0.5, 0.7, 0.85, 0.95]))
    return ndcg_at_k(scores, labels, groups, k=5).value


def test_funnel_labels_take_the_deepest_stage():
    stage = deepest_stage(np.array([1, 1, 1, 0]), np.array([0, 1, 1, 0]), np.array([0, 0, 1, 0]))
    assert stage.tolist() == [1, 2, 3, 0]
    assert FunnelWeights().gains(stage).tolist() == pytest.approx([0.1, 0.3, 1.0, 0.0])
    with pytest.raises(ValueError, match="click <= add_to_cart <= purchase"):
        FunnelWeights(click=5, add_to_cart=1, purchase=10)


def test_both_debiasing_methods_beat_a_ranker_that_ignores_position(train, test):
    y = CLICKS_ONLY.gains(train["stage"])
    features = FEATURES[:3]
    naive = FactorizedRanker(PARAMS).fit(train["X"][:, :3], y, np.ones(len(y)), features)
    as_feature = PositionFeatureRanker(PARAMS).fit(train["X"], y, FEATURES)
    factorized = FactorizedRanker(PARAMS).fit(train["X"][:, :3], y, train["examination"], features)

    scores = {
        "naive": naive.predict(test["X"][:, :3]),
        "position_feature": as_feature.predict(test["X"]),
        "factorized": factorized.predict(test["X"][:, :3]),
    }
    ndcg = {name: _ndcg(s, test["p_click"], test["groups"]) for name, s in scores.items()}
    assert ndcg["position_feature"] > ndcg["naive"] + 0.02, ndcg
    assert ndcg["factorized"] > ndcg["naive"] + 0.02, ndcg
    # The naive model credits popularity, which only bought position: the debiased ones much less.
    pop = test["X"][:, 1]
    corr = {name: np.corrcoef(s, pop)[0, 1] for name, s in scores.items()}
    assert corr["naive"] > 2 * max(abs(corr["position_feature"]), abs(corr["factorized"])), corr


def test_factorized_relevance_is_calibrated_to_the_true_click_probability(train, test):
    y = CLICKS_ONLY.gains(train["stage"])
    model = FactorizedRanker(PARAMS).fit(train["X"][:, :3], y, train["examination"], FEATURES[:3])
    predicted = model.predict(test["X"][:, :3])
    assert abs(predicted.mean() - test["p_click"].mean()) < 0.03
    assert np.corrcoef(predicted, test["p_click"])[0, 1] > 0.9


def test_funnel_weighted_labels_rank_converting_items_above_clickbait(train, test):
    features = FEATURES[:3]
    by_clicks = FactorizedRanker(PARAMS).fit(
        train["X"][:, :3], CLICKS_ONLY.gains(train["stage"]), train["examination"], features)
    by_funnel = FactorizedRanker(PARAMS).fit(
        train["X"][:, :3], FunnelWeights().gains(train["stage"]), train["examination"], features)
    truth = test["p_purchase"]
    clicks_ndcg = _ndcg(by_clicks.predict(test["X"][:, :3]), truth, test["groups"])
    funnel_ndcg = _ndcg(by_funnel.predict(test["X"][:, :3]), truth, test["groups"])
    assert funnel_ndcg > clicks_ndcg + 0.02, (funnel_ndcg, clicks_ndcg)


def test_position_ranker_scores_everyone_at_the_inference_slot(train, tmp_path):
    y = CLICKS_ONLY.gains(train["stage"])
    model = PositionFeatureRanker(PARAMS).fit(train["X"][:2000], y[:2000], FEATURES)
    X = train["X"][:50].copy()
    moved = X.copy()
    moved[:, 4] = 9
    assert np.allclose(model.predict(X), model.predict(moved))
    assert not np.allclose(model.predict(X, slot={"row": 0, "position": 9}), model.predict(X))
    model.save(tmp_path / "m")
    assert np.allclose(PositionFeatureRanker.load(tmp_path / "m").predict(X), model.predict(X))


def test_bad_training_input_is_a_clear_error(train):
    with pytest.raises(ValueError, match="gains in \\[0, 1\\]"):
        PositionFeatureRanker(PARAMS).fit(train["X"], train["stage"].astype(float), FEATURES)
    with pytest.raises(ValueError, match="position features"):
        PositionFeatureRanker(PARAMS).fit(train["X"][:, :3], np.zeros(len(train["X"])), FEATURES[:3])
