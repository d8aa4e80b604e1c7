"""The examination curve recovers a known 2-D curve from synthetic logs (tests/models/synthetic_logs.py)."""

import numpy as np
import pytest
from synthetic_logs import simulate_impressions, true_curve

from shelfrank.models.examination import ExaminationCurve, curve_error

ROWS, POSITIONS = 8, 10
TRUTH = true_curve(np.arange(ROWS)[:, None], np.arange(POSITIONS)[None, :])


@pytest.fixture(scope="module")
def biased_logs():
    # 400k impressions, 5% from the randomized branch, 2,000 items.
    return simulate_impressions(5000, seed=1)


@pytest.fixture(scope="module")
def em_curve(biased_logs):
    return _fit(biased_logs, "em")


def _fit(logs, method, **params):
    return ExaminationCurve(method=method, **params).fit(
        logs.rows, logs.positions, logs.clicked, groups=logs.items, propensity=logs.propensity
    )


def test_randomized_share_recovers_the_true_curve():
    logs = simulate_impressions(5000, seed=3, randomized_share=0.3)
    curve = ExaminationCurve(method="randomized").fit(logs.rows, logs.positions, logs.clicked,
                                                      propensity=logs.propensity)
    # Measured: MAE 0.009 on 120k randomized impressions.
    assert curve_error(curve.grid(), TRUTH) < 0.02
    assert curve.row_curve_[0, 0] == 1.0 and curve.column_curve_[0, 0] == 1.0


def test_em_recovers_the_true_curve_from_biased_logs(em_curve):
    curve = em_curve
    # Measured: MAE 0.0035, max 0.015, 43 iterations.
    assert curve.converged_
    assert curve_error(curve.grid(), TRUTH) < 0.01
    assert np.abs(curve.grid() - TRUTH).max() < 0.04


def test_em_beats_naive_ctr_by_position_under_a_biased_policy(biased_logs, em_curve):
    em_error = curve_error(em_curve.grid(), TRUTH)
    naive_error = curve_error(_fit(biased_logs, "naive").grid(), TRUTH)
    # Measured: naive 0.078 (better items sit in better slots: too steep), EM 0.0035.
    assert naive_error > 0.05
    assert em_error < naive_error / 5


def test_hybrid_takes_columns_from_em_and_rows_from_the_randomized_share(biased_logs, em_curve):
    curve = _fit(biased_logs, "hybrid")
    np.testing.assert_allclose(curve.column_curve_, em_curve.column_curve_)
    # Rows from 20k randomized impressions, each row pooling its ten positions: unbiased but noisy.
    # Measured: MAE 0.040 (EM's rows: 0.004 here, where the row bias is item-level and EM absorbs it).
    assert curve_error(curve.row_curve_[0], TRUTH[:, 0]) < 0.06


def test_em_relevance_tracks_the_true_item_relevance(biased_logs, em_curve):
    curve = em_curve
    true_relevance = biased_logs.relevance[curve.groups_]
    # Measured: correlation 0.90 with ~200 impressions per item.
    assert np.corrcoef(curve.relevance_, true_relevance)[0, 1] > 0.85
    # The scale is pinned by theta(0, 0) = 1, so relevance is P(click | examined), not a multiple of it.
    assert abs(np.median(curve.relevance_ / true_relevance) - 1.0) < 0.15


def test_one_curve_per_surface():
    decays = {"web": (0.25, 0.22), "ios": (0.35, 0.40)}
    logs = simulate_impressions(4000, seed=5, surfaces=("ios", "web"), decays=decays)
    curve = ExaminationCurve(method="em").fit(logs.rows, logs.positions, logs.clicked, groups=logs.items,
                                              surface=logs.surface)
    assert curve.surfaces_ == ("ios", "web")
    for surface, (row_decay, column_decay) in decays.items():
        truth = true_curve(np.arange(ROWS)[:, None], np.arange(POSITIONS)[None, :], row_decay, column_decay)
        assert curve_error(curve.grid(surface), truth) < 0.015, surface
    mixed = curve.examination(np.array([1, 1]), np.array([3, 3]), np.array(["web", "ios"]))
    assert mixed[0] > mixed[1]  # mobile shows fewer items: examination falls faster
    with pytest.raises(ValueError, match="pass surface="):
        curve.examination(np.array([0]), np.array([0]))
    with pytest.raises(ValueError, match="unknown surface"):
        curve.examination(np.array([0]), np.array([0]), "tv")


def test_sparse_and_unseen_slots_continue_the_curve(em_curve):
    curve = em_curve
    # Rows / positions past the fitted grid use its last value instead of failing or dropping to 0.
    far = curve.examination(np.array([7, 40]), np.array([9, 90]))
    assert far[0] == pytest.approx(far[1])
    assert np.all(np.diff(curve.row_curve_[0]) < 0.02)


def test_save_load_round_trip(tmp_path, em_curve):
    curve = em_curve
    curve.save(tmp_path)
    loaded = ExaminationCurve.load(tmp_path)
    assert loaded.get_params() == curve.get_params()
    np.testing.assert_array_equal(loaded.grid(), curve.grid())
    rows, positions = np.array([0, 3, 7]), np.array([0, 5, 9])
    np.testing.assert_array_equal(loaded.examination(rows, positions), curve.examination(rows, positions))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rows": np.array([0, 1]), "positions": np.array([0]), "clicked": np.array([1])}, "one entry per impression"),
        ({"rows": np.array([0, -1]), "positions": np.array([0, 1]), "clicked": np.array([1, 0])}, "rows must be >= 0"),
        ({"rows": np.array([0.5]), "positions": np.array([0]), "clicked": np.array([1])}, "must be integers"),
    ],
)
def test_bad_input_is_a_clear_value_error(kwargs, message):
    with pytest.raises(ValueError, match=message):
        ExaminationCurve(method="naive").fit(**kwargs)


def test_em_without_groups_and_randomized_without_propensity_say_what_is_missing():
    rows, positions, clicked = np.array([0, 1]), np.array([0, 1]), np.array([1, 0])
    with pytest.raises(ValueError, match="needs groups"):
        ExaminationCurve(method="em").fit(rows, positions, clicked)
    with pytest.raises(ValueError, match="needs propensity"):
        ExaminationCurve(method="randomized").fit(rows, positions, clicked)
    with pytest.raises(ValueError, match="method must be one of"):
        ExaminationCurve(method="magic").fit(rows, positions, clicked)


def test_row_reach_is_the_share_of_requests_that_got_that_deep(tmp_path):
    # Request "a" saw rows 0-2, "b" rows 0-1, "c" row 0 only: reach = 1, 2/3, 1/3.
    rows = np.array([0, 1, 2, 0, 1, 0, 0])
    positions = np.array([0, 0, 0, 0, 0, 0, 1])
    requests = np.array(["a", "a", "a", "b", "b", "c", "c"])
    curve = ExaminationCurve(method="naive").fit(rows, positions, np.ones(7), requests=requests)
    np.testing.assert_allclose(curve.row_reach_[0], [1.0, 2 / 3, 1 / 3])
    served = curve.examination(np.array([2]), np.array([0]), served=True)
    assert served[0] == pytest.approx(curve.examination(np.array([2]), np.array([0]))[0] / 3)
    curve.save(tmp_path)
    np.testing.assert_allclose(ExaminationCurve.load(tmp_path).row_reach_, curve.row_reach_)


def test_a_surface_without_randomized_traffic_is_named_or_falls_back_to_em():
    logs = simulate_impressions(1500, seed=9, surfaces=("ios", "web"))
    no_random_on_ios = np.where(logs.surface == "ios", 0.95, logs.propensity)
    with pytest.raises(ValueError, match=r"surface\(s\) \['ios'\]"):
        ExaminationCurve(method="randomized").fit(logs.rows, logs.positions, logs.clicked,
                                                  propensity=no_random_on_ios, surface=logs.surface)
    hybrid = ExaminationCurve(method="hybrid").fit(logs.rows, logs.positions, logs.clicked, groups=logs.items,
                                                   propensity=no_random_on_ios, surface=logs.surface)
    em = ExaminationCurve(method="em").fit(logs.rows, logs.positions, logs.clicked, groups=logs.items,
                                           surface=logs.surface)
    np.testing.assert_allclose(hybrid.row_curve_[0], em.row_curve_[0])  # ios: EM's rows
    assert not np.allclose(hybrid.row_curve_[1], em.row_curve_[1])       # web: the randomized share's
