"""Exploration: the logged propensities are the true frequencies, and the rate is the configured one."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from shelfrank.page.explore import explore_slots

ROW = np.arange(100, 108)  # eight deterministic items
NEW = np.array([900, 901, 902])


def test_without_eligible_items_nothing_moves_and_every_propensity_is_one():
    placement = explore_slots(ROW, np.array([], dtype=int), 0.3, 1, np.random.default_rng(0))
    assert placement.shown.tolist() == ROW.tolist()
    assert placement.propensity.tolist() == [1.0] * len(ROW)


@pytest.mark.parametrize("epsilon", [0.05, 0.3])
def test_the_exploration_rate_matches_the_configuration(epsilon):
    rng = np.random.default_rng(1)
    explored = sum(explore_slots(ROW, NEW, epsilon, 1, rng).explored.any() for _ in range(20_000))
    assert explored / 20_000 == pytest.approx(epsilon, abs=4 * np.sqrt(epsilon * (1 - epsilon) / 20_000))


def test_logged_propensities_equal_the_observed_frequency_of_each_item_at_each_slot():
    rng = np.random.default_rng(2)
    n = 40_000
    seen: Counter = Counter()
    logged: dict[tuple[int, int], float] = {}
    for _ in range(n):
        placement = explore_slots(ROW, NEW, 0.3, 2, rng)
        for pos, (item, p) in enumerate(zip(placement.shown, placement.propensity, strict=True)):
            seen[(int(item), pos)] += 1
            assert logged.setdefault((int(item), pos), p) == pytest.approx(p)
    for key, count in seen.items():
        assert count / n == pytest.approx(logged[key], abs=0.01), key


def test_the_first_slots_are_never_explored():
    rng = np.random.default_rng(3)
    for _ in range(2_000):
        placement = explore_slots(ROW, NEW, 0.5, 2, rng)
        assert not placement.explored[:2].any()
        assert placement.shown[:2].tolist() == ROW[:2].tolist()
