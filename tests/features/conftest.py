"""An in-memory DuckDB holding the contract tables (until the Store lands)."""

import duckdb
import pytest
from feature_tables import create_contract_tables


@pytest.fixture
def con() -> duckdb.DuckDBPyConnection:
    connection = duckdb.connect(":memory:")
    create_contract_tables(connection)
    yield connection
    connection.close()
