"""Tree models compiled to native code (models/compiled.py) score exactly as LightGBM does.

The models are trained here, tiny (15 trees of at most 7 leaves), so each compiles in a
fraction of a second. "Exactly" is against LightGBM on the same float32 rows, one thread,
the call the scorers made before the compiled backend existed.
"""

from __future__ import annotations

import logging
import subprocess
import sys
import textwrap
import time

import lightgbm as lgb
import lleaves
import numpy as np
import pytest

from shelfrank.models.compiled import TreePredictor, default_cache_dir
from shelfrank.models.item_ranker import BoostingParams, FactorizedRanker, PositionFeatureRanker
from shelfrank.page.scorers import RankerScorer

N_FEATURES = 6
TREES = 15
PARAMS = {"num_leaves": 7, "min_data_in_leaf": 20, "num_threads": 1, "seed": 0, "deterministic": True,
          "verbosity": -1}
TOLERANCE = 1e-9


def _data(n: int = 1500, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(X with missing values, engagement labels, graded relevance) of a known signal."""
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, N_FEATURES)).astype(np.float32)
    X[:, 4] = np.round(X[:, 4])  # many exact zeros
    X[rng.random(X.shape) < 0.1] = np.nan  # missing in training, so the trees learn a default direction
    signal = np.nan_to_num(X[:, 0] - 0.7 * X[:, 1] + 0.5 * X[:, 4])
    y = (signal + rng.normal(size=n) > 0).astype(np.float64)
    grade = np.clip(np.round(signal + 1.5 + 0.5 * rng.normal(size=n)), 0, 3).astype(np.int64)
    return X, y, grade


def _binary(X, y, grade) -> lgb.Booster:
    return lgb.train({**PARAMS, "objective": "binary"}, lgb.Dataset(X, label=y), num_boost_round=TREES)


def _cross_entropy(X, y, grade) -> lgb.Booster:
    """The objective of the position-feature ranker and the collection retrieval model."""
    return PositionFeatureRanker(BoostingParams(n_estimators=TREES, num_leaves=7, min_child_samples=20,
                                                num_threads=1), position_features=("f5",)).fit(
        X, y, [f"f{i}" for i in range(N_FEATURES)]).booster_


def _regression(X, y, grade) -> lgb.Booster:
    return lgb.train({**PARAMS, "objective": "regression"}, lgb.Dataset(X, label=grade.astype(float)),
                     num_boost_round=TREES)


def _lambdarank(X, y, grade) -> lgb.Booster:
    groups = [10] * (len(X) // 10)
    return lgb.train({**PARAMS, "objective": "lambdarank"}, lgb.Dataset(X, label=grade, group=groups),
                     num_boost_round=TREES)


def _factorized_ranker(X, y) -> FactorizedRanker:
    examination = 1.0 / (1.0 + np.arange(len(X)) % 10)
    engaged = y * (np.random.default_rng(2).random(len(X)) < examination)  # engaged = examined and relevant
    return FactorizedRanker(BoostingParams(n_estimators=TREES, num_leaves=7, min_child_samples=20, num_threads=1)
                            ).fit(X, engaged, examination, [f"f{i}" for i in range(N_FEATURES)])


def _custom(X, y, grade) -> lgb.Booster:
    """The factorized ranker's booster: a custom objective, so its model text names no objective."""
    return _factorized_ranker(X, y).booster_


MODELS = {"binary": _binary, "cross_entropy": _cross_entropy, "regression": _regression,
          "lambdarank": _lambdarank, "custom": _custom}


@pytest.fixture(scope="module")
def data():
    return _data()


@pytest.fixture(scope="module")
def boosters(data):
    return {name: make(*data) for name, make in MODELS.items()}


@pytest.fixture(scope="module")
def rows(data, boosters) -> np.ndarray:
    """Rows to score: unseen ones with missing values and infinities, every split threshold of the
    binary model exactly (where float32 against float64 would tell), zeros and all-missing rows."""
    X_new, _, _ = _data(400, seed=1)
    X_new[:3] = np.inf
    X_new[3:6] = -np.inf
    thresholds = []

    def walk(node):
        if "split_feature" in node:
            thresholds.append((node["split_feature"], node["threshold"]))
            walk(node["left_child"])
            walk(node["right_child"])

    for tree in boosters["binary"].dump_model()["tree_info"]:
        walk(tree["tree_structure"])
    # Not the splits at zero (threshold -1e-35, LightGBM's kZeroThreshold): LightGBM reads any |x| <= 1e-35
    # as 0 and lleaves does not, so the two differ on such tiny values, which features never take; exact
    # zeros (in the rows above and the zero row) go the same way in both.
    thresholds = [(feature, threshold) for feature, threshold in thresholds if abs(threshold) > 1e-30]
    assert len(thresholds) >= 30
    at_threshold = np.tile(np.nanmedian(data[0], axis=0), (len(thresholds), 1)).astype(np.float64)
    for i, (feature, threshold) in enumerate(thresholds):
        at_threshold[i, feature] = threshold
    special = np.array([[0.0] * N_FEATURES, [np.nan] * N_FEATURES])
    return np.vstack([X_new, at_threshold, special])


def _lightgbm(booster: lgb.Booster, X: np.ndarray, raw_score: bool) -> np.ndarray:
    return booster.predict(np.asarray(X).astype(np.float32), num_threads=1, raw_score=raw_score)


@pytest.mark.parametrize("raw_score", [False, True], ids=["transformed", "raw"])
@pytest.mark.parametrize("kind", list(MODELS))
def test_compiled_predictions_equal_lightgbm(kind, raw_score, boosters, rows, tmp_path):
    booster = boosters[kind]
    predictor = TreePredictor(booster, raw_score=raw_score, cache_dir=tmp_path)
    assert predictor.backend == "compiled", predictor.fallback_reason
    assert predictor.fallback_reason == ""
    assert booster.num_trees() == TREES
    expected = _lightgbm(booster, rows, raw_score)
    got = predictor.predict(rows)
    assert got.shape == expected.shape == (len(rows),)
    assert np.isfinite(got).all()
    np.testing.assert_allclose(got, expected, rtol=0, atol=TOLERANCE)
    if kind in ("binary", "cross_entropy") and not raw_score:
        assert ((got > 0) & (got < 1)).all()  # the sigmoid was applied, as LightGBM applies it


def test_the_rows_include_missing_values_and_split_thresholds(rows, boosters):
    """The comparison above covers what it claims: missing features, and values at a threshold whose
    side differs between float32 and float64 (the predictor casts to float32, as the models trained)."""
    assert np.isnan(rows).any(axis=1).sum() >= 100
    booster = boosters["binary"]
    as_float64 = booster.predict(rows, num_threads=1)
    assert not np.allclose(as_float64, _lightgbm(booster, rows, False), rtol=0, atol=TOLERANCE)
    np.testing.assert_allclose(TreePredictor(booster).predict(rows), _lightgbm(booster, rows, False),
                               rtol=0, atol=TOLERANCE)


def test_a_custom_objective_model_compiles_to_its_raw_sums(boosters, rows, data):
    """The factorized ranker saves no objective line; compiled, it must give LightGBM's raw sums
    both ways (with a custom objective LightGBM applies no transform either)."""
    booster = boosters["custom"]
    assert "\nobjective=" not in booster.model_to_string()
    raw = _lightgbm(booster, rows, True)
    np.testing.assert_allclose(_lightgbm(booster, rows, False), raw, rtol=0, atol=0)
    for raw_score in (False, True):
        predictor = TreePredictor(booster, raw_score=raw_score)
        assert predictor.backend == "compiled", predictor.fallback_reason
        np.testing.assert_allclose(predictor.predict(rows), raw, rtol=0, atol=TOLERANCE)
    assert raw.min() < 0 < raw.max()  # not squashed into (0, 1)


@pytest.mark.parametrize("kind", ["position_feature", "factorized"])
def test_ranker_scorer_scores_the_same_on_both_backends(kind, data, rows, tmp_path):
    X, y, _ = data
    if kind == "factorized":
        ranker = _factorized_ranker(X, y)
        X_page = rows
    else:
        ranker = PositionFeatureRanker(BoostingParams(n_estimators=TREES, num_leaves=7, min_child_samples=20,
                                                      num_threads=1), position_features=("f4", "f5")).fit(
            X, y, [f"f{i}" for i in range(N_FEATURES)])
        X_page = rows[:, :4]  # the scorer appends the slot features at position 0
    compiled = RankerScorer("r", ranker, backend="compiled", cache_dir=tmp_path)
    reference = RankerScorer("r", ranker, backend="lightgbm", cache_dir=tmp_path)
    compiled.prepare()
    assert compiled.predictor.backend == "compiled", compiled.predictor.fallback_reason
    assert reference.predictor.backend == "lightgbm"
    np.testing.assert_allclose(compiled.score(X_page), reference.score(X_page), rtol=0, atol=TOLERANCE)
    if kind == "factorized":
        np.testing.assert_allclose(compiled.score(X_page), ranker.predict(X_page), rtol=0, atol=TOLERANCE)
    else:
        np.testing.assert_allclose(compiled.score(X_page), ranker.predict(np.column_stack(
            [X_page, np.zeros((len(X_page), 2))])), rtol=0, atol=TOLERANCE)


def test_a_scorer_used_before_it_is_prepared_scores_with_lightgbm_while_it_compiles_in_the_background(
        data, rows, tmp_path):
    X, y, _ = data
    ranker = PositionFeatureRanker(BoostingParams(n_estimators=TREES, num_leaves=7, min_child_samples=20,
                                                  num_threads=1), position_features=("f4", "f5")).fit(
        X, y, [f"f{i}" for i in range(N_FEATURES)])
    scorer = RankerScorer("variant", ranker, backend="compiled", cache_dir=tmp_path)
    first = scorer.predictor
    assert first.backend == "lightgbm"  # the request did not wait for the compiler
    before = scorer.score(rows[:, :4])
    deadline = time.monotonic() + 60
    while scorer.predictor is first and time.monotonic() < deadline:
        time.sleep(0.05)
    assert scorer.predictor.backend == "compiled", scorer.predictor.fallback_reason
    np.testing.assert_allclose(scorer.score(rows[:, :4]), before, rtol=0, atol=TOLERANCE)


# --- the on-disk cache ----------------------------------------------------------------------------


def test_a_second_predictor_loads_the_cached_code_instead_of_compiling(boosters, rows, tmp_path, monkeypatch):
    booster = boosters["binary"]
    cache = tmp_path / "cache" / "trees"  # created on demand
    first = TreePredictor(booster, cache_dir=cache)
    assert first.backend == "compiled", first.fallback_reason
    files = sorted(cache.iterdir())
    assert [f.suffix for f in files] == [".o"]  # one object, no partial file left behind
    stamp = [(f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in files]
    assert stamp[0][2] > 0

    calls = []
    compile_to_module = lleaves.compiler.compile_to_module
    monkeypatch.setattr(lleaves.compiler, "compile_to_module",
                        lambda *a, **k: calls.append(a) or compile_to_module(*a, **k))
    started = time.perf_counter()
    second = TreePredictor(booster, cache_dir=cache)
    loaded_in = time.perf_counter() - started
    assert second.backend == "compiled", second.fallback_reason
    assert calls == []  # no LLVM IR generated or optimized: the object code came from the cache
    assert [(f.name, f.stat().st_mtime_ns, f.stat().st_size) for f in sorted(cache.iterdir())] == stamp
    np.testing.assert_array_equal(second.predict(rows), first.predict(rows))
    np.testing.assert_allclose(second.predict(rows), _lightgbm(booster, rows, False), rtol=0, atol=TOLERANCE)

    # Without the cache the same model is compiled again (the spy sees it), and that is the slower path.
    started = time.perf_counter()
    TreePredictor(booster, cache_dir=tmp_path / "elsewhere")
    compiled_in = time.perf_counter() - started
    assert len(calls) == 1
    assert loaded_in < compiled_in


def test_the_cache_key_separates_models_and_output_kinds(boosters, rows, tmp_path):
    TreePredictor(boosters["binary"], cache_dir=tmp_path)
    TreePredictor(boosters["binary"], raw_score=True, cache_dir=tmp_path)
    TreePredictor(boosters["regression"], cache_dir=tmp_path)
    assert len(list(tmp_path.glob("*.o"))) == 3
    # and each, loaded back, is its own model and output kind
    for kind, raw_score in (("binary", False), ("binary", True), ("regression", False)):
        loaded = TreePredictor(boosters[kind], raw_score=raw_score, cache_dir=tmp_path)
        np.testing.assert_allclose(loaded.predict(rows), _lightgbm(boosters[kind], rows, raw_score),
                                   rtol=0, atol=TOLERANCE)
    assert len(list(tmp_path.iterdir())) == 3


def test_an_unusable_cache_dir_still_compiles_in_memory(boosters, rows, tmp_path):
    not_a_folder = tmp_path / "file"
    not_a_folder.write_text("")
    predictor = TreePredictor(boosters["binary"], cache_dir=not_a_folder)
    assert predictor.backend == "compiled", predictor.fallback_reason
    np.testing.assert_allclose(predictor.predict(rows), _lightgbm(boosters["binary"], rows, False),
                               rtol=0, atol=TOLERANCE)


def test_the_default_cache_dir_follows_xdg_cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert default_cache_dir() == tmp_path / "shelfrank" / "compiled-trees"


@pytest.mark.parametrize("damage", ["truncated", "empty"])
def test_a_damaged_cache_file_does_not_take_the_process_down(damage, tmp_path):
    """In a subprocess: LLVM aborts the whole interpreter on a bad object file."""
    script = textwrap.dedent(f"""
        import numpy as np, lightgbm as lgb
        from pathlib import Path
        from shelfrank.models.compiled import TreePredictor
        rng = np.random.default_rng(0)
        X = rng.normal(size=(500, 4)).astype(np.float32)
        booster = lgb.train({{"num_leaves": 4, "verbosity": -1, "num_threads": 1, "objective": "binary"}},
                            lgb.Dataset(X, label=(X[:, 0] > 0).astype(float)), num_boost_round=3)
        cache = Path({str(tmp_path)!r})
        TreePredictor(booster, cache_dir=cache)
        [obj] = cache.glob("*.o")
        obj.write_bytes(obj.read_bytes()[:100] if {damage!r} == "truncated" else b"")
        predictor = TreePredictor(booster, cache_dir=cache)
        assert np.allclose(predictor.predict(X), booster.predict(X, num_threads=1), rtol=0, atol=1e-9)
        print("survived", predictor.backend)
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "survived" in done.stdout


# --- the LightGBM backend, input checks ------------------------------------------------------------


def test_the_lightgbm_backend_uses_lightgbm(boosters, rows, tmp_path, monkeypatch):
    def no_lleaves(*args, **kwargs):
        raise AssertionError("the lightgbm backend must not compile")

    monkeypatch.setattr(lleaves, "Model", no_lleaves)
    booster = boosters["binary"]
    for raw_score in (False, True):
        predictor = TreePredictor(booster, raw_score=raw_score, backend="lightgbm", cache_dir=tmp_path)
        assert predictor.backend == "lightgbm"
        assert predictor.fallback_reason == ""
        np.testing.assert_array_equal(predictor.predict(rows), _lightgbm(booster, rows, raw_score))
    assert list(tmp_path.iterdir()) == []


def test_an_unknown_backend_is_a_clear_error(boosters):
    with pytest.raises(ValueError, match="unknown tree backend 'treelite'.*compiled, lightgbm"):
        TreePredictor(boosters["binary"], backend="treelite")


@pytest.mark.parametrize("backend", ["compiled", "lightgbm"])
def test_wrong_inputs_are_clear_errors_and_no_rows_score_to_nothing(backend, boosters, rows):
    predictor = TreePredictor(boosters["binary"], backend=backend)
    assert predictor.backend == backend, predictor.fallback_reason
    for bad in (rows[:, :-1], np.column_stack([rows, rows[:, :1]]), rows[0]):
        with pytest.raises(ValueError, match=f"expected rows of {N_FEATURES} features, got shape"):
            predictor.predict(bad)
    empty = predictor.predict(np.zeros((0, N_FEATURES)))
    assert isinstance(empty, np.ndarray) and empty.shape == (0,)
    one = predictor.predict(rows[:1])
    np.testing.assert_allclose(one, _lightgbm(boosters["binary"], rows[:1], False), rtol=0, atol=TOLERANCE)


# --- the fallback ----------------------------------------------------------------------------------


@pytest.mark.parametrize("raw_score", [False, True], ids=["transformed", "raw"])
def test_when_compiling_fails_lightgbm_scores_and_says_why(raw_score, boosters, rows, tmp_path, monkeypatch,
                                                            caplog):
    class BrokenModel:
        def __init__(self, *args, **kwargs):
            raise RuntimeError("LLVM is not available here")

    monkeypatch.setattr(lleaves, "Model", BrokenModel)
    booster = boosters["custom" if raw_score else "binary"]
    with caplog.at_level(logging.WARNING, logger="shelfrank.models.compiled"):
        predictor = TreePredictor(booster, raw_score=raw_score, cache_dir=tmp_path)
    assert predictor.backend == "lightgbm"
    assert predictor.fallback_reason == "RuntimeError: LLVM is not available here"
    assert "LLVM is not available here" in caplog.text
    np.testing.assert_array_equal(predictor.predict(rows), _lightgbm(booster, rows, raw_score))
    assert list(tmp_path.glob("*.o")) == []


def test_a_failure_while_compiling_falls_back_too(boosters, rows, tmp_path, monkeypatch):
    def broken(self, *args, **kwargs):
        raise ValueError("Objective 'x' not yet implemented")

    monkeypatch.setattr(lleaves.Model, "compile", broken)
    predictor = TreePredictor(boosters["regression"], cache_dir=tmp_path)
    assert predictor.backend == "lightgbm"
    assert predictor.fallback_reason.startswith("ValueError: Objective 'x'")
    np.testing.assert_array_equal(predictor.predict(rows), _lightgbm(boosters["regression"], rows, False))
    assert list(tmp_path.iterdir()) == []
