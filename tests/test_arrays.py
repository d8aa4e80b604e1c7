"""The request path's small set operations equal numpy's."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shelfrank.arrays import group_sums, in_sorted, prefix_cells, take_rows, unique_inverse, unique_sorted

ints = st.lists(st.integers(-5, 40), max_size=60).map(lambda v: np.asarray(v, dtype=np.int64))


@given(ints)
def test_unique_sorted_equals_numpy_unique(values):
    np.testing.assert_array_equal(unique_sorted(values), np.unique(values))


@given(ints, ints)
def test_in_sorted_equals_numpy_isin(values, reference):
    np.testing.assert_array_equal(in_sorted(values, np.sort(reference)), np.isin(values, reference))


@given(ints)
def test_unique_inverse_equals_numpy_unique_with_its_inverse(values):
    distinct, inverse = unique_inverse(values)
    expected, expected_inverse = np.unique(values, return_inverse=True)
    np.testing.assert_array_equal(distinct, expected)
    np.testing.assert_array_equal(inverse, expected_inverse)


@given(st.integers(0, 6), st.integers(1, 7), st.integers(0, 5))
def test_take_rows_equals_numpy_take_along_axis(rows, width, picks):
    rng = np.random.default_rng(rows * 100 + width * 10 + picks)
    values = rng.normal(size=(rows, width))
    index = rng.integers(0, width, (rows, picks))
    np.testing.assert_array_equal(take_rows(values, index), np.take_along_axis(values, index, axis=1))


@given(st.lists(st.integers(0, 6), max_size=12), st.integers(1, 4), st.integers(0, 2**32 - 1))
def test_group_sums_add_each_group_in_row_order(lengths, width, seed):
    rng = np.random.default_rng(seed)
    rows = rng.standard_normal((sum(lengths), width)) * 1e3
    sums = group_sums(rows, np.asarray(lengths, dtype=np.int64))
    assert sums.shape == (len(lengths), width)
    start = 0
    for i, n in enumerate(lengths):
        expected = np.zeros(width)
        for r in rows[start: start + n]:  # left to right, as the docstring says
            expected = expected + r
        assert np.array_equal(sums[i], expected)
        start += n
    if lengths and all(n > 0 for n in lengths):  # numpy's reduceat agrees up to its own rounding
        starts = np.cumsum(lengths) - np.asarray(lengths)
        assert np.allclose(sums, np.add.reduceat(rows, starts, axis=0), rtol=1e-12, atol=1e-9)


@given(st.lists(st.integers(0, 7), max_size=10))
def test_prefix_cells_equal_nonzero_of_the_prefix_mask(lengths):
    lengths = np.asarray(lengths, dtype=np.int64)
    mask = np.arange(8)[None, :] < lengths[:, None]
    rows, columns = prefix_cells(lengths)
    expected_rows, expected_columns = np.nonzero(mask)
    np.testing.assert_array_equal(rows, expected_rows)
    np.testing.assert_array_equal(columns, expected_columns)


def test_group_sums_refuses_lengths_that_do_not_cover_the_rows_and_non_float_rows():
    import pytest

    with pytest.raises(ValueError, match="add up"):
        group_sums(np.ones((1, 3)), np.array([2]))  # would broadcast the one row into two
    with pytest.raises(ValueError, match="add up"):
        group_sums(np.ones((3, 3)), np.array([1, 1]))
    with pytest.raises(TypeError, match="float"):
        group_sums(np.ones((2, 3), dtype=np.int8), np.array([2]))
