"""Sizes of the synthetic store: how many items, users and days, and how busy it is."""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime

VERTICALS = ("groceries", "electronics", "fashion", "home", "beauty", "sports", "toys", "books", "pets", "garden")
# Verticals whose items are bought again and again (users keep staple items there).
CONSUMABLE_VERTICALS = ("groceries", "beauty", "pets")
SURFACES = ("web", "ios", "android")


@dataclass(frozen=True)
class ScaleSpec:
    """Everything that sizes one simulated store. Derive variants with `dataclasses.replace`."""

    name: str
    n_items: int
    n_categories: int  # all levels: verticals + mid-level + leaf categories
    n_verticals: int
    n_brands: int
    n_users: int
    n_days: int
    # Mean sessions per user per day before the long-tailed activity multiplier.
    sessions_per_user_day: float
    start: datetime = datetime(2026, 10, 1, tzinfo=UTC)
    n_regions: int = 12
    rows_per_page: int = 8
    items_per_row: int = 10
    pool_size: int = 50  # items a collection's pool holds (the logging policy picks from these)
    randomized_share: float = 0.05  # requests served by the uniformly randomized logging policy
    requests_per_chunk: int = 20_000  # bounds memory: events are built this many requests at a time
    rows_per_event_part: int = 5_000_000

    @property
    def verticals(self) -> tuple[str, ...]:
        return VERTICALS[: self.n_verticals]

    @property
    def period_seconds(self) -> float:
        return self.n_days * 86_400.0

    def with_(self, **changes: object) -> ScaleSpec:
        return replace(self, **changes)


SCALES: dict[str, ScaleSpec] = {
    "tiny": ScaleSpec(
        name="tiny", n_items=3_000, n_categories=120, n_verticals=6, n_brands=300, n_users=1_000, n_days=7,
        sessions_per_user_day=0.9,
    ),
    "small": ScaleSpec(
        name="small", n_items=50_000, n_categories=800, n_verticals=10, n_brands=2_000, n_users=20_000,
        n_days=14, sessions_per_user_day=0.06,
    ),
    "standard": ScaleSpec(
        name="standard", n_items=500_000, n_categories=3_000, n_verticals=10, n_brands=10_000, n_users=200_000,
        n_days=30, sessions_per_user_day=0.036,
    ),
}


def resolve_scale(scale: str | ScaleSpec) -> ScaleSpec:
    if isinstance(scale, ScaleSpec):
        return scale
    try:
        return SCALES[scale]
    except KeyError:
        raise ValueError(f"unknown scale {scale!r}; expected one of: {', '.join(SCALES)}") from None
