"""The built page as the API, the CLI and the evaluation read it: rows of items with reasons.

Every shown item carries the propensity with which the page's randomization (exploration)
put it at that slot, so the client logs it back with the impression and later evaluation
can be unbiased. ``to_dict`` is the stable JSON shape of ``GET /v1/homepage``.

The three are msgspec Structs: a page creates hundreds of slots per request, and a Struct is
made in C (faster than a slots dataclass) and written to JSON by ``msgspec.json.encode`` about
7x faster than orjson writes the same dataclasses (docs/benchmarks.md). ``gc=False``: a page
holds no reference cycles, so its objects need not be tracked by the garbage collector.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime

import msgspec
import numpy as np


class ItemSlot(msgspec.Struct, gc=False):
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
    signals: Mapping[str, float] = msgspec.field(default_factory=dict)


class CollectionRow(msgspec.Struct, gc=False):
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
    signals: Mapping[str, float] = msgspec.field(default_factory=dict)


class Page(msgspec.Struct, gc=False):
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
    timings_ms: Mapping[str, float] = msgspec.field(default_factory=dict)  # per stage and "total"
    # reason -> items (or collections) removed or demoted
    rule_counts: Mapping[str, int] = msgspec.field(default_factory=dict)

    def to_dict(self) -> dict:
        """Plain dicts, lists and scalars (what the JSON holds)."""
        return msgspec.to_builtins(self, enc_hook=plain_value)

    def to_json(self) -> bytes:
        return msgspec.json.encode(self, enc_hook=plain_value)

    def item_ids(self) -> list[list[str]]:
        """The page as rows of item ids (what the ground truth scores)."""
        return [[s.item_id for s in r.items] for r in self.rows]


def plain_value(value: object) -> object:
    """A value the JSON writers do not write themselves, as a plain one: numpy scalars and arrays as
    their values (float32 and float16 by their own shortest text, 0.1 not 0.10000000149011612),
    sets and tuples as lists, times as ISO text, anything else as its text; never an error, so an
    odd value from a custom source cannot fail a page. The page's msgspec JSON and the service's
    other (orjson) responses both call it for what they cannot write."""
    if isinstance(value, np.floating) and value.dtype.itemsize < 8:
        return float(str(value))
    if isinstance(value, (np.generic, np.ndarray)):
        return value.tolist()
    if isinstance(value, (set, frozenset, tuple)):
        return list(value)
    if isinstance(value, datetime):
        return value.isoformat()
    return str(value)
