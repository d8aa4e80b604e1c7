"""The tiny simulated store the tests in this folder share (built once per session in conftest)."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import duckdb

from shelfrank.simulate import GroundTruth, SimulationSummary

SEED = 7


@dataclass
class TinyStore:
    path: Path
    summary: SimulationSummary
    truth: GroundTruth
    con: duckdb.DuckDBPyConnection
