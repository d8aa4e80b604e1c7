"""The examination curve estimated from the simulator's own logs, against its ground truth.

What the logs can show: an impression is logged for every item of a row the user scrolled
to (simulate/behaviour.py), so the curve that impressions carry is P(examined | impression)
= sqrt(row curve) x column curve, the truth's full curve divided by P(row reached).
"""

import duckdb
import numpy as np
import pytest

from shelfrank.models.examination import ExaminationCurve
from shelfrank.simulate import GroundTruth, simulate

pytestmark = pytest.mark.slow
SEED = 7


@pytest.fixture(scope="module")
def logs(tmp_path_factory):
    path = tmp_path_factory.mktemp("tiny-store")
    simulate("tiny", SEED, path)  # ~670k impressions, about 10 s
    impressions = duckdb.connect().execute(f"""
        WITH events AS (SELECT * FROM read_parquet('{path}/events/*.parquet')),
             clicks AS (SELECT DISTINCT request_id, item_id, "row", position FROM events
                        WHERE event_type = 'click')
        SELECT i."row", i.position, i.item_id, i.surface, i.propensity,
               (c.request_id IS NOT NULL)::INT AS clicked
        FROM events i LEFT JOIN clicks c USING (request_id, item_id, "row", position)
        WHERE i.event_type = 'impression'""").fetchnumpy()
    return impressions, GroundTruth.load(path / "truth")


def _column_errors(logs, method):
    d, truth = logs
    curve = ExaminationCurve(method=method).fit(
        d["row"].astype(np.int64), d["position"].astype(np.int64), d["clicked"], groups=d["item_id"],
        propensity=d["propensity"], surface=d["surface"])
    errors = {}
    for i, surface in enumerate(curve.surfaces_):
        true_columns = truth.column_curve(np.arange(curve.column_curve_.shape[1]), surface != "web")
        errors[surface] = float(np.abs(curve.column_curve_[i] - true_columns).mean())
    return errors


def test_em_recovers_the_simulators_column_curve_on_every_surface(logs):
    em, naive = _column_errors(logs, "em"), _column_errors(logs, "naive")
    # Measured (MAE over 10 positions): EM android 0.012, ios 0.006, web 0.022; naive 0.030, 0.032, 0.054.
    assert set(em) == {"android", "ios", "web"}
    for surface in em:
        assert em[surface] < 0.035, (surface, em[surface])
        assert em[surface] < naive[surface], (surface, em[surface], naive[surface])
