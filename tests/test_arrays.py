"""The request path's small set operations equal numpy's."""

import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from shelfrank.arrays import in_sorted, unique_inverse, unique_sorted

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
