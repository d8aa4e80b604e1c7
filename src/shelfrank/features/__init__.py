"""Features, declared once (definitions.py), computed offline (offline.py) and online (online.py).

    space = FeatureSpace(vocabularies=fit_vocabularies(con))
    training = OfflineFeatures(con, space).compute(examples)       # point-in-time, a pyarrow Table
    state = InMemoryFeatureState(space, items, users); state.update(events)
    matrix = state.get(user_id, item_ids, ts, context)              # same columns, numpy
"""

from shelfrank.features.definitions import (
    FEATURE_NAMES,
    FEATURES,
    Feature,
    FeatureSpace,
    ItemVectors,
    Vocabularies,
)
from shelfrank.features.offline import OfflineFeatures, fit_vocabularies
from shelfrank.features.online import FeatureState, InMemoryFeatureState

__all__ = [
    "FEATURES",
    "FEATURE_NAMES",
    "Feature",
    "FeatureSpace",
    "FeatureState",
    "InMemoryFeatureState",
    "ItemVectors",
    "OfflineFeatures",
    "Vocabularies",
    "fit_vocabularies",
]
