"""The built page as the API, the CLI and the evaluation read it: rows of items with reasons.

Every shown item carries the propensity with which the page's randomization (exploration)
put it at that slot, so the client logs it back with the impression and later evaluation
can be unbiased. ``to_dict`` is the stable JSON shape of ``GET /v1/homepage``.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, field


# slots, not frozen: a page creates hundreds of these per request, and frozen dataclasses
# construct several times slower.
@dataclass(slots=True)
class ItemSlot:
    item_id: str
    position: int
    score: float  # the item ranker's score (relevance at position 0)
    propensity: float  # probability the page's randomization put this item at this position
    title: str = ""
    brand: str = ""
    category_id: str = ""
    category: str = ""
    price: float = 0.0
    image_url: str = ""
    has_image: bool = True
    explore: bool = False  # placed by exploration, not by the ranker
    badges: tuple[str, ...] = ()  # e.g. "new", "explore", "bought before"
    reason: str = ""
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class CollectionRow:
    collection_id: str
    title: str
    source: str  # curated | rules | ml
    generator: str
    row: int
    score: float  # the ordering score (mean of top-K item scores, or marginal gain)
    reason: str
    items: tuple[ItemSlot, ...]
    retrieval_score: float | None = None  # P(engage) from the collection retrieval model, at row 0
    explore: bool = False
    pinned: bool = False
    propensity: float = 1.0  # probability the randomization put this collection at this row
    signals: Mapping[str, float] = field(default_factory=dict)


@dataclass(slots=True)
class Page:
    request_id: str
    user_id: str
    at: str  # ISO 8601 UTC
    surface: str
    location: str
    rows: tuple[CollectionRow, ...]
    model_version: str = ""
    pipeline: str = ""  # the pipeline declaration's name (e.g. "default", "no_diversity")
    new_user: bool = False
    fallback: bool = False
    fallback_reason: str = ""
    timings_ms: Mapping[str, float] = field(default_factory=dict)  # per stage and "total"
    rule_counts: Mapping[str, int] = field(default_factory=dict)  # reason -> items/collections removed or demoted

    def to_dict(self) -> dict:
        return asdict(self)

    def item_ids(self) -> list[list[str]]:
        """The page as rows of item ids (what the ground truth scores)."""
        return [[s.item_id for s in r.items] for r in self.rows]
