"""The first pass: stock filter, merged ids, taste scoring, pinned collections kept."""

from __future__ import annotations

import numpy as np

from shelfrank.candidates.base import CandidateCollection
from shelfrank.candidates.first_pass import first_pass


def _collection(cid: str, items: list[int], prior: float = 0.5, pinned_row: int = -1) -> CandidateCollection:
    return CandidateCollection(collection_id=cid, title=cid, source="curated" if pinned_row >= 0 else "rules",
                               generator="test", items=np.asarray(items, dtype=np.int64), reason=cid,
                               prior=prior, pinned_row=pinned_row)


def test_a_pinned_collection_with_nothing_in_stock_is_kept_and_scored_without_a_vector():
    rng = np.random.default_rng(0)
    vectors = rng.normal(size=(20, 4))
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    in_stock = np.ones(20, dtype=bool)
    in_stock[[15, 16]] = False
    taste = vectors[:3].sum(axis=0)
    taste /= np.linalg.norm(taste)
    candidates = [_collection("near", [0, 1, 2, 3, 4]), _collection("far", [10, 11, 12, 13]),
                  _collection("pinned-empty", [15, 16], prior=0.1, pinned_row=0)]  # last, and all out of stock
    for order in (candidates, candidates[::-1]):
        kept, scores, removed = first_pass(order, in_stock, 10, 4, taste, vectors)
        by_id = dict(zip([c.collection_id for c in kept], scores.tolist(), strict=True))
        assert kept[0].collection_id == "pinned-empty" and len(kept[0].items) == 0
        assert by_id["pinned-empty"] == 0.1  # its prior alone: no items, no taste term
        assert by_id["near"] > by_id["far"]
        assert not removed["too_few_in_stock"]
