"""Synthetic impression logs with a known examination curve and known item relevances.

The logging policy mimics the simulator's: a page of ``n_rows`` collections x ``n_positions``
items. The deterministic (biased) branch orders rows by the collection's mean relevance and
items by their own relevance, both with Gumbel noise, so better items sit in better slots and
the same item still moves around; the randomized branch shuffles the rows and draws items
uniformly, with the matching small propensity.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

ROW_DECAY, COLUMN_DECAY = 0.25, 0.22


def true_curve(rows: np.ndarray, positions: np.ndarray, row_decay: float = ROW_DECAY,
               column_decay: float = COLUMN_DECAY) -> np.ndarray:
    return 1.0 / (1.0 + row_decay * np.asarray(rows)) * np.exp(-column_decay * np.asarray(positions))


@dataclass
class Impressions:
    rows: np.ndarray
    positions: np.ndarray
    items: np.ndarray
    clicked: np.ndarray
    propensity: np.ndarray
    randomized: np.ndarray
    surface: np.ndarray
    relevance: np.ndarray  # true P(click | examined) per item


def simulate_impressions(n_pages: int, seed: int = 0, n_rows: int = 8, n_positions: int = 10,
                         n_collections: int = 40, items_per_collection: int = 50, randomized_share: float = 0.05,
                         noise: float = 0.6, surfaces: tuple[str, ...] = ("web",),
                         decays: dict[str, tuple[float, float]] | None = None) -> Impressions:
    rng = np.random.default_rng(seed)
    n_items = n_collections * items_per_collection
    collection_level = rng.normal(0.0, 0.8, n_collections)
    item_logit = -1.6 + np.repeat(collection_level, items_per_collection) + rng.normal(0.0, 1.0, n_items)
    relevance = 1.0 / (1.0 + np.exp(-item_logit))

    randomized = rng.random(n_pages) < randomized_share
    # Rows: 'n_rows' distinct collections per page, ordered by noisy mean relevance unless randomized.
    chosen = np.argsort(rng.random((n_pages, n_collections)), axis=1)[:, :n_rows]
    row_score = collection_level[chosen] + noise * rng.gumbel(size=chosen.shape)
    row_key = np.where(randomized[:, None], rng.random(chosen.shape), -row_score)
    chosen = np.take_along_axis(chosen, np.argsort(row_key, axis=1), axis=1)
    # Items: 'n_positions' of the collection's items, best-first by noisy relevance unless randomized.
    members = chosen[:, :, None] * items_per_collection + np.arange(items_per_collection)
    item_score = item_logit[members] + noise * rng.gumbel(size=members.shape)
    item_key = np.where(randomized[:, None, None], rng.random(members.shape), -item_score)
    shown = np.take_along_axis(members, np.argsort(item_key, axis=2)[:, :, :n_positions], axis=2)

    rows = np.broadcast_to(np.arange(n_rows)[None, :, None], shown.shape).reshape(-1)
    positions = np.broadcast_to(np.arange(n_positions)[None, None, :], shown.shape).reshape(-1)
    items = shown.reshape(-1)
    page_surface = np.asarray(surfaces)[rng.integers(0, len(surfaces), n_pages)]
    surface = np.repeat(page_surface, n_rows * n_positions)
    decays = decays or {s: (ROW_DECAY, COLUMN_DECAY) for s in surfaces}
    row_decay = np.vectorize(lambda s: decays[s][0])(np.asarray(surfaces))
    column_decay = np.vectorize(lambda s: decays[s][1])(np.asarray(surfaces))
    s_index = np.searchsorted(np.asarray(surfaces), surface) if len(surfaces) > 1 else np.zeros(len(items), int)
    exam = true_curve(rows, positions, row_decay[s_index], column_decay[s_index])
    clicked = rng.random(len(items)) < exam * relevance[items]
    page_randomized = np.repeat(randomized, n_rows * n_positions)
    propensity = np.where(page_randomized, randomized_share / (n_rows * items_per_collection),
                          1.0 - randomized_share)
    return Impressions(rows, positions, items, clicked, propensity, page_randomized, surface, relevance)
