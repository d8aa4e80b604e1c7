"""Small set operations on integer arrays for the request path.

numpy's `unique` without extra outputs and its set routines (`setdiff1d`, `isin`) carry a fixed
cost of a few hundred microseconds on arrays of a page's size (hundreds to thousands of
indices), far above the work itself; these sort-based versions cost tens of microseconds and
return the same values.
"""

from __future__ import annotations

import numpy as np


def unique_sorted(values: np.ndarray) -> np.ndarray:
    """The distinct values, ascending (as np.unique)."""
    s = np.sort(np.asarray(values))
    if len(s) < 2:
        return s
    keep = np.empty(len(s), dtype=bool)
    keep[0] = True
    np.not_equal(s[1:], s[:-1], out=keep[1:])
    return s[keep]


def in_sorted(values: np.ndarray, sorted_reference: np.ndarray) -> np.ndarray:
    """Boolean mask: which of `values` occur in `sorted_reference` (ascending)."""
    values = np.asarray(values)
    if len(sorted_reference) == 0 or len(values) == 0:
        return np.zeros(len(values), dtype=bool)
    pos = np.minimum(np.searchsorted(sorted_reference, values), len(sorted_reference) - 1)
    return sorted_reference[pos] == values


def unique_inverse(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(distinct values ascending, index of each value among them), as np.unique(return_inverse=True)."""
    values = np.asarray(values)
    distinct = unique_sorted(values)
    return distinct, np.searchsorted(distinct, values)


def take_rows(values: np.ndarray, index: np.ndarray) -> np.ndarray:
    """values[i, index[i, j]] for a 2-D `values` and `index`: np.take_along_axis(values, index, axis=1)
    by plain fancy indexing (the numpy wrapper costs ~20 us per call at a page's size)."""
    return values[np.arange(len(index))[:, None], index]
