"""Training options of the shared tiny store (tests/conftest.py builds it once per session)."""

from __future__ import annotations

from shelfrank.models.item_ranker import BoostingParams
from shelfrank.models.training import TrainOptions

TINY_OPTIONS = TrainOptions(test_days=2.0, max_train_requests=1500, max_test_requests=600,
                            ranker=BoostingParams(n_estimators=60, num_leaves=15, learning_rate=0.1))
