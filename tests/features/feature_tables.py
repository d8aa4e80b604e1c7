"""Helpers for feature tests: contract tables in DuckDB, hand-made rows, example tables."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import duckdb
import pyarrow as pa

from shelfrank.contracts import CONTRACTS

T0 = datetime(2026, 3, 2, 12, 0, tzinfo=UTC)  # a Monday, noon UTC


def at(days: float = 0.0, hours: float = 0.0) -> datetime:
    return T0 + timedelta(days=days, hours=hours)


def create_contract_tables(con: duckdb.DuckDBPyConnection) -> None:
    """Until the Store lands, tests create the tables themselves from the contracts."""
    for contract in CONTRACTS.values():
        cols = ", ".join(f'"{f.name}" {f.duckdb_type}' for f in contract.fields)
        con.execute(f"CREATE TABLE {contract.name} ({cols})")


def insert_rows(con: duckdb.DuckDBPyConnection, table: str, rows: list[dict]) -> None:
    """Insert dicts; missing columns are null. Goes through the contract's Arrow schema."""
    schema = CONTRACTS[table].arrow_schema
    data = {f.name: [r.get(f.name) for r in rows] for f in schema}
    arrow = pa.Table.from_pydict(data, schema=schema)
    con.register("_rows_in", arrow)
    con.execute(f"INSERT INTO {table} SELECT * FROM _rows_in")
    con.unregister("_rows_in")


def contract_table(table: str, rows: list[dict]) -> pa.Table:
    schema = CONTRACTS[table].arrow_schema
    return pa.Table.from_pydict({f.name: [r.get(f.name) for r in rows] for f in schema}, schema=schema)


def examples_table(rows: list[tuple]) -> pa.Table:
    """(user_id, item_id, ts[, surface, location, session_id, collection_id]) tuples as an examples table."""
    cols = ("user_id", "item_id", "ts", "surface", "location", "session_id", "collection_id")
    width = max(len(r) for r in rows)
    data = {c: [r[i] if i < len(r) else None for r in rows] for i, c in enumerate(cols[:max(width, 3)])}
    types = {"ts": pa.timestamp("us", tz="UTC")}
    return pa.table({c: pa.array(v, type=types.get(c, pa.string())) for c, v in data.items()})


def features_both_ways(con: duckdb.DuckDBPyConnection, rows: list[tuple], space=None) -> list[dict[str, float]]:
    """Each example's features computed offline and online; asserts they agree, returns one dict per example.

    Online, a fresh state replays the events (and inventory updates) strictly before the example's time.
    """
    import numpy as np

    from shelfrank.features import FeatureSpace, InMemoryFeatureState, OfflineFeatures

    space = space or FeatureSpace()
    offline = OfflineFeatures(con, space).compute(examples_table(rows))
    items = con.sql("SELECT * FROM items").to_arrow_table()
    users = con.sql("SELECT * FROM users").to_arrow_table()
    collections = con.sql("SELECT * FROM collections").to_arrow_table()
    out = []
    for i, row in enumerate(rows):
        user, item, ts = row[:3]
        context = dict(zip(("surface", "location", "session_id", "collection_id"), row[3:], strict=False))
        state = InMemoryFeatureState(space, items, users, collections)
        state.update(con.sql("SELECT * FROM events WHERE ts < ? ORDER BY ts", params=[ts]).to_arrow_table())
        state.update_inventory(con.sql("SELECT * FROM inventory WHERE ts < ? ORDER BY ts",
                                          params=[ts]).to_arrow_table())
        online = state.get(user, [item], ts, context)[0]
        values = {}
        for j, name in enumerate(space.names):
            off = offline.column(name)[i].as_py()
            off = float("nan") if off is None else off
            np.testing.assert_allclose(online[j], off, rtol=1e-9, atol=1e-12, equal_nan=True,
                                       err_msg=f"{name}: online {online[j]} != offline {off}")
            values[name] = off
        out.append(values)
    return out
