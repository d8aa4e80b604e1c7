"""A change to the online state: what the intake log stores and what replicas exchange.

Every write the service accepts (events, inventory updates, items, curated collections, a
model swap) becomes one :class:`Change` of already validated, normalized rows (timestamps as
UTC epoch microseconds). The same bytes go to the durable intake log and to the Redis
stream, and :func:`apply_change` is the one place where a change reaches the engine, so a
live write, a replay at startup and a change from another replica take the same path.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import orjson
import pyarrow as pa

from shelfrank.contracts import EVENTS, INVENTORY, ITEMS, Contract
from shelfrank.store.catalog import definition_from_row

ChangeKind = Literal["events", "inventory", "items", "collection", "collection_delete", "models"]
CHANGE_KINDS: tuple[str, ...] = ("events", "inventory", "items", "collection", "collection_delete", "models")
_CONTRACTS: dict[str, Contract] = {"events": EVENTS, "inventory": INVENTORY, "items": ITEMS}


@dataclass(frozen=True)
class Change:
    kind: ChangeKind
    rows: list[dict[str, Any]] = field(default_factory=list)
    origin: str = ""  # replica that accepted it

    def to_json(self) -> bytes:
        return orjson.dumps({"kind": self.kind, "origin": self.origin, "rows": self.rows})

    @classmethod
    def from_json(cls, data: bytes | str) -> Change:
        obj = orjson.loads(data)
        if obj.get("kind") not in CHANGE_KINDS:
            raise ValueError(f"unknown change kind {obj.get('kind')!r}")
        return cls(kind=obj["kind"], rows=list(obj.get("rows") or []), origin=str(obj.get("origin") or ""))


def rows_to_table(contract: Contract, rows: list[dict[str, Any]]) -> pa.Table:
    """Normalized rows as an Arrow table with the contract's schema (every column present)."""
    arrays = []
    for f in contract.fields:
        values = [r.get(f.name) for r in rows]
        if f.type == "timestamp":
            arrays.append(pa.array(values, pa.int64()).cast(pa.timestamp("us", tz="UTC")))
        elif f.type == "date":
            arrays.append(pa.array(values, pa.string()).cast(pa.date32()))
        else:
            arrays.append(pa.array(values, f.arrow_type))
    return pa.Table.from_arrays(arrays, schema=contract.arrow_schema)


def collection_definition(row: dict[str, Any]):
    """A curated definition (candidates.catalog.CuratedDefinition) from a normalized collection row."""
    from datetime import UTC, datetime

    def ts(value: int | None):
        return None if value is None else datetime.fromtimestamp(value / 1e6, tz=UTC)

    return definition_from_row({**row, "starts_at": ts(row.get("starts_at")), "ends_at": ts(row.get("ends_at"))})


def apply_change(engine: Any, change: Change) -> None:
    """Apply one change to the engine (the HomepageEngine interface)."""
    if change.kind == "events":
        engine.apply_events(rows_to_table(EVENTS, change.rows))
    elif change.kind == "inventory":
        engine.apply_inventory(rows_to_table(INVENTORY, change.rows))
    elif change.kind == "items":
        engine.upsert_items(rows_to_table(ITEMS, change.rows))
    elif change.kind == "collection":
        for row in change.rows:
            engine.upsert_collection(collection_definition(row))
    elif change.kind == "collection_delete":
        for row in change.rows:
            engine.delete_collection(str(row["collection_id"]))
    elif change.kind == "models":
        version = change.rows[0]["version"] if change.rows else None
        if version != getattr(engine, "model_version", None):
            engine.load_models(version)


def merge_runs(changes: Iterable[Change]) -> list[Change]:
    """Consecutive changes of a mergeable kind joined into one (replay applies big batches)."""
    merged: list[Change] = []
    for change in changes:
        if merged and change.kind == merged[-1].kind and change.kind in _CONTRACTS:
            merged[-1].rows.extend(change.rows)
        else:
            merged.append(Change(change.kind, list(change.rows), change.origin))
    return merged


def event_ids(change: Change) -> np.ndarray:
    return np.asarray([r.get("event_id") for r in change.rows], dtype=object)
