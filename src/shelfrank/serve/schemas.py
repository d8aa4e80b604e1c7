"""The API's request and response models (what /docs shows). Row models come from the contracts."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field

from shelfrank.contracts import COLLECTIONS, EVENTS, INVENTORY, ITEMS
from shelfrank.serve.validation import RowError, RowValidator, row_model

ID_PATTERN = r"^[A-Za-z0-9_.:@-]{1,128}$"
Identifier = Annotated[str, Field(pattern=ID_PATTERN)]

EventRow = row_model(EVENTS, "Event")
ItemRow = row_model(ITEMS, "Item")
InventoryRow = row_model(INVENTORY, "InventoryUpdate")
# The collection's id is the path's; the API's collections are curated unless said otherwise.
CollectionBody = row_model(COLLECTIONS, "CollectionDefinition", exclude=("collection_id",), optional=("source",))

EVENT_VALIDATOR = RowValidator(EVENTS, EventRow)
ITEM_VALIDATOR = RowValidator(ITEMS, ItemRow)
INVENTORY_VALIDATOR = RowValidator(INVENTORY, InventoryRow)
COLLECTION_VALIDATOR = RowValidator(COLLECTIONS, row_model(COLLECTIONS, "CollectionRow"))


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class HomepageQuery(_Strict):
    """Query parameters of GET /v1/homepage."""

    user_id: Identifier = Field(description="Who the page is for. Unknown users get the new-user page.")
    surface: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] = Field("web", description="web, ios, ...")
    location: Annotated[str, Field(pattern=r"^[A-Za-z0-9_-]{1,32}$")] | None = Field(
        None, description="Region code of the user now.")
    at: datetime | None = Field(None, description="The request's time (ISO 8601; default: now, UTC).")
    rows: int = Field(8, ge=1, le=50, description="Collections on the page.")
    items: int = Field(10, ge=1, le=50, description="Items per collection.")
    session_id: Identifier | None = Field(None, description="The current session (its events shape the page).")
    pipeline: Annotated[str, Field(pattern=r"^[a-z0-9_]{1,40}$")] = Field(
        "default", description="Page pipeline (see GET /v1/models for the list).")
    seed: int | None = Field(None, ge=0, le=2**31 - 1, description="Seed of the exploration (default: random).")


class ItemSlotOut(BaseModel):
    item_id: str
    position: int
    score: float | None = Field(description="Item ranker score (relevance at position 0).")
    propensity: float = Field(description="Probability the randomization put this item here: log it back.")
    title: str = ""
    brand: str = ""
    category_id: str = ""
    category: str = ""
    price: float | None = 0.0
    image_url: str = ""
    has_image: bool = True
    explore: bool = False
    badges: list[str] = []
    reason: str = ""
    signals: dict[str, float | None] = {}


class CollectionRowOut(BaseModel):
    collection_id: str
    title: str
    source: str = Field(description="curated, rules or ml")
    generator: str
    row: int
    score: float | None
    reason: str
    items: list[ItemSlotOut]
    retrieval_score: float | None = None
    explore: bool = False
    pinned: bool = False
    propensity: float = 1.0
    signals: dict[str, float | None] = {}


class HomepageResponse(BaseModel):
    """The page: collections in order, each with its items; log request_id and propensities back."""

    request_id: str
    user_id: str
    at: str
    surface: str
    location: str | None
    rows: list[CollectionRowOut]
    model_version: str
    pipeline: str
    new_user: bool = Field(description="True when the user is unknown: the new-user page.")
    fallback: bool = Field(description="True when the page is the fallback (curated and popular collections).")
    fallback_reason: str
    timings_ms: dict[str, float | None] = Field(description="Build time per stage and 'total'.")
    rule_counts: dict[str, int]
    replica: str = Field(description="The replica that served the page.")
    server_ms: float = Field(description="Time in the service, sync with other replicas included.")


class EventBatchSchema(_Strict):
    """Documentation of POST /v1/events' body (each event is checked on its own)."""

    events: list[EventRow]  # type: ignore[valid-type]


class EventsResponse(BaseModel):
    accepted: int = Field(description="Events durably logged and applied.")
    rejected: int = Field(description="Events refused; see errors.")
    duplicates: int = Field(description="Events already received (same event_id); not applied twice.")
    errors: list[RowError] = Field(description="One entry per problem: index in the batch, field, reason.")


class ItemsBody(_Strict):
    items: list[ItemRow] = Field(min_length=1)  # type: ignore[valid-type]


class InventoryBody(_Strict):
    updates: list[InventoryRow] = Field(min_length=1)  # type: ignore[valid-type]


class WriteResponse(BaseModel):
    accepted: int


class CollectionOut(BaseModel):
    collection_id: str
    title: str
    source: str
    item_ids: list[str]
    rule_categories: list[str]
    rule_brands: list[str]
    rule_tags: list[str]
    rule_price_min: float | None
    rule_price_max: float | None
    starts_at: str | None
    ends_at: str | None
    pinned_row: int | None


class CollectionsResponse(BaseModel):
    collections: list[CollectionOut]


class ModelsResponse(BaseModel):
    serving: str = Field(description="The model version serving pages now.")
    available: list[str] = Field(description="Saved versions, any of which POST /v1/models/swap can load.")
    pipelines: list[str] = Field(description="Page pipelines GET /v1/homepage accepts.")


class SwapBody(_Strict):
    version: Annotated[str, Field(pattern=r"^[A-Za-z0-9_.-]{1,80}$")] | None = Field(
        None, description="A version from GET /v1/models; null: the newest (LATEST).")


class SwapResponse(BaseModel):
    serving: str
    previous: str


class Problem(BaseModel):
    """An error: `message` in one line, `detail` as FastAPI gives it (loc, msg, type)."""

    message: str
    detail: Any = None


def event_batch_schema(max_events: int) -> dict[str, Any]:
    """OpenAPI request body of POST /v1/events (inline: the event model has no references)."""
    return {
        "required": True,
        "content": {"application/json": {"schema": {
            "type": "object",
            "title": "EventBatch",
            "properties": {"events": {"type": "array", "items": EventRow.model_json_schema(),
                                      "maxItems": max_events}},
            "required": ["events"],
            "additionalProperties": False,
        }}},
    }
