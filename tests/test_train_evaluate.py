"""End to end on a tiny simulated store: simulate -> ingest -> train -> evaluate against ground truth."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
from shared_world import TINY_OPTIONS
from typer.testing import CliRunner

from shelfrank.cli import app
from shelfrank.config import Settings, StoreConfig, TrainConfig
from shelfrank.evaluate.offline import evaluate
from shelfrank.models.training import load_trained, train
from shelfrank.simulate import GroundTruth
from shelfrank.store.database import Store

OPTIONS = TINY_OPTIONS


@pytest.fixture(scope="module")
def world(tiny_world, tmp_path_factory):
    # A copy of the session's store: this module opens it read-write, and the service tests may still
    # hold read-only connections to the shared file (DuckDB refuses two configurations in one process).
    root = tmp_path_factory.mktemp("train_evaluate")
    (root / "data").mkdir()
    shutil.copy2(tiny_world["database"], root / "data" / "shelfrank.duckdb")
    (root / "data" / "models").symlink_to(tiny_world["models_dir"], target_is_directory=True)
    store = Store.open(StoreConfig(data_dir=root / "data"))
    trained = tiny_world["trained"]
    truth = GroundTruth.load(tiny_world["sim"] / "truth")
    result = evaluate(store.con, trained, root / "report", truth, OPTIONS, truth_requests=150)
    yield {"root": root, "store": store, "reports": tiny_world["reports"], "trained": trained, "result": result,
           "truth": truth}
    store.close()


def _utility(v):
    return v["clicks"] + 3 * v["add_to_carts"] + 10 * v["purchases"]


def test_the_simulated_store_ingests_without_a_single_reject(world):
    assert all(r.rejected == 0 for r in world["reports"])
    assert world["store"].count("events") > 500_000


def test_both_rankers_beat_the_logged_order_on_ground_truth(world):
    value = world["result"].truth_value
    logged = _utility(value["logged"])
    for ranker in ("position_feature", "factorized"):
        assert _utility(value[ranker]) > 1.05 * logged, value
    # ... and nobody beats the truth's own order of the same items.
    assert all(_utility(value["oracle"]) >= _utility(v) for v in value.values())


def test_funnel_weighting_sells_more_than_a_click_only_ranker(world):
    value = world["result"].truth_value
    assert value["position_feature"]["purchases"] > 1.05 * value["clicks_only"]["purchases"], value


def test_the_headline_normalized_value_has_a_confidence_interval_above_the_logged_order(world):
    result = world["result"]
    best, lo, hi = result.normalized_value[result.best_ranker]
    assert lo <= best <= hi
    assert lo > result.normalized_value["logged"][2], result.normalized_value
    assert result.n_truth_users > 20


def test_the_learned_examination_curve_is_closer_to_the_truth_than_naive_ctr(world):
    curves = world["result"].position_curves
    true = np.array(curves["true"][1])
    em_error = np.abs(np.array(curves["learned (EM)"][1]) - true).mean()
    naive_error = np.abs(np.array(curves["naive"][1]) - true).mean()
    assert em_error < naive_error, (em_error, naive_error)


def test_artefacts_reload_and_score_like_the_trained_models(world):
    trained = world["trained"]
    loaded = load_trained(world["root"] / "data" / "models")
    X = trained.train_set.features[:200]
    assert np.allclose(loaded.rankers["factorized"].predict(X), trained.rankers["factorized"].predict(X))
    assert loaded.space.names == trained.space.names


def test_the_report_shows_its_tables_and_plots(world):
    report = world["result"].report_path
    text = report.read_text()
    assert "Page value on ground truth" in text and "oracle" in text
    for png in ("position_curve.png", "page_value.png"):
        assert (report.parent / png).stat().st_size > 5_000


def test_cli_evaluate_loads_the_latest_models(world, tmp_path):
    settings_dir = world["root"] / "data"
    config = tmp_path / "shelfrank.toml"
    config.write_text(f'[store]\ndata_dir = "{settings_dir}"\n[train]\ntest_days = 2.0\nmax_test_requests = 200\n')
    world["store"].close()  # the CLI opens the store itself
    try:
        result = CliRunner().invoke(app, ["--config", str(config), "evaluate", "--report-dir", str(tmp_path / "r")])
        assert result.exit_code == 0, result.output
        assert "ndcg_at_10" in result.output
    finally:
        world["store"] = Store.open(StoreConfig(data_dir=settings_dir))


def test_training_on_an_empty_store_is_one_clear_error(tmp_path):
    Settings(store=StoreConfig(data_dir=tmp_path), train=TrainConfig())
    with Store.open(StoreConfig(data_dir=tmp_path)) as store:
        from shelfrank.errors import UserFacingError

        with pytest.raises(UserFacingError, match="no impressions"):
            train(store.con, tmp_path / "models", OPTIONS)
