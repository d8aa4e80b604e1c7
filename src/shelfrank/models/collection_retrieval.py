"""The collection retrieval model: P(user engages with a collection | user, collection, context).

Trained on collection impressions (features/labels.py: a collection shown at a row of a
request; label 1 when any of its items was clicked, carted or bought there), with the
row as a training feature and row 0 at inference, so collections are compared as if
each stood at the top. It is the position-feature ranker with one slot dimension.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

from shelfrank.models.item_ranker import BoostingParams, PositionFeatureRanker

RETRIEVAL_DEFAULTS = BoostingParams(n_estimators=150, num_leaves=31, learning_rate=0.05, min_child_samples=100)


class CollectionRetrievalModel(PositionFeatureRanker):
    kind = "collection_retrieval"

    def __init__(
        self,
        params: BoostingParams | None = None,
        position_features: Sequence[str] = ("row",),
        inference_slot: Mapping[str, float] | None = None,
    ) -> None:
        super().__init__(params or RETRIEVAL_DEFAULTS, position_features, inference_slot)
