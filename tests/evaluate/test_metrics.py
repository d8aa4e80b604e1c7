import math

import numpy as np
import pytest

from shelfrank.evaluate.metrics import log_loss, ndcg_at_k, page_dcg, recall_at_k, roc_auc


def test_ndcg_is_one_for_the_ideal_order_and_matches_a_hand_computation():
    labels = [3, 2, 0, 1]
    assert ndcg_at_k([4, 3, 1, 2], labels, [0] * 4, k=4).value == pytest.approx(1.0)
    # Ranked labels 0, 1, 2, 3 (gains 0, 1, 3, 7) against the ideal 3, 2, 1, 0.
    dcg = 0 + 1 / math.log2(3) + 3 / math.log2(4) + 7 / math.log2(5)
    idcg = 7 + 3 / math.log2(3) + 1 / math.log2(4)
    got = ndcg_at_k([1, 2, 4, 3], labels, [0] * 4, k=4)
    assert got.value == pytest.approx(dcg / idcg)


def test_ndcg_averages_groups_and_skips_groups_without_positives():
    scores = [0.9, 0.1, 0.2, 0.8, 0.5, 0.4]
    labels = [1, 0, 1, 0, 0, 0]
    groups = ["a", "a", "b", "b", "c", "c"]
    got = ndcg_at_k(scores, labels, groups, k=2)
    assert got.n_groups == 2
    assert got.value == pytest.approx((1.0 + 1 / math.log2(3)) / 2)


def test_ndcg_cuts_at_k():
    # The only positive is at rank 3: invisible at k=2.
    assert ndcg_at_k([3, 2, 1], [0, 0, 1], [0, 0, 0], k=2).value == 0.0


def test_recall_counts_positives_in_the_top_k_per_group():
    scores = np.array([5, 4, 3, 2, 1, 9, 8])
    labels = np.array([1, 0, 0, 1, 1, 0, 1])
    groups = np.array([0, 0, 0, 0, 0, 1, 1])
    got = recall_at_k(scores, labels, groups, k=2)
    assert got.value == pytest.approx((1 / 3 + 1.0) / 2)


def test_auc_matches_pair_counting_with_ties():
    labels = np.array([1, 0, 1, 0, 1, 0])
    scores = np.array([0.9, 0.9, 0.5, 0.2, 0.1, 0.3])
    pairs = [(p, n) for p in np.flatnonzero(labels) for n in np.flatnonzero(labels == 0)]
    expected = np.mean([1.0 if scores[p] > scores[n] else 0.5 if scores[p] == scores[n] else 0.0 for p, n in pairs])
    assert roc_auc(labels, scores) == pytest.approx(expected)
    assert math.isnan(roc_auc([1, 1], [0.2, 0.3]))


def test_log_loss_of_known_values():
    assert log_loss([1, 0], [0.8, 0.2]) == pytest.approx(-math.log(0.8))
    assert log_loss([1], [0.0]) == pytest.approx(-math.log(1e-12))


def test_page_dcg_discounts_in_both_directions_and_counts_a_repeat_once():
    gains = {"a": 1.0, "b": 1.0}
    top_left = page_dcg([["a"]], gains)
    assert top_left == pytest.approx(1.0)
    assert page_dcg([["x", "a"]], gains) < top_left
    assert page_dcg([["x"], ["a"]], gains) < top_left
    # "a" twice: counted once at its best place.
    assert page_dcg([["a"], ["a"]], gains) == pytest.approx(1.0)
    assert page_dcg([["a", "b"]], gains) == pytest.approx(1.0 + 1 / math.log2(3))


def test_mismatched_lengths_are_a_clear_error():
    with pytest.raises(ValueError, match="one length"):
        ndcg_at_k([1, 2], [1], [0, 0])
