"""What the storefront offers to pick: sample shoppers of contrasting tastes, locations, the store's clock.

Read once from the engine's in-memory state (profiles and engagement histories), never from the
store: the service holds the store read-only and other replicas may share it.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, datetime

import numpy as np

from shelfrank.store.history import ADD_TO_CART, CLICK, PURCHASE

# How much an event says about taste: a purchase is worth ten clicks (as in trending).
_EVENT_WEIGHT = np.zeros(PURCHASE + 1)
_EVENT_WEIGHT[[CLICK, ADD_TO_CART, PURCHASE]] = (1.0, 3.0, 10.0)


@dataclass(frozen=True)
class SampleUser:
    user_id: str
    label: str  # e.g. "Beauty buyer (u000123)"
    vertical: str
    engagement: float  # weighted clicks, carts and purchases in the vertical


@dataclass(frozen=True)
class StoreView:
    users: tuple[SampleUser, ...]
    locations: tuple[str, ...]
    clock: datetime | None  # the newest engagement the engine knows (pages default to just after it)


def describe_store(engine: object, n_samples: int = 4, min_share: float = 0.5, max_users: int = 5_000) -> StoreView:
    """Per vertical, the user with the most engagement whose history is mostly that vertical;
    the `n_samples` verticals with the heaviest such users. Scans at most `max_users` profiles."""
    features = getattr(engine, "features", None)
    profiles: dict = getattr(features, "profiles", None) or {}
    history_state = getattr(engine, "history_state", None)
    catalog = getattr(engine, "catalog", None)
    if catalog is None:  # an engine without a catalog (a test double): no samples, the wall clock
        return StoreView((), (), None)
    n_verticals = len(catalog.verticals)
    best = np.zeros(n_verticals)
    best_user = [""] * n_verticals
    newest = -np.inf
    if history_state is not None:
        for user_id in list(profiles)[:max_users]:  # one small vectorized step per user, at startup only
            history = history_state.history(user_id)
            if not len(history):
                continue
            newest = max(newest, float(history.ts[-1]))
            weights = np.bincount(catalog.vertical[history.items], weights=_EVENT_WEIGHT[history.events],
                                  minlength=n_verticals)
            top = int(np.argmax(weights))
            total = weights.sum()
            if total > 0 and weights[top] >= min_share * total and weights[top] > best[top]:
                best[top], best_user[top] = weights[top], str(user_id)
    users = []
    for v in np.argsort(-best)[:n_samples]:
        if best[v] <= 0:
            continue
        name = str(catalog.verticals[v])
        users.append(SampleUser(best_user[v], f"{name.title()} shopper ({best_user[v]})", name, float(best[v])))
    locations = sorted({str(p[0]) for p in profiles.values() if p and p[0]})[:50]
    clock = datetime.fromtimestamp(newest, UTC) if np.isfinite(newest) else None
    return StoreView(tuple(users), tuple(locations), clock)
