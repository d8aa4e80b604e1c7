"""The store: opening, errors a person can act on, counts, export; kinds from file names; folders."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import pytest
from store_files import ITEM_ROWS, event, write_csv, write_parquet

from shelfrank.config import StoreConfig
from shelfrank.contracts import CONTRACTS, INGEST_ORDER
from shelfrank.errors import UserFacingError
from shelfrank.store.database import Store, StoreError
from shelfrank.store.ingest import IngestError, detect_kind, ingest_file, ingest_folder


def test_opening_creates_the_folder_the_file_and_one_table_per_contract(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "new" / "data", memory_limit="512MB", threads=1)
    with Store.open(config) as store:
        assert config.database_path.is_file()
        assert store.table_counts() == dict.fromkeys(INGEST_ORDER, 0)
        for name, contract in CONTRACTS.items():
            columns = dict(store.con.execute(
                "SELECT column_name, data_type FROM duckdb_columns() WHERE table_name = ?", [name]).fetchall())
            for f in contract.fields:
                assert columns[f.name] == {"TIMESTAMPTZ": "TIMESTAMP WITH TIME ZONE"}.get(f.duckdb_type, f.duckdb_type)
        assert store.con.execute("SELECT current_setting('memory_limit'), current_setting('threads')").fetchone() == (
            "488.2 MiB", 1)
        # No key constraints on the big tables: uniqueness is kept by ingest.
        assert store.con.execute("SELECT count(*) FROM duckdb_constraints() WHERE constraint_type IN "
                                 "('PRIMARY KEY', 'UNIQUE')").fetchone() == (0,)


def test_a_file_that_is_not_a_duckdb_store_is_a_one_line_store_error(tmp_path):
    config = StoreConfig(data_dir=tmp_path)
    config.database_path.write_text("hello, not a database")
    with pytest.raises(StoreError) as caught:
        Store.open(config)
    assert "is not a DuckDB database file" in str(caught.value) and "\n" not in str(caught.value)
    assert isinstance(caught.value, UserFacingError)


def test_a_store_locked_by_another_process_is_a_one_line_store_error(tmp_path):
    config = StoreConfig(data_dir=tmp_path)
    Store.open(config).close()
    holder = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(f"""
            import sys, duckdb
            con = duckdb.connect({str(config.database_path)!r})
            print("open", flush=True)
            sys.stdin.readline()
        """)],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "open"
        with pytest.raises(StoreError) as caught:
            Store.open(config)
        message = str(caught.value)
        assert "locked by another process" in message and f"PID {holder.pid}" in message and "\n" not in message
    finally:
        holder.kill()
        holder.wait()


def test_unknown_table_is_a_value_error_naming_the_known_tables(store, tmp_path):
    with pytest.raises(ValueError, match="unknown table 'orders'.*items.*events"):
        store.export("orders", tmp_path / "orders.parquet")
    with pytest.raises(ValueError, match="unknown table"):
        store.count("orders")


def test_export_rejects_other_file_types(store, tmp_path):
    with pytest.raises(StoreError, match=r"\.parquet or \.csv"):
        store.export("items", tmp_path / "items.json")


@pytest.mark.parametrize(
    ("name", "is_dir", "kind"),
    [
        ("items.parquet", False, "items"),
        ("events.csv", False, "events"),
        ("Events.CSV", False, "events"),
        ("events-2026-01.parquet", False, "events"),
        ("inventory_week2.csv.gz", False, "inventory"),
        ("events", True, "events"),
        ("collections", True, "collections"),
    ],
)
def test_detect_kind_from_file_or_folder_name(tmp_path, name, is_dir, kind):
    path = tmp_path / name
    path.mkdir() if is_dir else path.touch()
    assert detect_kind(path) == kind


@pytest.mark.parametrize("name", ["orders.parquet", "itemsx.csv", "events.json", "part-0000.parquet"])
def test_detect_kind_names_the_expected_names_when_it_cannot_tell(tmp_path, name):
    (tmp_path / name).touch()
    with pytest.raises(IngestError, match="items.parquet, events.csv, events/"):
        detect_kind(tmp_path / name)


def test_unknown_kind_is_an_ingest_error(store, tmp_path):
    with pytest.raises(IngestError, match="unknown data kind 'orders'"):
        ingest_file(store, write_csv(tmp_path / "x.csv", [{"a": 1}]), kind="orders")


def test_folder_ingests_every_kind_in_reference_order_and_skips_other_files(store, tmp_path):
    folder = tmp_path / "export"
    # Events reference items: they go in after items whatever the names' order.
    write_parquet(folder / "events" / "part-0.parquet", {k: [v] for k, v in event(seconds=1).items()})
    write_csv(folder / "events-extra.csv", [event(seconds=2)])
    write_csv(folder / "items.csv", ITEM_ROWS)
    write_csv(folder / "inventory.csv", [{"item_id": "i2", "ts": "2026-01-03T00:00:00Z", "quantity": 5}])
    (folder / "README.txt").write_text("not data")
    (folder / "truth").mkdir()

    reports = ingest_folder(store, folder)

    assert [(r.kind, r.path.name, r.accepted, r.rejected) for r in reports] == [
        ("items", "items.csv", 3, 0),
        ("inventory", "inventory.csv", 1, 0),
        ("events", "events", 1, 0),
        ("events", "events-extra.csv", 1, 0),
    ]
    assert store.con.execute("SELECT in_stock FROM items WHERE item_id = 'i2'").fetchone() == (True,)


def test_a_folder_without_data_files_is_an_ingest_error(store, tmp_path):
    (tmp_path / "notes.txt").write_text("x")
    with pytest.raises(IngestError, match="holds no data files"):
        ingest_folder(store, tmp_path)
    parts = tmp_path / "events"
    parts.mkdir()
    with pytest.raises(IngestError, match="no .parquet or .csv part files"):
        ingest_file(store, parts)


def test_a_folder_mixing_parquet_and_csv_parts_is_an_ingest_error(store_with_items, tmp_path):
    parts = tmp_path / "events"
    write_csv(parts / "a.csv", [event()])
    write_parquet(parts / "b.parquet", {k: [v] for k, v in event().items()})
    with pytest.raises(IngestError, match="mixes Parquet and CSV"):
        ingest_file(store_with_items, parts)


def test_an_invalid_memory_limit_is_a_store_error_naming_the_setting(tmp_path):
    with pytest.raises(StoreError, match="invalid store.memory_limit 'lots'"):
        Store.open(StoreConfig(data_dir=tmp_path, memory_limit="lots"))
