"""The scorers' page-level helpers: top signals and collection means."""

from __future__ import annotations

import numpy as np
import pytest

from shelfrank.models.item_ranker import BoostingParams, PositionFeatureRanker
from shelfrank.page.scorers import RankerScorer, _strongest, group_means

NAMES = ("user_clicks_7d", "item_ctr", "item_price", "item_age_days")


@pytest.fixture(scope="module")
def scorer() -> RankerScorer:
    rng = np.random.default_rng(0)
    X = rng.normal(size=(1200, len(NAMES)))
    y = (X[:, 1] + 0.5 * X[:, 2] - 0.3 * X[:, 3] + 0.2 * X[:, 0] + rng.normal(0, 0.3, len(X)) > 0).astype(float)
    ranker = PositionFeatureRanker(BoostingParams(n_estimators=20, num_leaves=7, min_child_samples=20,
                                                  num_threads=1), position_features=("row", "position"))
    ranker.fit(np.column_stack([X, rng.integers(0, 5, (len(X), 2))]), y, [*NAMES, "row", "position"])
    return RankerScorer("r", ranker, backend="lightgbm")


def test_a_feature_equal_on_every_candidate_is_never_a_signal(scorer):
    """The user's own features are the same for every item of a page: they set no item apart, even
    though their mean over the page is off by a rounding error (0.1 summed 700 times is not 70)."""
    rng = np.random.default_rng(1)
    reference = rng.normal(size=(700, len(NAMES)))
    reference[:, 0] = 0.1
    assert np.std(reference[:, 0]) > 0  # the rounding error the rule must not amplify
    signals = scorer.contributions(reference[:300], reference, NAMES)
    assert len(signals) == 300
    assert not any("user_clicks_7d" in s for s in signals)
    assert sum(bool(s) for s in signals) > 250  # the varying features do explain


def test_signals_are_the_strongest_few_in_order_and_omit_nothing_worth_saying(scorer):
    rng = np.random.default_rng(2)
    reference = rng.normal(size=(500, len(NAMES)))
    X = np.vstack([reference[:50], reference.mean(axis=0, keepdims=True)])  # the last row: the page's mean
    signals = scorer.contributions(X, reference, NAMES, top=2)
    for s in signals[:-1]:
        assert 1 <= len(s) <= 2 and all(v != 0.0 for v in s.values())
        strengths = [abs(v) for v in s.values()]
        assert strengths == sorted(strengths, reverse=True)
    assert signals[-1] == {}  # at the mean of every feature, nothing sets it apart
    missing = reference.copy()
    missing[::3, 2] = np.nan  # missing values neither break the statistics nor become signals
    assert all(np.isfinite(v) for s in scorer.contributions(missing[:40], missing, NAMES) for v in s.values())


def test_group_means_do_not_depend_on_the_pairs_order():
    rng = np.random.default_rng(3)
    X, group = rng.normal(size=(60, 3)), np.sort(rng.integers(0, 9, 60))
    grouped = group_means(X, group, 10)
    shuffle = rng.permutation(60)
    np.testing.assert_allclose(group_means(X[shuffle], group[shuffle], 10), grouped, rtol=1e-12)
    for g in range(10):
        expected = X[group == g].mean(axis=0) if (group == g).any() else np.zeros(3)
        np.testing.assert_allclose(grouped[g], expected, rtol=1e-12)


def test_fewer_varying_features_than_signals_asked_for(scorer):
    rng = np.random.default_rng(4)
    reference = np.tile(rng.normal(size=(1, len(NAMES))), (200, 1))
    reference[:, 2] = rng.normal(size=200)  # only item_price varies on this page
    signals = scorer.contributions(reference[:20], reference, NAMES)
    assert all(set(s) <= {"item_price"} for s in signals) and any(signals)
    constant = np.tile(reference[:1], (50, 1))
    assert scorer.contributions(constant[:5], constant, NAMES) == [{}] * 5  # nothing varies: no signal
    assert scorer.contributions(reference[:0], reference, NAMES) == []


def test_the_strongest_signals_are_a_stable_descending_sort():
    rng = np.random.default_rng(5)
    for width in (0, 1, 2, 3, 7):
        strength = np.round(rng.random((30, width)), 1)  # rounded: many ties
        for top in (1, 3, 5):
            expected = np.argsort(-strength, axis=1, kind="stable")[:, :top]
            np.testing.assert_array_equal(_strongest(strength, top), expected)
