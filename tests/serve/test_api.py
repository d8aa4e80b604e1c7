"""HTTP mechanics over a fake engine: the response schema, auth, bad input, limits, fallback,
model swaps, health and metrics. Behaviour over the real engine: test_real_engine.py."""

from __future__ import annotations

import time

import pytest
from fakes import FakeEngine
from serve_support import ADMIN_HEADERS

from shelfrank.serve.schemas import HomepageResponse

pytestmark = pytest.mark.filterwarnings("ignore::DeprecationWarning")

EVENT = {"ts": "2026-10-05T12:00:00Z", "user_id": "u1", "session_id": "s1", "event_type": "add_to_cart",
         "item_id": "i3"}


def test_the_homepage_matches_the_documented_schema(fake_client):
    client, _ = fake_client()
    r = client.get("/v1/homepage", params={"user_id": "u1", "rows": 3, "items": 4, "at": "2026-10-05T12:00:00Z"})
    assert r.status_code == 200
    page = HomepageResponse.model_validate(r.json())
    assert page.request_id and page.model_version == "v1" and not page.fallback
    assert page.rows[0].items[0].propensity == 1.0
    assert len(page.rows[0].items) == 4
    assert page.rows[0].score is None  # NaN is written as null, never as invalid JSON
    assert page.timings_ms["total"] > 0 and page.replica == "main"


def test_an_unknown_user_gets_the_new_user_page(fake_client):
    client, _ = fake_client()
    assert client.get("/v1/homepage", params={"user_id": "new-visitor"}).json()["new_user"] is True


def test_bad_homepage_queries_are_422_naming_the_parameter(fake_client):
    client, _ = fake_client()
    for params, field in [({"user_id": "u1", "rows": 0}, "rows"), ({"user_id": "u1", "items": "many"}, "items"),
                          ({}, "user_id"), ({"user_id": "u1", "bogus": "1"}, "bogus"),
                          ({"user_id": "../etc/passwd"}, "user_id"), ({"user_id": "u1", "at": "yesterday"}, "at")]:
        r = client.get("/v1/homepage", params=params)
        assert r.status_code == 422, params
        assert r.json()["detail"][0]["loc"][-1] == field
        assert field in r.json()["message"]
    r = client.get("/v1/homepage", params={"user_id": "u1", "pipeline": "fastest"})
    assert r.status_code == 422 and "default, popularity" in r.json()["message"]


def test_valid_events_are_kept_and_invalid_ones_reported_one_by_one(fake_client):
    client, engine = fake_client()
    bad = [{**EVENT, "event_type": "like"}, {**EVENT, "item_id": "i999"}, {**EVENT, "colour": "red"},
           {k: v for k, v in EVENT.items() if k != "item_id"}, {**EVENT, "propensity": 0}]
    batch = [EVENT, *bad, {**EVENT, "ts": "2026-10-05T12:00:01Z", "event_type": "search", "item_id": None,
                           "query": "milk"}]
    r = client.post("/v1/events", json={"events": batch})
    assert r.status_code == 200
    body = r.json()
    assert (body["accepted"], body["rejected"], body["duplicates"]) == (2, 5, 0)
    assert [(e["index"], e["field"]) for e in body["errors"]] == [
        (1, "event_type"), (2, "item_id"), (3, "colour"), (4, "item_id"), (5, "propensity")]
    assert "not in items" in body["errors"][1]["reason"]
    assert "required when event_type is" in body["errors"][3]["reason"]
    assert [e["event_type"] for e in engine.events] == ["add_to_cart", "search"]
    again = client.post("/v1/events", json={"events": [EVENT]}).json()
    assert (again["accepted"], again["duplicates"]) == (0, 1)  # same event_id: not applied twice


def test_an_event_batch_must_be_an_object_with_events(fake_client):
    client, _ = fake_client()
    for body in (b"[1, 2]", b"not json", b'{"events": 3}', b'{"events": [], "extra": 1}'):
        r = client.post("/v1/events", content=body, headers={"content-type": "application/json"})
        assert r.status_code == 422, body
        assert r.json()["message"]


def test_too_large_bodies_and_batches_are_413(fake_client):
    client, _ = fake_client(max_batch_events=3, max_body_bytes=4_096)
    r = client.post("/v1/events", json={"events": [EVENT] * 4})
    assert r.status_code == 413 and "max_batch_events=3" in r.json()["message"]
    r = client.post("/v1/events", json={"events": [{**EVENT, "query": "x" * 5_000}]})
    assert r.status_code == 413 and "max_body_bytes=4096" in r.json()["message"]


def test_write_endpoints_need_the_admin_token(fake_client):
    client, _ = fake_client()
    calls = [("put", "/v1/items", {"items": []}), ("post", "/v1/inventory", {"updates": []}),
             ("get", "/v1/collections", None), ("put", "/v1/collections/c1", {"title": "T", "item_ids": ["i1"]}),
             ("delete", "/v1/collections/c1", None), ("get", "/v1/models", None),
             ("post", "/v1/models/swap", {"version": "v2"})]
    for method, path, body in calls:
        kwargs = {"json": body} if body is not None else {}
        assert client.request(method, path, **kwargs).status_code == 401, path
        wrong = client.request(method, path, headers={"X-Admin-Token": "x" * 20}, **kwargs)
        assert wrong.status_code == 401, path
    open_client, _ = fake_client(admin_token=None)
    r = open_client.get("/v1/models", headers=ADMIN_HEADERS)
    assert r.status_code == 403 and "serve.admin_token" in r.json()["message"]


def test_events_need_the_client_key_when_one_is_configured(fake_client):
    client, _ = fake_client(client_key="store-frontend")
    assert client.post("/v1/events", json={"events": [EVENT]}).status_code == 401
    r = client.post("/v1/events", json={"events": [EVENT]}, headers={"X-Client-Key": "store-frontend"})
    assert r.status_code == 200 and r.json()["accepted"] == 1


def test_inventory_items_and_collections_take_effect_and_are_checked(fake_client):
    client, engine = fake_client()
    r = client.post("/v1/inventory", headers=ADMIN_HEADERS,
                    json={"updates": [{"item_id": "i1", "ts": "2026-10-05T12:00:00Z", "in_stock": False}]})
    assert r.status_code == 200
    page = client.get("/v1/homepage", params={"user_id": "u1"}).json()
    assert "i1" not in {s["item_id"] for row in page["rows"] for s in row["items"]}
    r = client.post("/v1/inventory", headers=ADMIN_HEADERS,
                    json={"updates": [{"item_id": "nope", "ts": "2026-10-05T12:00:00Z", "in_stock": False},
                                      {"item_id": "i2", "ts": "2026-10-05T12:00:00Z"}]})
    assert r.status_code == 422
    assert [d["loc"] for d in r.json()["detail"]] == [["body", "updates", 0, "item_id"], ["body", "updates", 1]]
    r = client.put("/v1/items", headers=ADMIN_HEADERS, json={"items": [{"item_id": "i1", "title": "Milk"}]})
    assert r.status_code == 422 and {d["loc"][-1] for d in r.json()["detail"]} >= {"price", "created_at"}
    r = client.put("/v1/collections/summer-sale", headers=ADMIN_HEADERS,
                   json={"title": "Summer sale", "item_ids": ["i1", "i2"], "pinned_row": 0})
    assert r.status_code == 200 and r.json()["source"] == "curated"
    assert engine.definitions["summer-sale"].item_ids == ("i1", "i2")
    r = client.put("/v1/collections/empty", headers=ADMIN_HEADERS, json={"title": "Nothing"})
    assert r.status_code == 422 and "a collection needs explicit items or a rule" in r.json()["message"]
    r = client.put("/v1/collections/bad%2Fid", headers=ADMIN_HEADERS, json={"title": "T", "item_ids": ["i1"]})
    assert r.status_code in (404, 422)
    listed = client.get("/v1/collections", headers=ADMIN_HEADERS).json()["collections"]
    assert [c["collection_id"] for c in listed] == ["summer-sale"]
    assert client.delete("/v1/collections/summer-sale", headers=ADMIN_HEADERS).status_code == 204
    assert client.delete("/v1/collections/summer-sale", headers=ADMIN_HEADERS).status_code == 404


def test_a_failing_build_serves_the_fallback_page_and_counts_it(fake_client):
    client, _ = fake_client(FakeEngine(fail=True))
    r = client.get("/v1/homepage", params={"user_id": "u1"})
    assert r.status_code == 200
    page = r.json()
    assert page["fallback"] is True and "ranker exploded" in page["fallback_reason"] and page["rows"]
    assert 'shelfrank_fallback_pages_total{reason="error"} 1.0' in client.get("/metrics").text


def test_a_page_over_the_latency_budget_is_replaced_by_the_fallback(fake_client):
    client, _ = fake_client(FakeEngine(delay_s=0.3), latency_budget_ms=50)
    began = time.perf_counter()
    page = client.get("/v1/homepage", params={"user_id": "u1"}).json()
    assert time.perf_counter() - began < 0.25
    assert page["fallback"] is True and "latency budget" in page["fallback_reason"]


def test_model_versions_are_listed_and_swapped_and_a_failed_load_keeps_the_old(fake_client):
    engine = FakeEngine()
    engine.versions.append("broken")
    client, _ = fake_client(engine)
    models = client.get("/v1/models", headers=ADMIN_HEADERS).json()
    assert models == {"serving": "v1", "available": ["v1", "v2", "broken"], "pipelines": ["default", "popularity"]}
    r = client.post("/v1/models/swap", headers=ADMIN_HEADERS, json={"version": "v2"})
    assert r.json() == {"serving": "v2", "previous": "v1"}
    r = client.post("/v1/models/swap", headers=ADMIN_HEADERS, json={"version": "broken"})
    assert r.status_code == 409 and "still serving v2" in r.json()["message"]
    assert client.get("/v1/homepage", params={"user_id": "u1"}).json()["model_version"] == "v2"
    for version in ("v9", "../../models", "/etc/passwd"):
        r = client.post("/v1/models/swap", headers=ADMIN_HEADERS, json={"version": version})
        assert r.status_code == 422, version
    assert engine.loads == 1  # nothing outside the listed versions ever reached the loader


def test_health_readiness_and_metrics(fake_client):
    client, _ = fake_client()
    assert client.get("/healthz").json() == {"status": "ok"}
    assert client.get("/readyz").json()["status"] == "ready"
    client.get("/v1/homepage", params={"user_id": "u1"})
    client.post("/v1/events", json={"events": [EVENT, {"ts": "never"}]})
    text = client.get("/metrics").text
    for line in ('shelfrank_http_requests_total{endpoint="/v1/homepage",method="GET",status="200"} 1.0',
                 'shelfrank_events_total{outcome="accepted"} 1.0', 'shelfrank_events_total{outcome="rejected"} 1.0',
                 'shelfrank_model_info{version="v1"} 1.0', 'shelfrank_page_stage_seconds_count{stage="retrieve"} 1.0',
                 'shelfrank_rule_actions_total', 'shelfrank_pages_total{fallback="false",pipeline="default"} 1.0',
                 'shelfrank_http_request_seconds_bucket{endpoint="/v1/homepage"'):
        assert line in text, line


def test_not_ready_until_the_engine_is_built(tmp_path):
    import threading

    from serve_support import TestClient, settings_for

    from shelfrank.serve.app import create_app
    from shelfrank.serve.service import EngineSource

    release = threading.Event()

    def slow_factory(settings):
        release.wait(10)
        return EngineSource(FakeEngine())

    with TestClient(create_app(settings_for(tmp_path), engine_factory=slow_factory)) as client:
        assert client.get("/readyz").status_code == 503
        r = client.get("/v1/homepage", params={"user_id": "u1"})
        assert r.status_code == 503 and "starting" in r.json()["message"]
        assert client.get("/healthz").status_code == 200
        release.set()
        from serve_support import wait_ready

        wait_ready(client)
        assert client.get("/v1/homepage", params={"user_id": "u1"}).status_code == 200
