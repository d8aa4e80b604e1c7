"""The page under construction: C candidate collections x n candidate items, as arrays.

Every stage of the page pipeline reads and returns a :class:`Slate`. Items are integer
indices into the catalog's arrays (-1 = empty slot); an item that a stage removes keeps
its slot but gets a score of -inf, so shapes never change inside a request and every
stage stays vectorized. Each stage appends a :class:`StageTrace` saying what it did.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property

import numpy as np


@dataclass(frozen=True)
class StageTrace:
    stage: str
    removed: Mapping[str, int] = field(default_factory=dict)  # reason -> items (or collections) removed
    demoted: int = 0
    seconds: float = 0.0


@dataclass(frozen=True)
class Slate:
    collection_ids: np.ndarray  # (C,) str
    items: np.ndarray  # (C, n) int64 catalog indices, -1 for an empty slot
    scores: np.ndarray  # (C, n) float64, -inf for an empty or removed slot
    collection_scores: np.ndarray  # (C,) float64, -inf for a dropped collection
    pinned_rows: np.ndarray  # (C,) int64, -1 when not pinned
    trace: tuple[StageTrace, ...] = ()
    # The ranker's own scores, kept when `scores` becomes a display order (after diversity);
    # None means "the same as scores".
    relevance: np.ndarray | None = None

    def __post_init__(self) -> None:
        shape = self.items.shape
        if len(shape) != 2:
            raise ValueError(f"items must be (collections, slots), got shape {shape}")
        if self.scores.shape != shape:
            raise ValueError(f"scores {self.scores.shape} and items {shape} differ")
        if self.relevance is None:  # read-only below, so the scores themselves can stand for it
            object.__setattr__(self, "relevance", self.scores)
        elif self.relevance.shape != shape:
            raise ValueError(f"relevance {self.relevance.shape} and items {shape} differ")
        for name, a in (("collection_ids", self.collection_ids), ("collection_scores", self.collection_scores),
                        ("pinned_rows", self.pinned_rows)):
            if a.shape != shape[:1]:
                raise ValueError(f"{name} must have one entry per collection ({shape[0]})")
        # Stages return new slates and never write into an old one's arrays; slates share arrays
        # (a rule that changes nothing passes them on, the segment cache keeps prepared slates),
        # so a write would change other pages too: make it an error instead.
        for a in (self.collection_ids, self.collection_scores, self.pinned_rows, self.items, self.scores,
                  self.relevance):
            a.setflags(write=False)

    @classmethod
    def from_lists(
        cls,
        collection_ids: list[str],
        items: list[list[int]],
        scores: list[list[float]],
        collection_scores: list[float] | None = None,
        pinned_rows: list[int] | None = None,
    ) -> Slate:
        """Pad ragged per-collection lists into arrays (tests and small callers)."""
        c = len(collection_ids)
        n = max((len(row) for row in items), default=0)
        item_array = np.full((c, n), -1, dtype=np.int64)
        score_array = np.full((c, n), -np.inf)
        for i, (row_items, row_scores) in enumerate(zip(items, scores, strict=True)):
            item_array[i, : len(row_items)] = row_items
            score_array[i, : len(row_scores)] = row_scores
        return cls(
            collection_ids=np.asarray(collection_ids, dtype=object),
            items=item_array,
            scores=score_array,
            collection_scores=np.asarray(collection_scores if collection_scores is not None else [0.0] * c, float),
            pinned_rows=np.asarray(pinned_rows if pinned_rows is not None else [-1] * c, dtype=np.int64),
        )

    # Derived arrays, computed once per slate (a slate is immutable: stages return new ones).
    @cached_property
    def valid(self) -> np.ndarray:
        return (self.items >= 0) & np.isfinite(self.scores)

    @cached_property
    def row_of(self) -> dict[str, int]:
        """Each collection's row, by id (a page looks its pool's rows up from several stages)."""
        return {str(c): i for i, c in enumerate(self.collection_ids.tolist())}

    @cached_property
    def live_collections(self) -> np.ndarray:
        return np.isfinite(self.collection_scores)

    @cached_property
    def display_order(self) -> np.ndarray:
        """(C, n) each row's slots by descending score, ties in slot order; removed and empty
        slots (-inf) last. The order every "first k shown items" reads."""
        return np.argsort(-self.scores, axis=1, kind="stable")

    def with_trace(self, trace: StageTrace, **changes: object) -> Slate:
        fields = {"collection_ids": self.collection_ids, "items": self.items, "scores": self.scores,
                  "collection_scores": self.collection_scores, "pinned_rows": self.pinned_rows,
                  "trace": (*self.trace, trace), "relevance": self.relevance}
        fields.update(changes)  # built directly: dataclasses.replace costs twice as much per stage
        out = Slate(**fields)
        # A stage that changed nothing a derived array reads from keeps it (arrays are not mutated).
        same_slots = out.items is self.items and out.scores is self.scores
        for name, same in (("valid", same_slots), ("display_order", same_slots),
                           ("live_collections", out.collection_scores is self.collection_scores)):
            if same and name in self.__dict__:
                out.__dict__[name] = self.__dict__[name]
        return out

    def reorder_collections(self, order: np.ndarray, trace: StageTrace, **changes: object) -> Slate:
        """The same slate with its collections (rows of every array) in `order`."""
        per_collection = {name: getattr(self, name)[order] for name in
                          ("collection_ids", "items", "scores", "collection_scores", "pinned_rows", "relevance")}
        per_collection.update(changes)
        return self.with_trace(trace, **per_collection)

    def rows(self) -> list[tuple[str, list[int]]]:
        """The page as it reads: live collections in array order, their valid items by descending score."""
        out = []
        for c in np.flatnonzero(self.live_collections):
            order = self.display_order[c]
            out.append((str(self.collection_ids[c]), self.items[c, order[self.valid[c, order]]].tolist()))
        return out
