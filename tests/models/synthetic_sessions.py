"""A synthetic catalog with planted clusters and sessions that engage within one cluster.

Cluster = category: every session picks one category and engages a few of its items (90%)
plus the odd item from anywhere (10%). Brands are mostly category-specific; prices vary by
category. A share of the items never appears in a session: the cold-start items.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np


@dataclass
class Sessions:
    item_index: np.ndarray
    group_index: np.ndarray
    weight: np.ndarray
    content: dict[str, np.ndarray]
    cold: np.ndarray  # bool per item: never engaged


def planted_sessions(n_categories: int = 20, items_per_category: int = 50, n_sessions: int = 6000,
                     items_per_session: int = 5, cold_share: float = 0.1, noise: float = 0.1,
                     seed: int = 0) -> Sessions:
    rng = np.random.default_rng(seed)
    n_items = n_categories * items_per_category
    category = np.repeat(np.arange(n_categories), items_per_category)
    # Three brands per category, plus a few brands that sell across categories.
    brand = np.where(rng.random(n_items) < 0.8, category * 3 + rng.integers(0, 3, n_items),
                     3 * n_categories + rng.integers(0, 5, n_items))
    price = np.exp(rng.normal(2.0 + 0.15 * category, 0.3))
    cold = rng.random(n_items) < cold_share
    warm_by_category = [np.flatnonzero((category == c) & ~cold) for c in range(n_categories)]

    session_category = rng.integers(0, n_categories, n_sessions)
    # Popularity within a category is skewed, as in a real store.
    picks = np.empty((n_sessions, items_per_session), dtype=np.int64)
    for c in range(n_categories):  # per category, not per event: 20 iterations
        rows = np.flatnonzero(session_category == c)
        pool = warm_by_category[c]
        popularity = rng.pareto(1.5, len(pool)) + 1.0
        picks[rows] = rng.choice(pool, size=(len(rows), items_per_session), p=popularity / popularity.sum())
    stray = rng.random(picks.shape) < noise
    warm = np.flatnonzero(~cold)
    picks[stray] = rng.choice(warm, int(stray.sum()))
    weight = rng.choice(np.array([1.0, 3.0, 5.0]), size=picks.shape, p=[0.8, 0.15, 0.05])
    group = np.repeat(np.arange(n_sessions), items_per_session)
    return Sessions(picks.reshape(-1), group, weight.reshape(-1),
                    {"category": category, "brand": brand, "price": price}, cold)
