"""The ground truth scores pages as the truth model says: examination, satiation, the oracle."""

from __future__ import annotations

from datetime import timedelta

import numpy as np
import pytest
from simulated_store import TinyStore

from shelfrank.simulate import SCALES, GroundTruth, PageValue

SPEC = SCALES["tiny"]
AT = SPEC.start + timedelta(days=3, hours=10)


def test_examination_decreases_in_row_and_position_and_faster_on_mobile(tiny: TinyStore) -> None:
    truth = tiny.truth
    for surface in ("web", "ios", "android"):
        by_row = truth.examination(np.arange(8), np.zeros(8, dtype=int), surface)
        by_pos = truth.examination(np.zeros(10, dtype=int), np.arange(10), surface)
        assert by_row[0] == pytest.approx(1.0) and np.all(np.diff(by_row) < 0)
        assert np.all(np.diff(by_pos) < 0)
    assert truth.examination(np.array([3]), np.array([5]), "ios")[0] < truth.examination(
        np.array([3]), np.array([5]), "web")[0]


def test_unknown_ids_raise_value_errors_naming_them(tiny: TinyStore) -> None:
    with pytest.raises(ValueError, match="u999999"):
        tiny.truth.page_value("u999999", [["i1"]], AT)
    with pytest.raises(ValueError, match="nobody"):
        tiny.truth.item_probabilities("nobody", ["i1"], AT)
    with pytest.raises(ValueError, match="i99999999"):
        tiny.truth.item_probabilities("u1", ["i99999999"], AT)


def test_item_probabilities_are_zero_before_creation_and_when_out_of_stock(tiny: TinyStore) -> None:
    cat = tiny.truth.catalog
    new = int(np.flatnonzero(cat.item_created_t > 86_400)[0])
    created = SPEC.start + timedelta(seconds=float(cat.item_created_t[new]))
    before = tiny.truth.item_probabilities("u3", [f"i{new}"], created - timedelta(hours=1))
    after = tiny.truth.item_probabilities("u3", [f"i{new}"], created + timedelta(hours=1))
    assert all(v[0] == 0 for v in before.values())
    out = int(np.flatnonzero((cat.item_oos_start[:, 0] > 0) & (cat.item_oos_end[:, 0] < SPEC.period_seconds)
                             & (cat.item_created_t < 0))[0])
    during = SPEC.start + timedelta(seconds=float(cat.item_oos_start[out, 0]) + 60)
    gone = tiny.truth.item_probabilities("u3", [f"i{out}"], during)
    assert all(v[0] == 0 for v in gone.values())
    if cat.item_oos_start[new, 0] > cat.item_created_t[new] + 3600:
        assert after["p_click_if_examined"][0] > 0
    probs = tiny.truth.item_probabilities("u3", [f"i{k}" for k in range(100)], AT)
    for v in probs.values():
        assert v.shape == (100,) and np.all((v >= 0) & (v <= 1))


def test_a_repeated_item_is_counted_once(tiny: TinyStore) -> None:
    truth = tiny.truth
    item = _best_items(truth, "u5", 1)[0]
    once = truth.page_value("u5", [[item]], AT)
    assert truth.page_value("u5", [[item, item, item]], AT) == once
    assert truth.page_value("u5", [["i0"], [item]], AT).clicks < truth.page_value("u5", [[item], ["i0"]], AT).clicks
    assert truth.page_value("u5", [[item], [item]], AT) == once


def test_utility_weights_default_to_one_three_ten() -> None:
    value = PageValue(clicks=2.0, add_to_carts=1.0, purchases=0.5, revenue=40.0)
    assert value.utility() == pytest.approx(2 + 3 + 5)
    assert value.utility((1, 0, 0, 0.1)) == pytest.approx(2 + 4)


def test_one_category_page_is_worth_less_than_the_same_quality_spread_over_categories(tiny: TinyStore) -> None:
    truth, cat = tiny.truth, tiny.truth.catalog
    rng = np.random.default_rng(1)
    ids = [f"i{k}" for k in range(cat.n_items)]
    wins = trials = 0
    for user in (f"u{k}" for k in range(0, 400, 20)):
        click = truth.item_probabilities(user, ids, AT)["p_click_if_examined"]
        # Ten items from one category, and for each a near-equal item from yet another category.
        leaves, sizes = np.unique(cat.item_leaf[click > 0], return_counts=True)
        leaf = rng.choice(leaves[sizes >= 10])
        same = rng.choice(np.flatnonzero((cat.item_leaf == leaf) & (click > 0)), 10, replace=False)
        used_leaves, spread = {int(leaf)}, []
        for k in same:
            others = np.flatnonzero(~np.isin(cat.item_leaf, list(used_leaves)) & (click > 0))
            best = int(others[np.argmin(np.abs(click[others] - click[k]))])
            spread.append(best)
            used_leaves.add(int(cat.item_leaf[best]))
        if abs(click[same].sum() - click[spread].sum()) > 0.02 * click[same].sum():
            continue  # no equal-quality match in this catalog for this user
        trials += 1
        # One item per row, down the first column: satiation acts between rows.
        one = truth.page_value(user, [[ids[k]] for k in same], AT).clicks
        many = truth.page_value(user, [[ids[k]] for k in spread], AT).clicks
        wins += many > 1.1 * one
    assert trials >= 10
    assert wins >= 0.9 * trials


def _best_items(truth: GroundTruth, user: str, n: int) -> list[str]:
    ids = [f"i{k}" for k in range(truth.catalog.n_items)]
    click = truth.item_probabilities(user, ids, AT)["p_click_if_examined"]
    return [ids[k] for k in np.argsort(-click)[:n]]


def test_oracle_page_beats_the_logged_page_and_a_random_page(tiny: TinyStore) -> None:
    truth = tiny.truth
    logged = tiny.con.execute("""
        SELECT request_id, any_value(user_id), min(ts), any_value(location), any_value(surface),
               list(item_id ORDER BY row, position), list(row ORDER BY row, position)
        FROM events WHERE event_type = 'impression'
        GROUP BY request_id HAVING count(DISTINCT row) = 8 ORDER BY request_id LIMIT 25""").fetchall()
    rng = np.random.default_rng(0)
    beats_logged = beats_random = 0
    for _, user, ts, location, surface, items, rows in logged:
        page = [[item for item, r in zip(items, rows, strict=True) if r == row] for row in range(8)]
        oracle = truth.oracle_page(user, ts, location, surface)
        assert len(oracle) == 8 and all(len(row) == 10 for row in oracle)
        random_page = [[f"i{k}" for k in rng.choice(truth.catalog.n_items, 10)] for _ in range(8)]
        best = truth.page_value(user, oracle, ts, location, surface).utility()
        beats_logged += best > truth.page_value(user, page, ts, location, surface).utility()
        beats_random += best > truth.page_value(user, random_page, ts, location, surface).utility()
    assert beats_logged >= 0.9 * len(logged)
    assert beats_random == len(logged)


def test_truth_round_trips_through_save_and_load(tiny: TinyStore, tmp_path) -> None:
    tiny.truth.save(tmp_path / "truth")
    again = GroundTruth.load(tmp_path / "truth")
    page = [["i1", "i2", "i3"], ["i4", "i5"]]
    assert again.page_value("u7", page, AT, surface="ios") == tiny.truth.page_value("u7", page, AT, surface="ios")


def test_one_user_probabilities_match_the_batched_ones_the_logs_were_drawn_from(tiny: TinyStore) -> None:
    truth = tiny.truth
    items = np.arange(truth.catalog.n_items)
    n, t = len(items), truth.seconds(AT)
    for user, region, intent in ((3, 0, -1), (42, 5, int(truth.catalog.leaf_ids[7])), (900, -1, -1)):
        batched = truth.stage_probabilities(np.full(n, user), items, np.full(n, t), np.full(n, region),
                                            np.full(n, intent))
        single = truth.stage_probabilities(user, items, t, region, intent)
        for a, b in zip(batched, single, strict=True):
            np.testing.assert_allclose(a, b, rtol=1e-6, atol=1e-12)


def test_times_may_be_aware_naive_utc_or_numpy(tiny: TinyStore) -> None:
    truth = tiny.truth
    aware = truth.page_value("u2", [["i1", "i2"]], AT)
    naive = truth.page_value("u2", [["i1", "i2"]], AT.replace(tzinfo=None))
    numpy = truth.page_value("u2", [["i1", "i2"]], np.datetime64(AT.replace(tzinfo=None), "us"))
    assert aware == naive == numpy
