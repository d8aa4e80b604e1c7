"""The public input formats: what a store sends to shelfrank.

Each contract is a list of :class:`Field` declarations. From them come the Arrow
schema (what the simulator writes and what export produces), the DuckDB table
definition, and the row checks that ingest applies (see ``store/ingest.py``).
docs/data.md documents every field with examples; keep the two in step.

Files are Parquet or CSV. In CSV, list fields (``item_ids``, ``tags``, ...) are
written as ``|``-separated strings and timestamps as ISO 8601 (UTC if no offset).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal

import pyarrow as pa

EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase", "search")
# Events about an item must name one that is in the catalog.
ITEM_EVENT_TYPES = ("impression", "click", "add_to_cart", "purchase")
# Deepest funnel stage wins when labels are built: purchase > add_to_cart > click.
FUNNEL_STAGES = ("click", "add_to_cart", "purchase")
COLLECTION_SOURCES = ("curated", "rules", "ml")
LIST_SEPARATOR = "|"

FieldType = Literal["string", "int", "float", "bool", "timestamp", "date", "string_list"]

_ARROW_TYPES: dict[str, pa.DataType] = {
    "string": pa.string(),
    "int": pa.int64(),
    "float": pa.float64(),
    "bool": pa.bool_(),
    "timestamp": pa.timestamp("us", tz="UTC"),
    "date": pa.date32(),
    "string_list": pa.list_(pa.string()),
}

_DUCKDB_TYPES: dict[str, str] = {
    "string": "VARCHAR",
    "int": "BIGINT",
    "float": "DOUBLE",
    "bool": "BOOLEAN",
    "timestamp": "TIMESTAMPTZ",
    "date": "DATE",
    "string_list": "VARCHAR[]",
}


@dataclass(frozen=True)
class Field:
    """One column of a contract and the checks a value must pass."""

    name: str
    type: FieldType
    description: str
    required: bool = False  # the column must be present in the file
    nullable: bool = True  # a present column may hold nulls / empty values
    min_value: float | None = None  # inclusive lower bound
    positive: bool = False  # strictly greater than zero
    max_value: float | None = None  # inclusive upper bound
    choices: tuple[str, ...] | None = None  # allowed values
    references: str | None = None  # "items.item_id": the value must exist there

    @property
    def arrow_type(self) -> pa.DataType:
        return _ARROW_TYPES[self.type]

    @property
    def duckdb_type(self) -> str:
        return _DUCKDB_TYPES[self.type]


@dataclass(frozen=True)
class Contract:
    """A public input format: its fields, its key, and what it stands for."""

    name: str
    key: tuple[str, ...]
    fields: tuple[Field, ...]
    description: str
    # Which fields must hold a value for which rows, beyond `nullable`:
    # (field, condition column, condition values): `field` is required where
    # `condition column` is one of the values.
    conditional_required: tuple[tuple[str, str, tuple[str, ...]], ...] = field(default=())

    @property
    def arrow_schema(self) -> pa.Schema:
        return pa.schema([pa.field(f.name, f.arrow_type, nullable=f.nullable) for f in self.fields])

    @property
    def required_columns(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def field(self, name: str) -> Field:
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(f"{self.name} has no field {name!r}")

    @property
    def column_names(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields)


CATEGORIES = Contract(
    name="categories",
    key=("category_id",),
    description="The category tree. Optional: items may name categories not listed here (a flat tree).",
    fields=(
        Field("category_id", "string", "Stable category id.", required=True, nullable=False),
        Field("name", "string", "Display name.", required=True, nullable=False),
        Field("parent_id", "string", "Parent category id; empty for a top-level category."),
        Field("vertical", "string", "Vertical (groceries, electronics, ...) the category belongs to."),
        Field("level", "int", "Depth in the tree, 0 for top level.", min_value=0),
    ),
)

ITEMS = Contract(
    name="items",
    key=("item_id",),
    description="The catalog: one row per item (product). Re-sending an item updates it.",
    fields=(
        Field("item_id", "string", "Stable item id (SKU).", required=True, nullable=False),
        Field("title", "string", "Display title.", required=True, nullable=False),
        Field("vertical", "string", "Vertical of the item.", required=True, nullable=False),
        Field("category_id", "string", "Leaf category id (see categories).", required=True, nullable=False),
        Field("brand", "string", "Brand name or id."),
        Field("price", "float", "Current price, > 0.", required=True, nullable=False, positive=True),
        Field("has_image", "bool", "Whether the item has an image; derived from image_url when absent."),
        Field("image_url", "string", "Image address."),
        Field("in_stock", "bool", "Whether the item can be bought now; derived from stock_quantity."),
        Field("stock_quantity", "int", "Units in stock, >= 0.", min_value=0),
        Field("created_at", "timestamp", "When the item entered the catalog (UTC).", required=True,
              nullable=False),
        Field("tags", "string_list", "Free tags (e.g. organic, sale); `|`-separated in CSV."),
        Field("attributes", "string", "Optional JSON object of further attributes."),
    ),
)

USERS = Contract(
    name="users",
    key=("user_id",),
    description="Optional user profiles. Events may name users not listed here.",
    fields=(
        Field("user_id", "string", "Stable user id.", required=True, nullable=False),
        Field("signup_date", "date", "Sign-up date."),
        Field("location", "string", "Home location (region code)."),
        Field("subscription", "string", "Subscription status, e.g. none, member, premium."),
    ),
)

COLLECTIONS = Contract(
    name="collections",
    key=("collection_id",),
    description=(
        "Collections an operator defines (and the ids of generated ones). A collection is either an "
        "explicit list of items or a rule over the catalog (categories / brands / tags / price range)."
    ),
    fields=(
        Field("collection_id", "string", "Stable collection id.", required=True, nullable=False),
        Field("title", "string", "Display title.", required=True, nullable=False),
        Field("source", "string", "curated, rules or ml.", required=True, nullable=False,
              choices=COLLECTION_SOURCES),
        Field("item_ids", "string_list", "Explicit items, in order; `|`-separated in CSV."),
        Field("rule_categories", "string_list", "Rule: items in these categories (or their descendants)."),
        Field("rule_brands", "string_list", "Rule: items of these brands."),
        Field("rule_tags", "string_list", "Rule: items with any of these tags."),
        Field("rule_price_min", "float", "Rule: minimum price.", min_value=0),
        Field("rule_price_max", "float", "Rule: maximum price.", positive=True),
        Field("starts_at", "timestamp", "Shown from this time (UTC); empty for always."),
        Field("ends_at", "timestamp", "Shown until this time (UTC); empty for always."),
        Field("pinned_row", "int", "Curated only: keep this collection at this row.", min_value=0),
    ),
)

EVENTS = Contract(
    name="events",
    key=("event_id",),
    description="The append-only event log: what users saw and did.",
    fields=(
        Field("event_id", "string", "Unique id; derived from the other fields when absent."),
        Field("ts", "timestamp", "When it happened (UTC).", required=True, nullable=False),
        Field("user_id", "string", "Who.", required=True, nullable=False),
        Field("session_id", "string", "Session the event belongs to.", required=True, nullable=False),
        Field("event_type", "string", "impression, click, add_to_cart, purchase or search.", required=True,
              nullable=False, choices=EVENT_TYPES),
        Field("item_id", "string", "Item; required for every type but search.", references="items.item_id"),
        Field("collection_id", "string", "Collection the item was shown in."),
        Field("row", "int", "Vertical index of the collection on the page (0 = top).", min_value=0),
        Field("position", "int", "Horizontal index inside the collection (0 = left).", min_value=0),
        Field("request_id", "string", "The page request: ties impressions to the clicks and purchases."),
        Field("surface", "string", "web, ios, android, ..."),
        Field("location", "string", "Where the user was (region code)."),
        Field("query", "string", "Search text; required for search."),
        Field("quantity", "int", "Units bought (purchases), > 0.", positive=True),
        Field("price", "float", "Unit price paid (purchases), > 0.", positive=True),
        Field("propensity", "float", "Probability with which the logging policy showed the item there.",
              positive=True, max_value=1.0),
    ),
    conditional_required=(
        ("item_id", "event_type", ITEM_EVENT_TYPES),
        ("query", "event_type", ("search",)),
    ),
)

INVENTORY = Contract(
    name="inventory",
    key=("item_id", "ts"),
    description="Inventory and price updates; the newest per item is the item's current state.",
    fields=(
        Field("item_id", "string", "Item.", required=True, nullable=False, references="items.item_id"),
        Field("ts", "timestamp", "When the update took effect (UTC).", required=True, nullable=False),
        Field("in_stock", "bool", "Whether it can be bought; derived from quantity when absent."),
        Field("quantity", "int", "Units in stock, >= 0.", min_value=0),
        Field("price", "float", "New price, > 0.", positive=True),
    ),
)

CONTRACTS: dict[str, Contract] = {
    c.name: c for c in (CATEGORIES, ITEMS, USERS, COLLECTIONS, EVENTS, INVENTORY)
}
# The order in which a folder of files is ingested: references point backwards.
INGEST_ORDER = ("categories", "items", "users", "collections", "inventory", "events")


def contract_for(name: str) -> Contract:
    try:
        return CONTRACTS[name]
    except KeyError:
        known = ", ".join(CONTRACTS)
        raise ValueError(f"unknown data kind {name!r}; expected one of: {known}") from None


@dataclass(frozen=True)
class PageRequest:
    """One homepage request: who, when, where, on what surface, and the page's size.

    ``seed`` makes the page's random choices (exploration) reproducible: the same request
    and seed give the same page.
    """

    user_id: str
    at: datetime
    location: str | None = None
    surface: str = "web"
    rows: int = 8
    items: int = 10
    session_id: str | None = None
    seed: int = 0

    def __post_init__(self) -> None:
        if not self.user_id:
            raise ValueError("user_id must not be empty")
        if self.at.tzinfo is None:
            object.__setattr__(self, "at", self.at.replace(tzinfo=UTC))
        if not 1 <= self.rows <= 100:
            raise ValueError(f"rows must be between 1 and 100, got {self.rows}")
        if not 1 <= self.items <= 100:
            raise ValueError(f"items must be between 1 and 100, got {self.items}")
