"""The examination curve: P(a shown item is examined | row, position).

Expected clicks for the position-debiased CTR weigh each impression by this curve. Until the
examination model (models/) estimates it from the logs, the default is a simple prior:
``1 / (1 + position) * 1 / (1 + 0.5 * row)``.
"""

from __future__ import annotations

import numpy as np

DEFAULT_ROWS = 50
DEFAULT_POSITIONS = 100


def default_examination_curve(rows: int = DEFAULT_ROWS, positions: int = DEFAULT_POSITIONS) -> np.ndarray:
    r = np.arange(rows, dtype=np.float64)[:, None]
    p = np.arange(positions, dtype=np.float64)[None, :]
    return (1.0 / (1.0 + p)) * (1.0 / (1.0 + 0.5 * r))


def examination_weight(curve: np.ndarray, row: np.ndarray, position: np.ndarray) -> np.ndarray:
    """Vectorized lookup; rows / positions past the curve's edge use its last value, missing (< 0) use 0."""
    r = np.clip(np.asarray(row, dtype=np.int64), 0, curve.shape[0] - 1)
    p = np.clip(np.asarray(position, dtype=np.int64), 0, curve.shape[1] - 1)
    return curve[r, p]
