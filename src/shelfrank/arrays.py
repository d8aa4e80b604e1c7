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


def group_sums(rows: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    """(len(lengths), d) sums of consecutive groups of `rows` (group i: the next lengths[i] rows; a group
    of 0 rows sums to 0), each added up in row order. What np.add.reduceat(rows, starts, axis=0)
    gives up to rounding (it does not add in row order), several times faster for a page's few
    short groups (numpy's axis-0 reduceat costs ~0.2 ms on 300 x 56 here): the groups are laid
    side by side, zero-padded, and added one position at a time."""
    rows = np.asarray(rows)
    lengths = np.asarray(lengths, dtype=np.int64)
    if not np.issubdtype(rows.dtype, np.floating):
        raise TypeError(f"group_sums adds float rows, got {rows.dtype}")
    if len(rows) != int(lengths.sum()) or (lengths < 0).any():
        raise ValueError(f"lengths must be >= 0 and add up to the {len(rows)} rows, got a total of {lengths.sum()}")
    width = int(lengths.max(initial=0))
    if width == 0:
        return np.zeros((len(lengths), *rows.shape[1:]), dtype=rows.dtype)
    padded = np.zeros((len(lengths), width, *rows.shape[1:]), dtype=rows.dtype)
    padded[np.arange(width)[None, :] < lengths[:, None]] = rows
    out = padded[:, 0].copy()
    for j in range(1, width):
        out += padded[:, j]
    return out


def prefix_cells(lengths: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(rows, columns) of the cells of a matrix whose row r holds its first lengths[r] cells, in
    row-major order: np.nonzero(np.arange(width) < lengths[:, None]) without building the mask
    (np.nonzero on a 2-D mask costs ~20 us here)."""
    lengths = np.asarray(lengths, dtype=np.int64)
    rows = np.repeat(np.arange(len(lengths)), lengths)
    starts = np.cumsum(lengths) - lengths
    return rows, np.arange(len(rows)) - starts[rows]
