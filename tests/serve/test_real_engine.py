"""The service over the real engine and the session's tiny store: the page schema, the
real-time effect of a cart event, out-of-stock obeyed, and a hot swap under load."""

from __future__ import annotations

import threading
from datetime import timedelta

import numpy as np
import pytest
from serve_support import ADMIN_HEADERS, InProcessServer, settings_for, store_end

from shelfrank.contracts import PageRequest
from shelfrank.serve.app import create_app
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.schemas import HomepageResponse
from shelfrank.serve.service import open_engine, start_service


@pytest.fixture(scope="module")
def served(world, tmp_path_factory):
    """One real engine served over HTTP for the module; tests use users of their own."""
    data_dir = tmp_path_factory.mktemp("served") / "data"
    data_dir.mkdir()
    (data_dir / "shelfrank.duckdb").symlink_to(world["database"])
    (data_dir / "models").symlink_to(world["models_dir"], target_is_directory=True)
    at = store_end(world["database"]) + timedelta(hours=1)
    settings = settings_for(data_dir, latency_budget_ms=20_000)  # slow shared CI machines: no fallbacks here
    service = start_service(settings, open_engine, ServiceMetrics())
    server = InProcessServer(create_app(settings, service=service))
    yield {"server": server, "client": server.client, "service": service, "at": at}
    server.stop()


def _page(served, user: str, **params) -> dict:
    r = served["client"].get("/v1/homepage", params={"user_id": user, "at": served["at"].isoformat(), "seed": 1,
                                                     "pipeline": "no_exploration", **params})
    assert r.status_code == 200, r.text
    return r.json()


def _shown(page: dict) -> list[dict]:
    return [slot for row in page["rows"] for slot in row["items"]]


def test_a_real_page_matches_the_schema_and_an_unknown_user_gets_the_new_user_page(served):
    page = HomepageResponse.model_validate(_page(served, "serve-schema-newcomer", rows=5, items=6))
    assert page.new_user and not page.fallback
    assert 1 <= len(page.rows) <= 5 and all(1 <= len(r.items) <= 6 for r in page.rows)
    assert all(0 < s.propensity <= 1 for r in page.rows for s in r.items)
    assert page.model_version == served["service"].engine.model_version
    assert page.timings_ms["total"] > 0


def test_after_an_add_to_cart_the_next_page_reflects_it(served):
    """A newcomer carts an item of a category missing from their page: the next page knows them
    and shows that category."""
    user, session = "serve-cart-newcomer", "serve-cart-session"
    before = _page(served, user, session_id=session)
    assert before["new_user"]
    catalog = served["service"].engine.catalog
    shown_categories = {s["category_id"] for s in _shown(before)}
    sizes = np.bincount(catalog.category[catalog.category >= 0], minlength=len(catalog.category_ids))
    category = next(catalog.category_ids[c] for c in np.argsort(-sizes)
                    if catalog.category_ids[c] not in shown_categories)
    item = catalog.item_ids[catalog.items_in_category(catalog.category_index(category), limit=1)[0]]
    event = {"ts": (served["at"] - timedelta(seconds=20)).isoformat(), "user_id": user, "session_id": session,
             "event_type": "add_to_cart", "item_id": item}
    r = served["client"].post("/v1/events", json={"events": [event]})
    assert r.json()["accepted"] == 1, r.text
    after = _page(served, user, session_id=session)
    assert not after["new_user"]
    assert sum(s["category_id"] == category for s in _shown(after)) > 0, category


def test_items_set_out_of_stock_never_appear_after_the_update_is_acknowledged(served):
    users = ["u000010", "u000011", "serve-stock-newcomer"]
    shown = {s["item_id"] for u in users for s in _shown(_page(served, u))}
    gone = sorted(shown)[: max(1, len(shown) // 2)]
    updates = [{"item_id": i, "ts": served["at"].isoformat(), "in_stock": False} for i in gone]
    r = served["client"].post("/v1/inventory", json={"updates": updates}, headers=ADMIN_HEADERS)
    assert r.status_code == 200 and r.json()["accepted"] == len(gone)
    for user in users:
        for pipeline in ("default", "popularity", "no_exploration"):
            page = _page(served, user, pipeline=pipeline)
            assert not set(gone) & {s["item_id"] for s in _shown(page)}, (user, pipeline)
    # ... the fallback page too
    fallback = served["service"].engine.fallback_page(PageRequest(user_id="u000010", at=served["at"]), "test")
    assert not set(gone) & {s.item_id for r in fallback.rows for s in r.items}


def test_a_hot_swap_under_concurrent_requests_drops_no_request(served):
    client = served["client"]
    version = client.get("/v1/models", headers=ADMIN_HEADERS).json()["serving"]
    statuses: list[int] = []
    fallbacks: list[bool] = []
    stop = threading.Event()

    def load(n: int) -> None:
        import httpx

        with httpx.Client(base_url=served["server"].url, timeout=60) as c:
            k = 0
            while not stop.is_set() or k < 3:
                r = c.get("/v1/homepage", params={"user_id": f"u0000{20 + n}", "at": served["at"].isoformat()})
                statuses.append(r.status_code)
                fallbacks.append(r.status_code == 200 and r.json()["fallback"])
                k += 1

    threads = [threading.Thread(target=load, args=(n,)) for n in range(3)]
    for t in threads:
        t.start()
    swaps = []
    for body in ({"version": version}, {"version": None}, {"version": version}):
        swaps.append(client.post("/v1/models/swap", json=body, headers=ADMIN_HEADERS))
    stop.set()
    for t in threads:
        t.join(timeout=120)
    assert [s.status_code for s in swaps] == [200, 200, 200], [s.text for s in swaps]
    assert statuses and set(statuses) == {200}
    assert not any(fallbacks)
    assert 'shelfrank_model_swaps_total{outcome="ok"} 3.0' in client.get("/metrics").text
