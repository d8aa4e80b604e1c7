"""Files with known contents for the store tests (fixtures are in conftest.py)."""

from __future__ import annotations

import csv
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from shelfrank.contracts import CONTRACTS

T0 = datetime(2026, 1, 2, 10, 0, tzinfo=UTC)

ITEM_ROWS = [
    {"item_id": "i1", "title": "Apple", "vertical": "groceries", "category_id": "fruit", "brand": "acme",
     "price": 1.5, "image_url": "https://img/1.jpg", "stock_quantity": 3, "created_at": "2026-01-01T00:00:00Z",
     "tags": "organic|sale"},
    {"item_id": "i2", "title": "Pear", "vertical": "groceries", "category_id": "fruit", "brand": "",
     "price": 2.0, "image_url": "", "stock_quantity": 0, "created_at": "2026-01-01"},
    {"item_id": "i3", "title": "Phone", "vertical": "electronics", "category_id": "phones", "brand": "zed",
     "price": 299.0, "image_url": "https://img/3.jpg", "stock_quantity": 7, "created_at": "2026-01-01T08:00:00+01:00"},
]


def write_csv(path: Path, rows: list[dict], columns: list[str] | None = None) -> Path:
    """Write rows as CSV; values are written as given (None as empty)."""
    columns = columns or list(dict.fromkeys(k for row in rows for k in row))
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(columns)
        for row in rows:
            writer.writerow(["" if row.get(c) is None else row.get(c) for c in columns])
    return path


def write_parquet(path: Path, columns: dict[str, list], kind: str | None = None) -> Path:
    """Write columns as Parquet, typed by the contract where the column is in it (else inferred)."""
    contract = CONTRACTS.get(kind or "")
    arrays = {}
    for name, values in columns.items():
        if contract is not None and name in contract.column_names:
            arrays[name] = pa.array(values, type=contract.field(name).arrow_type)
        else:
            arrays[name] = pa.array(values)
    path.parent.mkdir(parents=True, exist_ok=True)
    pq.write_table(pa.table(arrays), path)
    return path


def event(event_type: str = "impression", seconds: int = 0, **values) -> dict:
    row = {"ts": f"2026-01-02T10:00:{seconds:02d}Z", "user_id": "u1", "session_id": "s1", "event_type": event_type,
           "item_id": "i1", "collection_id": "cat:fruit", "row": 0, "position": seconds, "request_id": "r1"}
    row.update(values)
    return row


