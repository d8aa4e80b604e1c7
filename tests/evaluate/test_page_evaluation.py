"""Whole pages on ground truth, on the shared tiny store."""

from __future__ import annotations

import duckdb
import numpy as np
import pytest

from shelfrank.evaluate.pages import evaluate_pages, page_report_sections, tradeoff_pipelines
from shelfrank.page.pipeline import PIPELINES
from shelfrank.simulate import GroundTruth


@pytest.fixture(scope="module")
def page_eval(tiny_world):
    con = duckdb.connect(str(tiny_world["database"]), read_only=True)
    trained = tiny_world["trained"]
    end = con.sql("SELECT max(ts) FROM events").fetchall()[0][0]
    truth = GroundTruth.load(tiny_world["sim"] / "truth")
    pipelines = {n: PIPELINES[n] for n in ("default", "no_diversity", "popularity")}
    pipelines.update(tradeoff_pipelines((1.0, 0.3)))
    try:
        yield evaluate_pages(con, tiny_world["models_dir"], truth, trained.split.split, end, pipelines,
                             n_requests=16, seed=1)
    finally:
        con.close()


def test_every_pipeline_and_the_oracle_are_valued_on_the_same_requests(page_eval):
    n = len(page_eval.samples.users)
    assert n >= 10
    assert all(v.shape == (n, 4) for v in page_eval.samples.values.values())
    assert set(page_eval.samples.values) == {*page_eval.pipelines, "oracle"}


def test_the_oracle_page_is_worth_more_than_any_pipelines_page(page_eval):
    oracle = page_eval.mean("oracle")["purchases"]
    assert all(page_eval.mean(n)["purchases"] < oracle for n in page_eval.pipelines)


def test_the_popularity_baseline_normalizes_to_zero_and_the_oracle_to_one(page_eval):
    assert page_eval.normalized["popularity"][0] == pytest.approx(0.0)
    assert page_eval.normalized["oracle"][0] == pytest.approx(1.0)
    lo, hi = page_eval.normalized["default"][1:]
    assert lo <= page_eval.normalized["default"][0] <= hi


def test_more_diversity_weight_shows_more_categories(page_eval):
    d = page_eval.diversity
    assert d["mmr@0.3"]["distinct_categories"] > d["mmr@1"]["distinct_categories"]
    assert d["dpp@0.3"]["distinct_categories"] > d["dpp@1"]["distinct_categories"]
    assert d["mmr@0.3"]["intra_row_similarity"] < d["mmr@1"]["intra_row_similarity"]


def test_the_report_has_the_page_table_and_the_tradeoff_plot(page_eval, tmp_path):
    sections = page_report_sections(page_eval, tmp_path)
    assert sections[0].table[0][0] == "pipeline"
    assert {row[0] for row in sections[0].table[1:]} == {*page_eval.pipelines, "oracle"}
    assert (tmp_path / "diversity_tradeoff.png").stat().st_size > 5_000
    assert np.isfinite(page_eval.latency_ms["default"][0])


def test_a_paired_difference_is_zero_against_itself_and_antisymmetric(page_eval):
    from shelfrank.evaluate.pages import paired_difference

    assert paired_difference(page_eval.samples, "default", "default") == (0.0, 0.0, 0.0)
    d, lo, hi = paired_difference(page_eval.samples, "popularity", "default")
    d2, lo2, hi2 = paired_difference(page_eval.samples, "default", "popularity")
    assert d == pytest.approx(-d2) and lo <= d <= hi and lo2 <= d2 <= hi2
