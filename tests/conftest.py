"""Shared fixtures: one tiny simulated store, ingested and trained once per test session.

The store is closed after it is built (DuckDB locks its file per process), so tests open
it themselves: read-only for reads, or in a subprocess (the service tests).
"""

from __future__ import annotations

import pytest
from shared_world import TINY_OPTIONS

from shelfrank.config import StoreConfig
from shelfrank.models.training import train
from shelfrank.simulate import simulate
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_folder


@pytest.fixture(scope="session")
def tiny_world(tmp_path_factory):
    """{root, sim, data_dir, models_dir, reports, trained}: tiny scale, seed 7, trained with TINY_OPTIONS."""
    root = tmp_path_factory.mktemp("tiny_world")
    simulate("tiny", 7, root / "sim")
    data_dir = root / "data"
    with Store.open(StoreConfig(data_dir=data_dir)) as store:
        reports = ingest_folder(store, root / "sim")
        trained = train(store.con, data_dir / "models", TINY_OPTIONS)
    return {"root": root, "sim": root / "sim", "data_dir": data_dir, "models_dir": data_dir / "models",
            "database": data_dir / "shelfrank.duckdb", "reports": reports, "trained": trained,
            "options": TINY_OPTIONS}
