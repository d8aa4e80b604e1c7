"""The offline taste-vector scan equals the plain per-event recurrence, whatever the chunking."""

from __future__ import annotations

import numpy as np
import pytest

from shelfrank.features.definitions import ItemVectors
from shelfrank.features.offline import decayed_prefix_sums


@pytest.mark.parametrize("chunk_rows", [1, 7, 1_000])
def test_scan_equals_the_event_by_event_recurrence(chunk_rows):
    rng = np.random.default_rng(4)
    n, rate = 300, 1e-5
    segment = np.sort(rng.integers(12, size=n))
    t = np.concatenate([np.sort(rng.uniform(0, 5e5, size=(segment == s).sum())) for s in np.unique(segment)])
    vectors = ItemVectors(np.array([f"i{k:02d}" for k in range(9)]), rng.normal(size=(9, 3)))
    vrow = rng.integers(-1, 9, size=n)  # -1: an item without a vector adds nothing
    weight = rng.choice([1.0, 3.0, 5.0], size=n)
    at = rng.integers(-1, n, size=50)

    expected = np.zeros((n, 3))
    for i in range(n):
        own = weight[i] * (vectors.vectors[vrow[i]] if vrow[i] >= 0 else 0.0)
        same = i > 0 and segment[i] == segment[i - 1]
        expected[i] = own + (expected[i - 1] * np.exp(-rate * (t[i] - t[i - 1])) if same else 0.0)

    got = decayed_prefix_sums(segment, t, vrow, weight, vectors, rate, at, chunk_rows=chunk_rows)
    np.testing.assert_allclose(got, np.where((at >= 0)[:, None], expected[np.maximum(at, 0)], 0.0), rtol=1e-12,
                               atol=1e-12)
