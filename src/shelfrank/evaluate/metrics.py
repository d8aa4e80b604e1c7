"""Ranking and classification metrics over many groups at once, vectorized.

Grouped metrics take flat arrays (`scores`, `labels`, `groups`) with one entry per
(group, candidate): a group is a ranked list, e.g. one collection in one request.
Groups without any positive label are skipped (nothing to find), as is usual for
NDCG and recall; the number of groups used is returned alongside the mean.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np


@dataclass(frozen=True)
class GroupedMetric:
    value: float  # mean over the groups that have a positive label
    n_groups: int


def _as_arrays(scores, labels, groups) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    scores = np.asarray(scores, dtype=np.float64)
    labels = np.asarray(labels, dtype=np.float64)
    groups = np.asarray(groups)
    if not (scores.shape == labels.shape == groups.shape) or scores.ndim != 1:
        raise ValueError(
            f"scores, labels and groups must be 1-D and of one length, got {scores.shape}, {labels.shape}, "
            f"{groups.shape}"
        )
    if np.any(labels < 0):
        raise ValueError("labels must be >= 0 (graded relevance)")
    return scores, labels, groups


def _rank_within_groups(scores: np.ndarray, groups: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Sort by group then by descending score; return order, group ids in that order, 0-based ranks."""
    _, group_ids = np.unique(groups, return_inverse=True)
    # Ties broken by original index, so a constant scorer ranks in input order: deterministic.
    order = np.lexsort((np.arange(len(scores)), -scores, group_ids))
    sorted_groups = group_ids[order]
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_groups)) + 1]
    sizes = np.diff(np.r_[starts, len(order)])
    ranks = np.arange(len(order)) - np.repeat(starts, sizes)
    return order, sorted_groups, ranks


def ndcg_at_k(scores, labels, groups, k: int = 10) -> GroupedMetric:
    """Mean NDCG@k with gain (2^label - 1) and discount 1/log2(rank + 2)."""
    scores, labels, groups = _as_arrays(scores, labels, groups)
    if len(scores) == 0:
        return GroupedMetric(float("nan"), 0)
    order, sorted_groups, ranks = _rank_within_groups(scores, groups)
    gains = np.exp2(labels[order]) - 1.0
    discount = np.where(ranks < k, 1.0 / np.log2(ranks + 2.0), 0.0)
    n = sorted_groups.max() + 1
    dcg = np.bincount(sorted_groups, weights=gains * discount, minlength=n)
    ideal_order, ideal_groups, ideal_ranks = _rank_within_groups(labels, groups)
    ideal_gains = np.exp2(labels[ideal_order]) - 1.0
    ideal_discount = np.where(ideal_ranks < k, 1.0 / np.log2(ideal_ranks + 2.0), 0.0)
    idcg = np.bincount(ideal_groups, weights=ideal_gains * ideal_discount, minlength=n)
    has_positive = idcg > 0
    if not has_positive.any():
        return GroupedMetric(float("nan"), 0)
    return GroupedMetric(float(np.mean(dcg[has_positive] / idcg[has_positive])), int(has_positive.sum()))


def recall_at_k(scores, labels, groups, k: int = 20) -> GroupedMetric:
    """Mean share of a group's positive candidates (label > 0) ranked in its top k."""
    scores, labels, groups = _as_arrays(scores, labels, groups)
    if len(scores) == 0:
        return GroupedMetric(float("nan"), 0)
    order, sorted_groups, ranks = _rank_within_groups(scores, groups)
    positive = labels[order] > 0
    n = sorted_groups.max() + 1
    found = np.bincount(sorted_groups, weights=positive & (ranks < k), minlength=n)
    total = np.bincount(sorted_groups, weights=positive, minlength=n)
    has_positive = total > 0
    if not has_positive.any():
        return GroupedMetric(float("nan"), 0)
    return GroupedMetric(float(np.mean(found[has_positive] / total[has_positive])), int(has_positive.sum()))


def roc_auc(labels, scores) -> float:
    """Area under the ROC curve (Mann-Whitney U with average ranks for ties); nan with one class."""
    labels = np.asarray(labels).astype(bool)
    scores = np.asarray(scores, dtype=np.float64)
    if labels.shape != scores.shape:
        raise ValueError(f"labels and scores differ in shape: {labels.shape} vs {scores.shape}")
    n_pos = int(labels.sum())
    n_neg = len(labels) - n_pos
    if n_pos == 0 or n_neg == 0:
        return float("nan")
    order = np.argsort(scores, kind="mergesort")
    sorted_scores = scores[order]
    # Average rank (1-based) for each run of tied scores.
    starts = np.r_[0, np.flatnonzero(np.diff(sorted_scores)) + 1]
    ends = np.r_[starts[1:], len(scores)]
    average = (starts + ends + 1) / 2.0
    ranks = np.empty(len(scores))
    ranks[order] = np.repeat(average, ends - starts)
    u = ranks[labels].sum() - n_pos * (n_pos + 1) / 2.0
    return float(u / (n_pos * n_neg))


def log_loss(labels, probabilities, eps: float = 1e-12) -> float:
    """Mean binary cross-entropy, probabilities clipped to [eps, 1 - eps]."""
    labels = np.asarray(labels, dtype=np.float64)
    p = np.clip(np.asarray(probabilities, dtype=np.float64), eps, 1.0 - eps)
    if labels.shape != p.shape:
        raise ValueError(f"labels and probabilities differ in shape: {labels.shape} vs {p.shape}")
    return float(-np.mean(labels * np.log(p) + (1.0 - labels) * np.log(1.0 - p)))


def page_dcg(
    page: Sequence[Sequence[str]],
    gains: dict[str, float],
    row_discount: float = 1.0,
    position_discount: float = 1.0,
) -> float:
    """2-D DCG of a page: sum of gain / (log2(row + 2)^row_discount * log2(position + 2)^position_discount).

    An item repeated across collections counts once, at its best (least discounted) place.
    Items missing from `gains` have gain 0.
    """
    best: dict[str, float] = {}
    for row, items in enumerate(page):
        row_factor = np.log2(row + 2.0) ** row_discount
        for position, item in enumerate(items):
            discount = 1.0 / (row_factor * np.log2(position + 2.0) ** position_discount)
            if discount > best.get(item, 0.0):
                best[item] = discount
    return float(sum(gains.get(item, 0.0) * discount for item, discount in best.items()))
