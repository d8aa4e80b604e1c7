"""Request rows checked against the same contract declarations ingest uses.

A contract's ``Field`` list becomes a strict pydantic model (types, bounds, choices, required
and nullable, extra fields forbidden), so the API, its OpenAPI schema and ingest cannot drift
apart. The checks pydantic cannot express per row (conditionally required fields, references
to the catalog, rows that change nothing) run vectorized over the batch afterwards. Rows come
out normalized: timestamps as UTC epoch microseconds, derived fields (``event_id``,
``in_stock``, ``has_image``) filled in the way ingest fills them.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime
from typing import Annotated, Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, TypeAdapter, ValidationError, create_model
from pydantic import Field as PydanticField

from shelfrank.contracts import Contract, Field
from shelfrank.store.ingest import EVENT_ID_SOURCE_COLUMNS

MAX_TEXT = 2_048  # longest accepted string value
MAX_LIST = 1_000  # longest accepted list value (item_ids, tags)
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class RowError(BaseModel):
    """One rejected row: its index in the request, the field at fault and why."""

    index: int = PydanticField(description="0-based position of the row in the request's list.")
    field: str = PydanticField(description="The field at fault ('' when the row as a whole is wrong).")
    reason: str = PydanticField(description="What is wrong, in words.")


def _python_type(f: Field) -> Any:
    if f.choices:
        return Literal[f.choices]  # type: ignore[valid-type]
    bounds: dict[str, Any] = {}
    if f.min_value is not None:
        bounds["ge"] = f.min_value
    if f.positive:
        bounds["gt"] = 0
    if f.max_value is not None:
        bounds["le"] = f.max_value
    if f.type == "string":
        return Annotated[str, PydanticField(min_length=0 if f.nullable else 1, max_length=MAX_TEXT)]
    if f.type == "int":  # BIGINT in the store and Arrow: keep within int64
        bounds.setdefault("ge", -(2**63))
        bounds.setdefault("le", 2**63 - 1)
        return Annotated[int, PydanticField(strict=False, **bounds)]
    if f.type == "float":
        return Annotated[float, PydanticField(allow_inf_nan=False, **bounds)]
    if f.type == "bool":
        return bool
    if f.type == "timestamp":
        return datetime
    if f.type == "date":
        return date
    if f.type == "string_list":
        return Annotated[list[Annotated[str, PydanticField(max_length=MAX_TEXT)]], PydanticField(max_length=MAX_LIST)]
    raise ValueError(f"no API type for field type {f.type!r}")


def row_model(contract: Contract, name: str, exclude: Sequence[str] = (),
              optional: Sequence[str] = ()) -> type[BaseModel]:
    """A pydantic model of one row of `contract` (fields in `exclude` left out, those in
    `optional` not required)."""
    definitions: dict[str, Any] = {}
    for f in contract.fields:
        if f.name in exclude:
            continue
        annotation = _python_type(f)
        required = f.required and f.name not in optional
        if not f.nullable and required:
            definitions[f.name] = (annotation, PydanticField(description=f.description))
        elif required:
            definitions[f.name] = (annotation | None, PydanticField(description=f.description))
        else:
            definitions[f.name] = (annotation | None, PydanticField(None, description=f.description))
    config = ConfigDict(extra="forbid", str_strip_whitespace=True)
    return create_model(name, __config__=config, __doc__=contract.description, **definitions)


def epoch_us(value: datetime) -> int:
    """UTC epoch microseconds; a naive timestamp is UTC (as in ingest)."""
    if value.tzinfo is None:
        value = value.replace(tzinfo=UTC)
    delta = value - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def _error_field(loc: tuple) -> str:
    return ".".join(str(p) for p in loc[1:]) if len(loc) > 1 else ""


@dataclass
class CheckedRows:
    rows: list[dict[str, Any]]  # normalized rows that passed, in request order
    indices: list[int]  # their positions in the request
    errors: list[RowError]

    @property
    def rejected(self) -> int:
        return len({e.index for e in self.errors})


class RowValidator:
    """Checks lists of rows of one contract; `known_items(ids) -> bool array` checks references."""

    def __init__(self, contract: Contract, model: type[BaseModel]) -> None:
        self.contract = contract
        self.model = model
        self._many = TypeAdapter(list[model])
        self._timestamps = [f.name for f in contract.fields if f.type == "timestamp"]
        self._texts = [f.name for f in contract.fields if f.type == "string" and f.nullable]

    def check(self, raw_rows: Sequence[Any], known_items: Callable[[np.ndarray], np.ndarray] | None = None,
              offset: int = 0) -> CheckedRows:
        errors: list[RowError] = []
        bad: set[int] = set()
        try:
            parsed = self._many.validate_python(list(raw_rows))
            good_idx = list(range(len(raw_rows)))
        except ValidationError as exc:
            for e in exc.errors(include_url=False):
                loc = tuple(e["loc"])
                index = int(loc[0]) if loc and isinstance(loc[0], int) else 0
                bad.add(index)
                field = _error_field(loc)
                if e["type"] == "extra_forbidden":
                    reason = f"unknown field {field!r} (not in the {self.contract.name} contract)"
                else:
                    reason = e["msg"]
                errors.append(RowError(index=index + offset, field=field, reason=reason))
            good_idx = [i for i in range(len(raw_rows)) if i not in bad]
            parsed = self._many.validate_python([raw_rows[i] for i in good_idx]) if good_idx else []
        rows = [p.model_dump() for p in parsed]
        for row in rows:
            for name in self._timestamps:
                if row.get(name) is not None:
                    row[name] = epoch_us(row[name])
            for name in self._texts:
                if row.get(name) == "":
                    row[name] = None  # a blank value is no value, as in ingest
        keep = np.ones(len(rows), dtype=bool)
        # Conditionally required fields (e.g. item_id for item events).
        for name, when, values in self.contract.conditional_required:
            if name not in self.model.model_fields or when not in self.model.model_fields:
                continue
            for k, row in enumerate(rows):
                if keep[k] and row.get(when) in values and row.get(name) in (None, ""):
                    keep[k] = False
                    errors.append(RowError(index=good_idx[k] + offset, field=name,
                                           reason=f"missing {name} (required when {when} is {'/'.join(values)})"))
        # References to the catalog, one vectorized lookup per field.
        if known_items is not None:
            for f in self.contract.fields:
                if f.references != "items.item_id" or f.name not in self.model.model_fields:
                    continue
                ids = np.asarray([r.get(f.name) or "" for r in rows], dtype=object)
                present = ids != ""
                known = known_items(ids) if len(ids) else np.zeros(0, dtype=bool)
                for k in np.flatnonzero(present & ~known & keep):
                    keep[k] = False
                    errors.append(RowError(index=good_idx[k] + offset, field=f.name,
                                           reason=f"unknown {f.name} {ids[k]!r} (not in items)"))
        for k, row in enumerate(rows):
            if keep[k]:
                problem = self._row_rule(row)
                if problem is not None:
                    keep[k] = False
                    errors.append(RowError(index=good_idx[k] + offset, field=problem[0], reason=problem[1]))
        kept = [k for k in range(len(rows)) if keep[k]]
        out = [self._derive(rows[k]) for k in kept]
        errors.sort(key=lambda e: e.index)
        return CheckedRows(rows=out, indices=[good_idx[k] + offset for k in kept], errors=errors)

    def _row_rule(self, row: dict[str, Any]) -> tuple[str, str] | None:
        name = self.contract.name
        if name == "inventory" and row.get("in_stock") is None and row.get("quantity") is None \
                and row.get("price") is None:
            return "", "no in_stock, quantity or price: the update changes nothing"
        if name == "collections":
            rules = [f.name for f in self.contract.fields if f.name.startswith("rule_")]
            if not row.get("item_ids") and all(row.get(r) is None for r in rules):
                return "item_ids", "no item_ids and no rule_* field: a collection needs explicit items or a rule"
            lo, hi = row.get("rule_price_min"), row.get("rule_price_max")
            if lo is not None and hi is not None and lo > hi:
                return "rule_price_min", f"rule_price_min above rule_price_max ({lo} > {hi})"
            start, end = row.get("starts_at"), row.get("ends_at")
            if start is not None and end is not None and start > end:
                return "starts_at", "starts_at after ends_at"
        return None

    def _derive(self, row: dict[str, Any]) -> dict[str, Any]:
        """Fill what ingest derives when a file leaves it empty."""
        name = self.contract.name
        if name == "events" and not row.get("event_id"):
            row["event_id"] = event_id(row)
        elif name == "inventory" and row.get("in_stock") is None and row.get("quantity") is not None:
            row["in_stock"] = row["quantity"] > 0
        elif name == "items":
            if row.get("has_image") is None:
                row["has_image"] = bool(row.get("image_url"))
            if row.get("in_stock") is None and row.get("stock_quantity") is not None:
                row["in_stock"] = row["stock_quantity"] > 0
        return row


def event_id(row: dict[str, Any]) -> str:
    """The id ingest derives for an event without one (store/ingest.py: event_id_expression):
    md5 over the identifying fields joined by chr(31), ts as epoch microseconds, NULL as ''."""
    parts = []
    for name in EVENT_ID_SOURCE_COLUMNS:
        value = row.get(name)
        parts.append("" if value is None else str(value))
    return hashlib.md5("\x1f".join(parts).encode()).hexdigest()
