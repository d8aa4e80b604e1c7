"""The shapes every collection source shares: the request's user context in, candidate collections out.

A source is a small class with one verb method, ``propose(user) -> list[CandidateCollection]``.
It holds whatever it reads (the catalog index, trending counters, embeddings) from its
constructor, so adding a source never touches another. The page pipeline declares the
sources it runs and whether each fails open (its error is traced and the page goes on
without it) or closed.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Protocol

import numpy as np

from shelfrank.contracts import PageRequest
from shelfrank.store.history import UserHistory


@dataclass(frozen=True)
class UserContext:
    """Everything a source may know about the request's user and moment."""

    request: PageRequest
    t: float  # request time, seconds since the epoch
    location: str  # the request's location, else the profile's, else ""
    known: bool  # the user is in the users table or has history
    history: UserHistory  # engagement strictly before t
    taste: np.ndarray | None = None  # unit vector in item-embedding space, None without history
    subscription: str = ""

    @property
    def user_id(self) -> str:
        return self.request.user_id


@dataclass(frozen=True)
class CandidateCollection:
    """One collection a source proposes: its candidate items (catalog indices, best first by the
    source's own order) and why it was proposed."""

    collection_id: str  # curated: the operator's id; generated: "<generator>:<key>", stable across requests
    title: str
    source: str  # "curated" | "rules" | "ml"
    generator: str  # which source made it, e.g. "buy_again", "top_brands", "predicted_categories"
    items: np.ndarray  # int64 catalog indices, no repeats
    reason: str  # short human reason, e.g. "Because you bought from Acme"
    signals: Mapping[str, float] = field(default_factory=dict)  # machine-readable reason values
    prior: float = 0.0  # the source's own strength in [0, 1] (first pass tie-breaks on it)
    pinned_row: int = -1  # curated only: the row it must take
    created_t: float = -np.inf  # when the collection first existed (exploration of new collections)

    def __post_init__(self) -> None:
        if self.source not in ("curated", "rules", "ml"):
            raise ValueError(f"source must be curated, rules or ml, got {self.source!r}")


class CollectionSource(Protocol):
    name: str  # the generator name its candidates carry
    fail_open: bool  # True: an error in this source is traced and skipped, the page goes on

    def propose(self, user: UserContext) -> list[CandidateCollection]:
        """Candidate collections for this user and moment (may be empty)."""
        ...
