"""Diversity inside collections (and across them): MMR and a fast greedy DPP, batched.

Both pick `k` of `n` candidates for each of `C` rows at once (arrays of shape (C, n));
invalid candidates (padding, filtered items) carry a score of -inf and are never
picked. Scores are rescaled to [0, 1] within each row first, so the trade-off
parameter means the same whatever model produced the scores.

Similarity comes from a :class:`Similarity`: cosine of embeddings, or a weighted match
of attributes (same category, same brand, same price band). Both are Gram matrices of
some feature map, hence positive semi-definite, which the DPP needs.

* MMR (Carbonell & Goldstein 1998): next pick j maximizes
  lam * S_j - (1 - lam) * max_{i chosen} sim(j, i).
* DPP, greedy MAP with incremental Cholesky (Chen, Zhang & Zhou 2018), in their
  relevance/diversity trade-off form theta * sum(S_Y) + (1 - theta) * log det Sim_Y;
  O(k n) per row per step.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

_EPS = 1e-10
_RIDGE = 1e-6


class Similarity(Protocol):
    def to(self, chosen: np.ndarray) -> np.ndarray:
        """(C, n) similarity of every candidate to the candidate `chosen[c]` of its row."""

    def diagonal(self) -> np.ndarray:
        """(C, n) self-similarity."""


@dataclass(frozen=True)
class EmbeddingSimilarity:
    """Cosine similarity of candidate vectors, shape (C, n, d)."""

    vectors: np.ndarray

    def __post_init__(self) -> None:
        norms = np.linalg.norm(self.vectors, axis=-1, keepdims=True)
        object.__setattr__(self, "vectors", (self.vectors / np.maximum(norms, _EPS)).astype(np.float32))

    def to(self, chosen: np.ndarray) -> np.ndarray:
        picked = self.vectors[np.arange(len(chosen)), chosen]  # (C, d)
        # Batched matrix-vector product: several times faster than the equivalent einsum.
        return np.matmul(self.vectors, picked[:, :, None])[..., 0]

    def diagonal(self) -> np.ndarray:
        return np.einsum("cnd,cnd->cn", self.vectors, self.vectors)


@dataclass(frozen=True)
class AttributeSimilarity:
    """Weighted attribute match: sum of weights of the attributes two items share.

    `codes` is (C, n, a): one integer code per attribute (category, brand, price band, ...);
    a negative code matches nothing (unknown). Default weights: category 0.5, brand 0.3,
    price band 0.2, so identical items have similarity 1.
    """

    codes: np.ndarray
    weights: tuple[float, ...] = (0.5, 0.3, 0.2)

    def __post_init__(self) -> None:
        if self.codes.ndim != 3 or self.codes.shape[-1] != len(self.weights):
            raise ValueError(f"codes must be (C, n, {len(self.weights)}), got {self.codes.shape}")
        c, n, _ = self.codes.shape
        # A page's rows are small: the whole (C, n, n) matrix once beats k comparisons of (C, n) codes.
        full = None
        if c * n * n <= 4_000_000:
            w = np.asarray(self.weights, dtype=np.float32)
            same = (self.codes[:, :, None, :] == self.codes[:, None, :, :]) & (self.codes[:, None, :, :] >= 0)
            full = same.astype(np.float32) @ w
        object.__setattr__(self, "_full", full)

    def to(self, chosen: np.ndarray) -> np.ndarray:
        if self._full is not None:
            return self._full[np.arange(len(chosen)), chosen].astype(np.float64)
        picked = self.codes[np.arange(len(chosen)), chosen]  # (C, a)
        same = (self.codes == picked[:, None, :]) & (picked[:, None, :] >= 0)
        return same @ np.asarray(self.weights, dtype=np.float64)

    def diagonal(self) -> np.ndarray:
        return (self.codes >= 0) @ np.asarray(self.weights, dtype=np.float64)


def rescale_scores(scores: np.ndarray) -> np.ndarray:
    """Min-max to [0, 1] per row over valid (finite) candidates; invalid stay -inf."""
    scores = np.asarray(scores, dtype=np.float64)
    valid = np.isfinite(scores)
    lo = np.where(valid, scores, np.inf).min(axis=1, keepdims=True)
    hi = np.where(valid, scores, -np.inf).max(axis=1, keepdims=True)
    span = np.where(hi > lo, hi - lo, 1.0)
    out = np.where(valid, (scores - np.where(np.isfinite(lo), lo, 0.0)) / span, -np.inf)
    return out


def _check(scores: np.ndarray, k: int) -> np.ndarray:
    scores = np.asarray(scores, dtype=np.float64)
    if scores.ndim != 2:
        raise ValueError(f"scores must be (rows, candidates), got shape {scores.shape}")
    if k < 1:
        raise ValueError("k must be at least 1")
    return scores


class MMRDiversifier:
    """Maximal marginal relevance; lam = 1 is pure relevance, lam = 0 pure novelty."""

    def __init__(self, lam: float = 0.7) -> None:
        if not 0.0 <= lam <= 1.0:
            raise ValueError(f"lam must be in [0, 1], got {lam}")
        self.lam = lam

    def select(self, scores: np.ndarray, similarity: Similarity, k: int) -> np.ndarray:
        """(C, k) indices into the candidates, in pick order; -1 where a row ran out of candidates."""
        scores = rescale_scores(_check(scores, k))
        rows = np.arange(scores.shape[0])
        available = np.isfinite(scores)
        # Max similarity to the chosen set; no penalty before the first pick, and negative
        # similarities (opposite items) count as they are: MMR is not clipped at zero.
        max_sim = np.full_like(scores, -np.inf)
        picks = np.full((scores.shape[0], k), -1, dtype=np.int64)
        for step in range(min(k, scores.shape[1])):
            penalty = max_sim if step else np.zeros_like(scores)
            gain = np.where(available, self.lam * scores - (1.0 - self.lam) * penalty, -np.inf)
            best = gain.argmax(axis=1)
            ok = available[rows, best]
            picks[ok, step] = best[ok]
            available[rows[ok], best[ok]] = False
            max_sim = np.maximum(max_sim, np.where(ok[:, None], similarity.to(best), -np.inf))
        return picks


class DPPDiversifier:
    """Greedy MAP of a determinantal point process; theta = 1 is pure relevance, 0 pure diversity.

    With L = diag(q) Sim diag(q) and q = exp(alpha * S), log det L_Y splits into
    2 alpha * sum(S_Y) + log det Sim_Y; Chen et al.'s trade-off form maximizes
    theta * sum(S_Y) + (1 - theta) * log det Sim_Y. The incremental Cholesky therefore runs on
    Sim alone (no exp() to under- or overflow) and each step adds the candidate with the
    largest theta * S_j + (1 - theta) * log d_j^2, d_j^2 being its residual self-similarity.
    """

    def __init__(self, theta: float = 0.7) -> None:
        if not 0.0 <= theta <= 1.0:
            raise ValueError(f"theta must be in [0, 1], got {theta}")
        self.theta = theta

    def select(self, scores: np.ndarray, similarity: Similarity, k: int) -> np.ndarray:
        scores = rescale_scores(_check(scores, k))
        n_rows, n = scores.shape
        k = min(k, n)
        rows = np.arange(n_rows)
        available = np.isfinite(scores)
        # A small ridge keeps exact duplicates pickable (gain very low, not -inf).
        d2 = similarity.diagonal() + _RIDGE
        cholesky = np.zeros((n_rows, k, n))
        picks = np.full((n_rows, k), -1, dtype=np.int64)
        for step in range(k):
            log_volume = np.log(np.maximum(d2, _RIDGE * 1e-3))
            gain = np.where(available, self.theta * scores + (1.0 - self.theta) * log_volume, -np.inf)
            best = gain.argmax(axis=1)
            ok = available[rows, best]
            picks[ok, step] = best[ok]
            available[rows[ok], best[ok]] = False
            d_best = np.sqrt(np.maximum(d2[rows, best], _RIDGE * 1e-3))
            projection = np.einsum("csn,cs->cn", cholesky[:, :step], cholesky[rows, :step, best])
            e = (similarity.to(best) - projection) / d_best[:, None]
            e = np.where(ok[:, None], e, 0.0)
            cholesky[:, step] = e
            d2 = d2 - e * e
        return picks


DIVERSIFIERS = {"mmr": MMRDiversifier, "dpp": DPPDiversifier}
