"""Each row check: the bad row is rejected with its row number and reason, good rows are kept."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
from store_files import ITEM_ROWS, event, write_csv, write_parquet

from shelfrank.store.database import Store
from shelfrank.store.ingest import IngestError, ingest_file


def rejects(report) -> list[dict]:
    assert report.rejects_path is not None and report.rejects_path.exists()
    with report.rejects_path.open(newline="") as fh:
        return list(csv.DictReader(fh))


def ingest_rows(store: Store, folder: Path, kind: str, rows: list[dict], fmt: str):
    if fmt == "csv":
        path = write_csv(folder / f"{kind}.csv", rows)
    else:
        columns = list(dict.fromkeys(k for row in rows for k in row))
        # Every column as text: Parquet files with wrong column types must work too.
        path = write_parquet(folder / f"{kind}.parquet",
                             {c: [None if r.get(c) is None else str(r[c]) for r in rows] for c in columns})
    return ingest_file(store, path)


EVENT_CASES = [
    # (bad row, reason counted, text the rejects file's reason starts with)
    (event(ts="yesterday"), "unparsable timestamp in ts", "unparsable timestamp in ts: 'yesterday'"),
    (event(position="two"), "unparsable integer in position", "unparsable integer in position: 'two'"),
    (event(position="1.5"), "unparsable integer in position", "unparsable integer in position: '1.5'"),
    (event(propensity="high"), "unparsable number in propensity", "unparsable number in propensity: 'high'"),
    (event(propensity="nan"), "unparsable number in propensity", "unparsable number in propensity"),
    (event(user_id=""), "missing user_id", "missing user_id"),
    (event(user_id="   "), "missing user_id", "missing user_id"),
    (event("view"), "unknown event_type", "unknown event_type 'view'"),
    (event(position=-1), "position must be >= 0", "position must be >= 0 (got -1)"),
    (event("purchase", price=0, quantity=1), "price must be > 0", "price must be > 0"),
    (event("purchase", price=3, quantity=0), "quantity must be > 0", "quantity must be > 0"),
    (event(propensity=1.5), "propensity must be <= 1", "propensity must be <= 1 (got 1.5)"),
    (event(propensity=0), "propensity must be > 0", "propensity must be > 0"),
    (event(item_id="nope"), "unknown item_id", "unknown item_id 'nope'"),
    (event("click", item_id=None),
     "missing item_id (required when event_type is impression/click/add_to_cart/purchase)",
     "missing item_id (required when event_type is 'click')"),
    (event("search", item_id=None, query=None), "missing query (required when event_type is search)",
     "missing query (required when event_type is 'search')"),
]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_each_bad_event_is_rejected_with_its_row_number_and_reason_and_good_rows_are_kept(
    store_with_items: Store, tmp_path: Path, fmt: str
):
    # Good and bad rows alternate: good rows at even row numbers, EVENT_CASES at odd ones.
    rows = []
    for i, (bad, _, _) in enumerate(EVENT_CASES):
        rows += [event(seconds=i, request_id=f"good{i}"), {**bad, "request_id": f"bad{i}"}]
    rows.append(event("search", item_id=None, query="milk", request_id="good-search"))
    report = ingest_rows(store_with_items, tmp_path / "in", "events", rows, fmt)

    assert (report.rows_read, report.rejected, report.duplicates) == (len(rows), len(EVENT_CASES), 0)
    assert report.accepted == len(EVENT_CASES) + 1
    expected_counts: dict[str, int] = {}
    for _, reason, _ in EVENT_CASES:
        expected_counts[reason] = expected_counts.get(reason, 0) + 1
    assert report.reasons == expected_counts
    rejected = rejects(report)
    assert [r["row_number"] for r in rejected] == [str(2 * i + 2) for i in range(len(EVENT_CASES))]
    mismatches = [
        (r["reason"], message) for r, (_, _, message) in zip(rejected, EVENT_CASES, strict=True)
        if not r["reason"].startswith(message)
    ]
    assert mismatches == []
    kept = store_with_items.con.execute("SELECT list_sort(list(request_id)) FROM events").fetchone()[0]
    assert kept == sorted([f"good{i}" for i in range(len(EVENT_CASES))] + ["good-search"])


def test_rejects_file_holds_row_number_reason_and_the_original_values_as_text(store_with_items, tmp_path):
    rows = [event(seconds=1), event(ts="2026-13-45", seconds=2, surface="web"), event(seconds=3, position=-4)]
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events-jan.csv", rows))

    assert report.rejects_path.parent == store_with_items.config.rejects_dir
    assert report.rejects_path.name.startswith("events-events-jan-") and report.rejects_path.suffix == ".csv"
    with report.rejects_path.open(newline="") as fh:
        reader = csv.reader(fh)
        header = next(reader)
        body = list(reader)
    assert header[:2] == ["row_number", "reason"]
    assert header[2:] == [c for c in rows[1] if c in header]  # the file's contract columns, in file order
    first = dict(zip(header, body[0], strict=True))
    assert first["row_number"] == "2" and first["ts"] == "2026-13-45" and first["surface"] == "web"
    second = dict(zip(header, body[1], strict=True))
    assert second["row_number"] == "3" and second["position"] == "-4"


def test_row_numbers_count_data_records_not_lines_when_a_value_spans_lines(store_with_items, tmp_path):
    rows = [event(seconds=1, query="two\nlines"), event(seconds=2, position=-1)]
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", rows))
    assert [r["row_number"] for r in rejects(report)] == ["2"]


def test_csv_row_numbers_follow_the_file_order_over_many_rows(store_with_items, tmp_path):
    rows = [event(seconds=i % 60, request_id=f"r{i}") for i in range(30_000)]
    bad = {7, 12_345, 21_000, 29_999}
    for i in bad:
        rows[i]["position"] = -1
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", rows))
    assert report.rejected == len(bad)
    numbers = [(int(r["row_number"]), r["request_id"]) for r in rejects(report)]
    assert numbers == [(i + 1, f"r{i}") for i in sorted(bad)]


def test_folder_of_parts_reports_the_part_file_of_each_rejected_row(store_with_items, tmp_path):
    folder = tmp_path / "in" / "events"
    write_parquet(folder / "part-0.parquet", {"ts": [event()["ts"]] * 2, "user_id": ["u1", "u2"],
                                              "session_id": ["s", "s"], "event_type": ["click", "nope"],
                                              "item_id": ["i1", "i1"]})
    write_parquet(folder / "part-1.parquet", {"ts": [event()["ts"]] * 3, "user_id": ["u3", "u4", ""],
                                              "session_id": ["s", "s", "s"], "event_type": ["click"] * 3,
                                              "item_id": ["i1", "i2", "i3"]})
    report = ingest_file(store_with_items, folder)

    assert report.kind == "events" and (report.rows_read, report.accepted, report.rejected) == (5, 3, 2)
    assert [(r["file"], r["row_number"], r["reason"].split(" '")[0]) for r in rejects(report)] == [
        ("part-0.parquet", "2", "unknown event_type"),
        ("part-1.parquet", "3", "missing user_id"),
    ]


def test_wrongly_typed_parquet_columns_keep_the_values_that_convert(store_with_items, tmp_path):
    path = write_parquet(tmp_path / "in" / "events.parquet", {
        "ts": [event()["ts"]] * 4, "user_id": ["u"] * 4, "session_id": ["s"] * 4, "event_type": ["click"] * 4,
        "item_id": ["i1"] * 4,
        "position": ["1", "x", " 3 ", None],  # strings where integers belong
        "price": [1, 2, 3, 4],  # integers where floats belong
        "row": [0.0, 1.0, 2.5, 3.0],  # floats where integers belong
    })
    report = ingest_file(store_with_items, path)

    assert report.reasons == {"unparsable integer in position": 1, "unparsable integer in row": 1}
    stored = store_with_items.con.execute("SELECT position, row, price FROM events ORDER BY price").fetchall()
    assert stored == [(1, 0, 1.0), (None, 3, 4.0)]


def test_item_checks_and_derived_fields(store, tmp_path):
    rows = [dict(r) for r in ITEM_ROWS] + [
        {**ITEM_ROWS[0], "item_id": "bad-price", "price": -2},
        {**ITEM_ROWS[0], "item_id": "bad-date", "created_at": "soon"},
        {**ITEM_ROWS[0], "item_id": "bad-stock", "stock_quantity": -1},
        {**ITEM_ROWS[0], "item_id": "bad-bool", "has_image": "maybe"},
        {**ITEM_ROWS[0], "item_id": "no-title", "title": ""},
    ]
    rows[0]["has_image"] = "false"  # given explicitly: wins over image_url
    report = ingest_file(store, write_csv(tmp_path / "in" / "items.csv", rows))

    assert report.reasons == {"price must be > 0": 1, "unparsable timestamp in created_at": 1,
                              "stock_quantity must be >= 0": 1, "unparsable boolean in has_image": 1,
                              "missing title": 1}
    stored = store.con.execute(
        "SELECT item_id, has_image, in_stock, tags, created_at::VARCHAR FROM items ORDER BY item_id"
    ).fetchall()
    assert stored == [
        ("i1", False, True, ["organic", "sale"], "2026-01-01 00:00:00+00"),
        ("i2", False, False, None, "2026-01-01 00:00:00+00"),
        ("i3", True, True, None, "2026-01-01 07:00:00+00"),  # the offset is honoured, stored as UTC
    ]


def test_collection_checks(store_with_items, tmp_path):
    rows = [
        {"collection_id": "c1", "title": "Fruit", "source": "curated", "item_ids": "i1|i2"},
        {"collection_id": "c2", "title": "Cheap", "source": "rules", "rule_price_max": 5},
        {"collection_id": "c3", "title": "Nothing", "source": "curated"},
        {"collection_id": "c4", "title": "Ghosts", "source": "curated", "item_ids": "i1|ghost|ghost2"},
        {"collection_id": "c5", "title": "Odd", "source": "editor", "item_ids": "i1"},
        {"collection_id": "c6", "title": "Upside down", "source": "rules", "rule_price_min": 9, "rule_price_max": 5},
        {"collection_id": "c7", "title": "Sale", "source": "rules", "rule_tags": "sale", "pinned_row": -1},
    ]
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "collections.csv", rows))

    assert report.accepted == 2
    by_row = {r["row_number"]: r["reason"] for r in rejects(report)}
    assert by_row == {
        "3": "no item_ids and no rule_* field: a collection needs explicit items or a rule",
        "4": "unknown item_id in item_ids: 'ghost' (not in items)",
        "5": "unknown source 'editor' (expected one of curated, rules, ml)",
        "6": "rule_price_min above rule_price_max (9.0 > 5.0)",
        "7": "pinned_row must be >= 0 (got -1)",
    }
    assert store_with_items.con.execute("SELECT item_ids FROM collections WHERE collection_id = 'c1'").fetchone() == (
        ["i1", "i2"],)


def test_inventory_checks(store_with_items, tmp_path):
    rows = [
        {"item_id": "i1", "ts": "2026-01-03T00:00:00Z", "quantity": 5},
        {"item_id": "ghost", "ts": "2026-01-03T00:00:00Z", "quantity": 5},
        {"item_id": "i2", "ts": "2026-01-03T00:00:00Z"},
        {"item_id": "i3", "ts": "2026-01-03T00:00:00Z", "price": 0},
    ]
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "inventory.csv", rows))
    assert report.reasons == {"unknown item_id": 1, "no in_stock, quantity or price": 1, "price must be > 0": 1}
    assert store_with_items.con.execute("SELECT item_id, in_stock, quantity FROM inventory").fetchall() == [
        ("i1", True, 5)]


def test_users_and_categories(store, tmp_path):
    users = ingest_file(store, write_csv(tmp_path / "in" / "users.csv", [
        {"user_id": "u1", "signup_date": "2025-03-04", "location": "DE-BE", "subscription": "member"},
        {"user_id": "u2", "signup_date": "last week"},
        {"user_id": "", "signup_date": "2025-03-04"},
    ]))
    assert users.reasons == {"unparsable date in signup_date": 1, "missing user_id": 1}
    categories = ingest_file(store, write_parquet(tmp_path / "in" / "categories.parquet", {
        "category_id": ["fruit", "apples", "x"], "name": ["Fruit", "Apples", "X"],
        "parent_id": [None, "fruit", None], "level": [0, 1, -1],
    }, kind="categories"))
    assert categories.reasons == {"level must be >= 0": 1}
    assert store.table_counts()["users"] == 1 and store.table_counts()["categories"] == 2


def test_unknown_columns_are_ignored_with_a_warning(store_with_items, tmp_path):
    report = ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", [event(colour="red")]))
    assert report.accepted == 1
    assert report.warnings == ["ignored columns not in the events contract: colour"]


@pytest.mark.parametrize("fmt", ["csv", "parquet"])
def test_missing_required_columns_are_one_line_naming_them_and_the_file(store, tmp_path, fmt):
    rows = [{"item_id": "i1", "title": "Apple", "price": 1.0}]
    with pytest.raises(IngestError) as caught:
        ingest_rows(store, tmp_path / "in", "items", rows, fmt)
    message = str(caught.value)
    assert "\n" not in message
    assert f"items.{fmt}" in message and "vertical, category_id, created_at" in message


@pytest.mark.parametrize(
    ("name", "content", "expected"),
    [
        ("events.parquet", b"this is not parquet at all", "cannot read"),
        ("events.parquet", b"", "is empty"),
        ("events.csv", b"ts,user_id,session_id,event_type\n", "has no data rows"),
    ],
)
def test_unreadable_or_empty_files_are_one_line_errors(store, tmp_path, name, content, expected):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(IngestError) as caught:
        ingest_file(store, path)
    assert expected in str(caught.value) and "\n" not in str(caught.value)
    assert store.count("events") == 0 and store.count("ingest_files") == 0


def test_csv_rows_with_more_values_than_the_header_are_rejected_and_short_rows_padded(store, tmp_path):
    path = tmp_path / "users.csv"
    path.write_text("user_id,signup_date,location\nu1,2025-01-01,DE\nu2,2025-01-01,FR,extra\nu3\n,2025-01-02\n")
    report = ingest_file(store, path)
    assert report.reasons == {"more values than the header has columns": 1, "missing user_id": 1}
    assert [(r["row_number"], r["user_id"]) for r in rejects(report)] == [("2", "u2"), ("4", "")]
    stored = store.con.execute("SELECT user_id, location FROM users ORDER BY 1").fetchall()
    assert stored == [("u1", "DE"), ("u3", None)]
