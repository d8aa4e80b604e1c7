"""Retrieval on synthetic collection impressions: collections shown higher get more engagement
regardless of their appeal; the model must credit the row, not the collections the old system
happened to put on top."""

import numpy as np

from shelfrank.evaluate.metrics import roc_auc
from shelfrank.models.collection_retrieval import CollectionRetrievalModel
from shelfrank.models.item_ranker import BoostingParams


def _impressions(n: int, seed: int):
    rng = np.random.default_rng(seed)
    affinity = rng.normal(size=n)  # user x collection affinity: the real signal
    placement = rng.normal(size=n)  # what the old system sorted rows by: no effect on appeal
    row = np.clip(np.floor(4 - 2 * placement + rng.normal(size=n)), 0, 7)
    p_engage = 1 / (1 + np.exp(-(-1.0 + 1.3 * affinity)))
    examined = 1 / (1 + 0.6 * row)
    engaged = rng.random(n) < examined * p_engage
    X = np.column_stack([affinity, placement, row]).astype(np.float32)
    return X, engaged.astype(float), p_engage


def test_retrieval_scores_at_row_zero_and_ranks_by_appeal():
    X, y, _ = _impressions(40_000, seed=3)
    names = ["affinity", "placement", "row"]
    model = CollectionRetrievalModel(BoostingParams(n_estimators=80, num_leaves=15)).fit(X, y, names)
    X_test, _, truth = _impressions(10_000, seed=4)
    scores = model.predict(X_test)
    shifted = X_test.copy()
    shifted[:, 2] = 7
    assert np.allclose(scores, model.predict(shifted)), "inference must ignore the logged row"
    assert np.corrcoef(scores, truth)[0, 1] > 0.9
    # Placement only bought rows; scored at row 0 it explains little of the ranking.
    assert abs(np.corrcoef(scores, X_test[:, 1])[0, 1]) < 0.15
    assert roc_auc(truth > np.median(truth), scores) > 0.9
