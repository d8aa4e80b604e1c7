"""One tiny simulated store per test session: the data every test here measures."""

from __future__ import annotations

import duckdb
import pytest
from simulated_store import SEED, TinyStore

from shelfrank.simulate import GroundTruth, simulate


@pytest.fixture(scope="session")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> TinyStore:
    path = tmp_path_factory.mktemp("tiny-store")
    summary = simulate("tiny", SEED, path)
    con = duckdb.connect()
    for name in ("categories", "items", "users", "collections", "inventory"):
        con.execute(f"CREATE VIEW {name} AS SELECT * FROM read_parquet('{path / name}.parquet')")
    con.execute(f"CREATE TABLE events AS SELECT * FROM read_parquet('{path}/events/*.parquet')")
    return TinyStore(path=path, summary=summary, truth=GroundTruth.load(path / "truth"), con=con)

