"""A small stand-in for HomepageEngine, for the tests of HTTP mechanics only (auth, limits,
validation, fallback, metrics). Behaviour tests use the real engine (see conftest.py)."""

from __future__ import annotations

import threading
import time
import uuid

import numpy as np
import pyarrow as pa

from shelfrank.contracts import PageRequest
from shelfrank.page.result import CollectionRow, ItemSlot, Page

ITEMS = tuple(f"i{n}" for n in range(1, 13))


class FakeEngine:
    pipelines = ("default", "popularity")

    def __init__(self, fail: bool = False, delay_s: float = 0.0) -> None:
        self.fail = fail
        self.delay_s = delay_s
        self.model_version = "v1"
        self.versions = ["v1", "v2"]
        self.item_ids = list(ITEMS)
        self.out_of_stock: set[str] = set()
        self.events: list[dict] = []
        self.definitions: dict = {}
        self.loads = 0
        self._lock = threading.RLock()

    # --- pages --------------------------------------------------------------------------

    def _page(self, request: PageRequest, pipeline: str, fallback: bool, reason: str = "") -> Page:
        with self._lock:
            items = [i for i in self.item_ids if i not in self.out_of_stock][: request.items]
            carted = [e["item_id"] for e in self.events if e["event_type"] == "add_to_cart"
                      and e["user_id"] == request.user_id]
        slots = tuple(ItemSlot(item_id=i, position=p, score=1.0 / (p + 1), propensity=1.0, title=i.upper(),
                               signals={"score": np.float64(0.5)}) for p, i in enumerate(items))
        rows = [CollectionRow(collection_id="popular", title="Popular", source="rules", generator="popular",
                              row=0, score=float("nan"), reason="popular now", items=slots)]
        if carted:
            rows.insert(0, CollectionRow(collection_id="because_cart", title="For your cart", source="ml",
                                         generator="cart", row=0, score=2.0, reason=f"you carted {carted[-1]}",
                                         items=slots[:2]))
        return Page(request_id=uuid.uuid4().hex, user_id=request.user_id, at=request.at.isoformat(),
                    surface=request.surface, location=request.location or "", rows=tuple(rows[: request.rows]),
                    model_version=self.model_version, pipeline=pipeline, new_user=request.user_id.startswith("new"),
                    fallback=fallback, fallback_reason=reason, timings_ms={"retrieve": 0.1, "total": 0.2},
                    rule_counts={"out_of_stock": len(self.out_of_stock)})

    def build(self, request: PageRequest, pipeline: str = "default") -> Page:
        if self.delay_s:
            time.sleep(self.delay_s)
        if self.fail:
            raise RuntimeError("ranker exploded")
        return self._page(request, pipeline, False)

    def fallback_page(self, request: PageRequest, reason: str) -> Page:
        return self._page(request, "fallback", True, reason)

    # --- state --------------------------------------------------------------------------

    def known_items(self, ids: np.ndarray) -> np.ndarray:
        known = set(self.item_ids)
        return np.fromiter((i in known for i in ids), dtype=bool, count=len(ids))

    def known_user(self, user_id: str) -> bool:
        return not user_id.startswith("new")

    def apply_events(self, events: pa.Table) -> None:
        with self._lock:
            self.events.extend(events.to_pylist())

    def apply_inventory(self, updates: pa.Table) -> None:
        with self._lock:
            for row in updates.to_pylist():
                if row["in_stock"] is False:
                    self.out_of_stock.add(row["item_id"])
                elif row["in_stock"]:
                    self.out_of_stock.discard(row["item_id"])

    def upsert_items(self, items: pa.Table) -> None:
        with self._lock:
            for item in items.column("item_id").to_pylist():
                if item not in self.item_ids:
                    self.item_ids.append(item)

    def upsert_collection(self, definition) -> None:
        self.definitions[definition.collection_id] = definition

    def delete_collection(self, collection_id: str) -> bool:
        return self.definitions.pop(collection_id, None) is not None

    def collections(self) -> list:
        return list(self.definitions.values())

    def available_model_versions(self) -> list[str]:
        return list(self.versions)

    def load_models(self, version: str | None = None) -> str:
        version = version or self.versions[-1]
        if version == "broken":
            raise RuntimeError("corrupt model file")
        self.loads += 1
        self.model_version = version
        return version
