"""Exploration for cold start, with exact propensities.

New items (and new collections) have no history, so the rankers cannot know how good they
are. With probability epsilon per row, one visible slot of the row, drawn uniformly from
positions [first_position, k), goes to an eligible new item drawn uniformly (in stock, not
yet on the page); the items from that slot on shift right by one and the last drops out.
The same for rows: with probability epsilon, a new collection is inserted at a row drawn
uniformly from [first_row, R), pushing the rows below down.

Every shown item's propensity is the exact probability that this randomization put it
where it is, given the deterministic page (Li et al.'s "propensity logging"):

    kept at its place q:      (1 - eps) + eps * P(slot > q)
    shifted from q to q + 1:  eps * P(slot <= q)
    explored into slot s:     eps * P(slot = s) / n_eligible

so inverse-propensity estimates over logged pages are unbiased. An item's logged
propensity is its row's propensity times its own within the row.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np


@dataclass(frozen=True)
class Placement:
    """One row (or the page's rows) after exploration: what is shown, where it came from, and P."""

    shown: np.ndarray  # the entries in display order
    explored: np.ndarray  # bool, True for the entry placed by exploration
    propensity: np.ndarray  # float, per shown entry
    slot: int = -1  # where the explored entry went; -1 when none was placed


def slots_after(k: np.ndarray, first: np.ndarray, width: int) -> np.ndarray:
    """(rows, width) P(slot > q) for q = 0..width-1, row r's slot uniform on [first[r], k[r]); many
    rows at once (a page's). Positions at or past k[r], and rows with k[r] <= first[r], are not
    meaningful."""
    q = np.arange(width)[None, :]
    return np.maximum(k[:, None] - 1 - np.maximum(q, first[:, None] - 1), 0) / np.maximum(k - first, 1)[:, None]


@lru_cache(maxsize=256)
def _slot_after(k: int, first: int) -> np.ndarray:
    """P(slot > q) for q = 0..k-1, the slot uniform on [first, k) (read-only: shared between calls)."""
    after = slots_after(np.array([k]), np.array([first]), k)[0]
    after.flags.writeable = False
    return after


def explore_slots(deterministic: np.ndarray, eligible: np.ndarray, epsilon: float, first: int,
                  rng: np.random.Generator, draw: float | None = None) -> Placement:
    """Maybe put one of `eligible` into `deterministic` (a row's items or the page's rows).

    draw: the uniform draw that decides whether to explore, when the caller drew it already (a
    page draws one per row at once); else it comes from `rng`."""
    k = len(deterministic)
    n_slots = k - first
    if epsilon <= 0 or n_slots <= 0 or len(eligible) == 0:
        return Placement(deterministic, np.zeros(k, dtype=bool), np.ones(k))
    # P(slot > q) and P(slot <= q) for a slot uniform on [first, k).
    after = _slot_after(k, first)
    if (rng.random() if draw is None else draw) >= epsilon:
        return Placement(deterministic, np.zeros(k, dtype=bool), (1.0 - epsilon) + epsilon * after)
    slot = int(rng.integers(first, k))
    pick = eligible[int(rng.integers(len(eligible)))]
    shown = np.concatenate([deterministic[:slot], [pick], deterministic[slot:-1]]).astype(deterministic.dtype)
    explored = np.arange(k) == slot
    upto = 1.0 - after
    propensity = np.empty(k)
    propensity[:slot] = (1.0 - epsilon) + epsilon * after[:slot]
    propensity[slot] = epsilon / n_slots / len(eligible)
    propensity[slot + 1:] = epsilon * upto[slot: k - 1]
    return Placement(shown, explored, propensity, slot)
