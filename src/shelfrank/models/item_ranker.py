"""The item ranker: scores items inside a collection, trained on funnel-weighted labels,
with position bias handled one of two ways.

Labels. An impression's label is the deepest funnel stage it reached in its request
(purchase > add_to_cart > click > nothing), mapped to a gain in [0, 1] by
:class:`FunnelWeights` (default click 1, add_to_cart 3, purchase 10, divided by the
purchase weight). An item that draws clicks but rarely converts thus earns less than
one that converts, which a click-only model gets backwards. Both rankers below fit the
gain with a cross-entropy loss (LightGBM accepts labels in [0, 1]).

Position bias, two ways, both measured:

* :class:`PositionFeatureRanker` (a): row, position (and surface) are training features;
  at inference they are set to a configured slot (row 0, position 0 by default), so
  every candidate is scored as if shown in the same, best-examined place.
* :class:`FactorizedRanker` (b): P(engage | x, slot) = theta(slot) * sigmoid(f(x)), with
  theta the examination curve estimated from the logs (models/examination.py) and held
  fixed; f is boosted under that likelihood with a custom objective, so the trees only
  ever see relevance. f ranks.

Both follow the estimator conventions: the constructor stores hyperparameters,
``fit`` returns self, learned attributes end in ``_``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path

import lightgbm as lgb
import numpy as np

STAGE_NONE, STAGE_CLICK, STAGE_CART, STAGE_PURCHASE = 0, 1, 2, 3


@dataclass(frozen=True)
class FunnelWeights:
    """Relative value of each funnel stage; the label is the deepest stage's weight / purchase weight."""

    click: float = 1.0
    add_to_cart: float = 3.0
    purchase: float = 10.0

    def __post_init__(self) -> None:
        if not (0 < self.click <= self.add_to_cart <= self.purchase):
            raise ValueError(
                f"funnel weights must satisfy 0 < click <= add_to_cart <= purchase, got {self.click}, "
                f"{self.add_to_cart}, {self.purchase}"
            )

    def gains(self, stage: np.ndarray) -> np.ndarray:
        table = np.array([0.0, self.click, self.add_to_cart, self.purchase]) / self.purchase
        stage = np.asarray(stage)
        if stage.size and (stage.min() < STAGE_NONE or stage.max() > STAGE_PURCHASE):
            raise ValueError("funnel stage must be 0 (none), 1 (click), 2 (add_to_cart) or 3 (purchase)")
        return table[stage]


CLICKS_ONLY = FunnelWeights(click=1.0, add_to_cart=1.0, purchase=1.0)


def deepest_stage(clicked: np.ndarray, carted: np.ndarray, purchased: np.ndarray) -> np.ndarray:
    """Deepest stage reached per impression (not the most recent interaction)."""
    stage = np.zeros(len(clicked), dtype=np.int8)
    stage[np.asarray(clicked, bool)] = STAGE_CLICK
    stage[np.asarray(carted, bool)] = STAGE_CART
    stage[np.asarray(purchased, bool)] = STAGE_PURCHASE
    return stage


@dataclass(frozen=True)
class BoostingParams:
    n_estimators: int = 200
    num_leaves: int = 31
    learning_rate: float = 0.05
    min_child_samples: int = 50
    feature_fraction: float = 0.9
    num_threads: int = 2
    seed: int = 0

    def lightgbm(self) -> dict:
        return {
            "num_leaves": self.num_leaves,
            "learning_rate": self.learning_rate,
            "min_data_in_leaf": self.min_child_samples,
            "feature_fraction": self.feature_fraction,
            "num_threads": self.num_threads,
            "seed": self.seed,
            "deterministic": True,
            "force_row_wise": True,
            "max_bin": 63,  # coarser histograms: faster training on 2 cores
            "verbosity": -1,
        }


def _check_xy(X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]) -> tuple[np.ndarray, np.ndarray]:
    X = np.asarray(X, dtype=np.float32)
    y = np.asarray(y, dtype=np.float64)
    if X.ndim != 2 or X.shape[0] != y.shape[0]:
        raise ValueError(f"X must be (n, d) and y (n,), got {X.shape} and {y.shape}")
    if X.shape[1] != len(feature_names):
        raise ValueError(f"X has {X.shape[1]} columns but {len(feature_names)} feature names")
    if y.size and (y.min() < 0 or y.max() > 1):
        raise ValueError("labels must be gains in [0, 1]; map funnel stages with FunnelWeights.gains")
    return X, y


def _sigmoid(z: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-z))


class PositionFeatureRanker:
    """(a) Position as a training feature, inference at a fixed slot."""

    kind = "item_ranker_position_feature"

    def __init__(
        self,
        params: BoostingParams | None = None,
        position_features: Sequence[str] = ("row", "position"),
        inference_slot: Mapping[str, float] | None = None,
    ) -> None:
        self.params = params or BoostingParams()
        self.position_features = tuple(position_features)
        self.inference_slot = dict(inference_slot or dict.fromkeys(self.position_features, 0.0))

    def fit(self, X: np.ndarray, y: np.ndarray, feature_names: Sequence[str]) -> PositionFeatureRanker:
        X, y = _check_xy(X, y, feature_names)
        missing = [f for f in self.position_features if f not in feature_names]
        if missing:
            raise ValueError(f"position features {missing} are not among the training features")
        self.feature_names_ = tuple(feature_names)
        train = lgb.Dataset(X, label=y, feature_name=list(self.feature_names_), free_raw_data=True)
        params = {**self.params.lightgbm(), "objective": "cross_entropy"}
        self.booster_ = lgb.train(params, train, num_boost_round=self.params.n_estimators)
        return self

    def predict(self, X: np.ndarray, slot: Mapping[str, float] | None = None) -> np.ndarray:
        """Expected gain were each candidate shown at `slot` (default: the configured inference slot)."""
        X = np.array(X, dtype=np.float32, copy=True)
        for name, value in (slot or self.inference_slot).items():
            X[:, self.feature_names_.index(name)] = value
        return self.booster_.predict(X, num_threads=self.params.num_threads)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "model.lgb"))
        (folder / "ranker.json").write_text(json.dumps({
            "kind": self.kind, "params": asdict(self.params), "position_features": self.position_features,
            "inference_slot": self.inference_slot, "feature_names": self.feature_names_,
        }))

    @classmethod
    def load(cls, folder: Path) -> PositionFeatureRanker:
        spec = json.loads((folder / "ranker.json").read_text())
        ranker = cls(BoostingParams(**spec["params"]), spec["position_features"], spec["inference_slot"])
        ranker.feature_names_ = tuple(spec["feature_names"])
        ranker.booster_ = lgb.Booster(model_file=str(folder / "model.lgb"))
        return ranker


class FactorizedRanker:
    """(b) P(engage) = examination(slot) x sigmoid(f(x)); f is boosted with the examination held fixed."""

    kind = "item_ranker_factorized"

    def __init__(self, params: BoostingParams | None = None, min_examination: float = 1e-3) -> None:
        self.params = params or BoostingParams()
        self.min_examination = min_examination

    def fit(
        self, X: np.ndarray, y: np.ndarray, examination: np.ndarray, feature_names: Sequence[str]
    ) -> FactorizedRanker:
        X, y = _check_xy(X, y, feature_names)
        theta = np.clip(np.asarray(examination, dtype=np.float64), self.min_examination, 1.0)
        if theta.shape != y.shape:
            raise ValueError(f"examination must have one value per example, got {theta.shape} for {y.shape}")
        self.feature_names_ = tuple(feature_names)
        # Start from the relevance level that explains the mean engagement given the examination.
        base = np.clip(y.mean() / theta.mean(), 1e-4, 1 - 1e-4)
        self.base_score_ = float(np.log(base / (1 - base)))

        def objective(preds: np.ndarray, data: lgb.Dataset) -> tuple[np.ndarray, np.ndarray]:
            # Negative log likelihood of y under q = theta * sigmoid(f), differentiated in f.
            p = _sigmoid(preds + self.base_score_)
            q = np.clip(theta * p, 1e-9, 1 - 1e-9)
            dq_df = theta * p * (1 - p)
            grad = -(y / q - (1 - y) / (1 - q)) * dq_df
            # Fisher information: positive, so every Newton step is a descent step.
            hess = np.maximum(dq_df**2 / (q * (1 - q)), 1e-9)
            return grad, hess

        train = lgb.Dataset(X, label=y, feature_name=list(self.feature_names_), free_raw_data=True)
        params = {**self.params.lightgbm(), "objective": objective}
        self.booster_ = lgb.train(params, train, num_boost_round=self.params.n_estimators)
        return self

    def predict(self, X: np.ndarray) -> np.ndarray:
        """P(engage | examined, x): the relevance part, which ranks."""
        raw = self.booster_.predict(np.asarray(X, dtype=np.float32), raw_score=True,
                                    num_threads=self.params.num_threads)
        return _sigmoid(raw + self.base_score_)

    def save(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.booster_.save_model(str(folder / "model.lgb"))
        (folder / "ranker.json").write_text(json.dumps({
            "kind": self.kind, "params": asdict(self.params), "min_examination": self.min_examination,
            "base_score": self.base_score_, "feature_names": self.feature_names_,
        }))

    @classmethod
    def load(cls, folder: Path) -> FactorizedRanker:
        spec = json.loads((folder / "ranker.json").read_text())
        ranker = cls(BoostingParams(**spec["params"]), spec["min_examination"])
        ranker.base_score_ = spec["base_score"]
        ranker.feature_names_ = tuple(spec["feature_names"])
        ranker.booster_ = lgb.Booster(model_file=str(folder / "model.lgb"))
        return ranker
