"""The request path's small set operations equal numpy's."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shelfrank.arrays import in_sorted, take_rows, unique_inverse, unique_sorted

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
