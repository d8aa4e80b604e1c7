"""Re-ingesting adds nothing; keys upsert; inventory updates move items' stock and price."""

from __future__ import annotations

import shutil

import pyarrow.parquet as pq
from store_files import ITEM_ROWS, event, write_csv, write_parquet

from shelfrank.store.ingest import event_id_expression, ingest_file


def test_same_events_file_twice_adds_nothing_and_reports_duplicates(store_with_items, tmp_path):
    path = write_csv(tmp_path / "in" / "events.csv", [event(seconds=s) for s in range(5)])
    first = ingest_file(store_with_items, path)
    second = ingest_file(store_with_items, path)

    assert (first.accepted, first.duplicates) == (5, 0)
    assert (second.rows_read, second.accepted, second.duplicates, second.rejected) == (5, 0, 5, 0)
    assert store_with_items.count("events") == 5


def test_events_without_event_id_dedup_by_content_across_files_and_formats(store_with_items, tmp_path):
    rows = [event(seconds=s) for s in range(4)]
    ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", rows))
    # The same rows again, plus one new and one repeated inside the file, as Parquet.
    again = [*rows, event(seconds=9), event(seconds=9)]
    columns = {c: [r[c] for r in again] for c in again[0]}
    report = ingest_file(store_with_items, write_parquet(tmp_path / "in" / "events-2.parquet", columns))

    assert (report.rows_read, report.accepted, report.duplicates, report.rejected) == (6, 1, 5, 0)
    assert store_with_items.count("events") == 5


def test_derived_event_id_is_md5_of_the_identifying_columns(store_with_items, tmp_path):
    ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", [event(seconds=1)]))
    stored, recomputed = store_with_items.con.execute(
        f"SELECT event_id, {event_id_expression()} FROM events"
    ).fetchone()
    assert stored == recomputed and len(stored) == 32
    # The same event with another surface is the same event; another position is not.
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events-2.csv", [
        event(seconds=1, surface="ios"), event(seconds=1, position=7)]))
    assert (report.accepted, report.duplicates) == (1, 1)


def test_given_event_ids_are_the_key(store_with_items, tmp_path):
    ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv",
                                            [event(event_id="e1"), event(event_id="e2", seconds=1)]))
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events-2.csv",
                                                     [event(event_id="e1", seconds=5), event(event_id="e3")]))
    assert (report.accepted, report.duplicates) == (1, 1)
    assert store_with_items.con.execute("SELECT list_sort(list(event_id)) FROM events").fetchone()[0] == [
        "e1", "e2", "e3"]


def test_a_copy_of_an_ingested_events_file_is_recognised_by_content(store_with_items, tmp_path):
    path = write_csv(tmp_path / "in" / "events.csv", [event(seconds=s) for s in range(3)])
    ingest_file(store_with_items, path)
    copy = tmp_path / "in" / "events-copy.csv"
    shutil.copyfile(path, copy)
    report = ingest_file(store_with_items, copy)
    assert (report.accepted, report.duplicates) == (0, 3)
    assert any("same content" in w for w in report.warnings)
    # The skipped file adds no bookkeeping row either.
    assert store_with_items.con.execute("SELECT count(*) FROM ingest_files WHERE kind = 'events'").fetchone() == (1,)


def test_items_upsert_changes_only_the_rows_that_changed(store_with_items, tmp_path):
    before = dict(store_with_items.con.execute("SELECT item_id, updated_at FROM items").fetchall())
    rows = [dict(r) for r in ITEM_ROWS]
    rows[1]["price"] = 2.5  # i2 changes
    rows.append({**ITEM_ROWS[0], "item_id": "i4", "title": "Plum"})
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "items-2.csv", rows))

    assert (report.rows_read, report.accepted, report.duplicates) == (4, 2, 2)
    after = dict(store_with_items.con.execute("SELECT item_id, updated_at FROM items").fetchall())
    assert after["i1"] == before["i1"] and after["i3"] == before["i3"]
    assert after["i2"] > before["i2"]
    assert store_with_items.con.execute("SELECT price FROM items WHERE item_id = 'i2'").fetchone() == (2.5,)
    assert store_with_items.count("items") == 4


def test_identical_items_resend_changes_nothing(store_with_items, tmp_path):
    snapshot = store_with_items.con.execute("SELECT * FROM items ORDER BY item_id").fetchall()
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "items.csv", ITEM_ROWS))
    assert (report.accepted, report.duplicates) == (0, 3)
    assert store_with_items.con.execute("SELECT * FROM items ORDER BY item_id").fetchall() == snapshot


def test_the_last_row_of_a_key_in_a_file_wins(store, tmp_path):
    rows = [{"user_id": "u1", "location": "DE"}, {"user_id": "u1", "location": "FR"}]
    report = ingest_file(store, write_csv(tmp_path / "in" / "users.csv", rows))
    assert (report.accepted, report.duplicates) == (1, 1)
    assert store.con.execute("SELECT location FROM users").fetchall() == [("FR",)]


def test_newest_inventory_update_per_item_and_field_sets_stock_and_price(store_with_items, tmp_path):
    rows = [
        {"item_id": "i1", "ts": "2026-01-05T00:00:00Z", "quantity": 0, "price": 1.2},
        {"item_id": "i1", "ts": "2026-01-04T00:00:00Z", "quantity": 9, "price": 1.1},
        {"item_id": "i2", "ts": "2026-01-04T00:00:00Z", "quantity": 4, "price": 2.2},
        {"item_id": "i2", "ts": "2026-01-06T00:00:00Z", "in_stock": "false"},  # newest, but no price
    ]
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "inventory.csv", rows))
    assert report.accepted == 4
    items = store_with_items.con.execute(
        "SELECT item_id, in_stock, stock_quantity, price, stock_updated_at::VARCHAR FROM items ORDER BY item_id"
    ).fetchall()
    assert items == [
        ("i1", False, 0, 1.2, "2026-01-05 00:00:00+00"),
        ("i2", False, 4, 2.2, "2026-01-06 00:00:00+00"),
        ("i3", True, 7, 299.0, None),
    ]

    # An older update arriving later is logged but does not move the item back.
    late = ingest_file(store_with_items, write_csv(tmp_path / "in" / "inventory-late.csv", [
        {"item_id": "i1", "ts": "2026-01-04T12:00:00Z", "quantity": 50, "price": 9.9}]))
    assert late.accepted == 1 and store_with_items.count("inventory") == 5
    assert store_with_items.con.execute(
        "SELECT stock_quantity, price FROM items WHERE item_id = 'i1'").fetchone() == (0, 1.2)

    # Re-sending the first file changes nothing.
    again = ingest_file(store_with_items, write_csv(tmp_path / "in" / "inventory-again.csv", rows))
    assert (again.accepted, again.duplicates) == (0, 4)
    assert store_with_items.con.execute(
        "SELECT item_id, in_stock, stock_quantity, price, stock_updated_at::VARCHAR FROM items ORDER BY item_id"
    ).fetchall() == items


def test_export_then_ingest_into_a_fresh_store_gives_the_same_rows(store_with_items, tmp_path):
    from shelfrank.config import StoreConfig
    from shelfrank.store.database import Store

    s = store_with_items
    ingest_file(s, write_csv(tmp_path / "in" / "categories.csv", [
        {"category_id": "fruit", "name": "Fruit", "level": 0}, {"category_id": "apples", "name": "Apples",
                                                               "parent_id": "fruit", "level": 1}]))
    ingest_file(s, write_csv(tmp_path / "in" / "users.csv", [{"user_id": "u1", "signup_date": "2025-02-03"}]))
    ingest_file(s, write_csv(tmp_path / "in" / "collections.csv", [
        {"collection_id": "c1", "title": "Fruit", "source": "curated", "item_ids": "i1|i2",
         "starts_at": "2026-01-01T00:00:00.123456Z"},
        {"collection_id": "cat:fruit", "title": "Fruit", "source": "rules", "rule_categories": "fruit",
         "rule_price_min": 0.5}]))
    ingest_file(s, write_csv(tmp_path / "in" / "inventory.csv", [
        {"item_id": "i1", "ts": "2026-01-03T00:00:00Z", "quantity": 2}]))
    ingest_file(s, write_csv(tmp_path / "in" / "events.csv", [
        event(seconds=1, propensity=0.25), event("search", item_id=None, query="a, \"b\"", seconds=2),
        event("purchase", seconds=3, quantity=2, price=1.5)]))
    tables = ["categories", "items", "users", "collections", "inventory", "events"]

    for suffix in (".parquet", ".csv"):
        out = tmp_path / f"export{suffix}"
        fresh = StoreConfig(data_dir=tmp_path / f"fresh{suffix}")
        with Store.open(fresh) as copy:
            for table in tables:
                path = out / f"{table}{suffix}"
                assert s.export(table, path) == s.count(table)
                report = ingest_file(copy, path)
                assert report.rejected == 0, (table, report.reasons)
            for table in tables:
                columns = ", ".join(f'"{c}"' for c in __import__("shelfrank.contracts").contracts.CONTRACTS[
                    table].column_names)
                query = f"SELECT {columns} FROM {table} ORDER BY ALL"
                assert copy.con.execute(query).fetchall() == s.con.execute(query).fetchall(), (table, suffix)
    # Parquet exports carry the contract's Arrow schema.
    schema = pq.read_schema(tmp_path / "export.parquet" / "events.parquet")
    assert schema.field("ts").type == __import__("pyarrow").timestamp("us", tz="UTC")
