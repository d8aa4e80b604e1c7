"""Two replicas (separate engines) sharing one real redis-server: a write accepted by one is
obeyed by the other on its next page (read-your-writes across replicas)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import timedelta

import pytest
from serve_support import ADMIN_HEADERS, InProcessServer, settings_for, store_end

from shelfrank.serve.app import create_app
from shelfrank.serve.changes import Change
from shelfrank.serve.metrics import ServiceMetrics
from shelfrank.serve.replication import RedisChangeFeed
from shelfrank.serve.service import open_engine, start_service


@pytest.fixture(scope="module")
def replicas(world, redis_url, tmp_path_factory):
    world_dir = tmp_path_factory.mktemp("replicas") / "data"
    world_dir.mkdir()
    (world_dir / "shelfrank.duckdb").symlink_to(world["database"])
    (world_dir / "models").symlink_to(world["models_dir"], target_is_directory=True)
    at = store_end(world["database"]) + timedelta(hours=1)

    def start(replica_id: str):
        settings = settings_for(world_dir, redis_url=redis_url, replica_id=replica_id, latency_budget_ms=20_000)
        service = start_service(settings, open_engine, ServiceMetrics())
        return InProcessServer(create_app(settings, service=service))

    with ThreadPoolExecutor(2) as pool:
        a, b = pool.map(start, ["replica-a", "replica-b"])
    yield a, b, at
    a.stop()
    b.stop()


def _page(server, user: str, at) -> dict:
    r = server.client.get("/v1/homepage", params={"user_id": user, "at": at.isoformat(), "seed": 5})
    assert r.status_code == 200, r.text
    return r.json()


def _shown(page: dict) -> set[str]:
    return {s["item_id"] for row in page["rows"] for s in row["items"]}


def test_an_event_sent_to_one_replica_changes_the_page_of_the_other(replicas):
    a, b, at = replicas
    user = "serve-redis-newcomer"
    assert _page(b, user, at)["new_user"] is True
    item = sorted(_shown(_page(a, "u000040", at)))[0]
    event = {"ts": (at - timedelta(minutes=1)).isoformat(), "user_id": user, "session_id": "s-redis",
             "event_type": "add_to_cart", "item_id": item}
    assert a.client.post("/v1/events", json={"events": [event]}).json()["accepted"] == 1
    page = _page(b, user, at)
    assert page["new_user"] is False and page["replica"] == "replica-b"


def test_an_out_of_stock_update_on_one_replica_is_obeyed_by_both(replicas):
    a, b, at = replicas
    users = ("u000041", "u000042")
    gone = sorted(_shown(_page(b, users[0], at)) | _shown(_page(b, users[1], at)))[:10]
    r = a.client.post("/v1/inventory", headers=ADMIN_HEADERS,
                      json={"updates": [{"item_id": i, "ts": at.isoformat(), "in_stock": False} for i in gone]})
    assert r.status_code == 200
    for server in (a, b):
        for user in users:
            assert not set(gone) & _shown(_page(server, user, at)), server.url
    assert 'shelfrank_state_changes_total{kind="inventory",origin="replica"} 1.0' in b.client.get("/metrics").text


def test_a_replica_skips_its_own_entries_and_reads_the_others_from_the_start(redis_url):
    one = RedisChangeFeed(redis_url, "one", stream="test:feed")
    two = RedisChangeFeed(redis_url, "two", stream="test:feed")
    one.publish(Change("events", [{"event_id": "e1"}], "one"))
    two.publish(Change("inventory", [{"item_id": "i1"}], "two"))
    assert [c.kind for c in one.pull()] == ["inventory"]
    assert [c.kind for c in two.pull()] == ["events"]
    assert one.pull() == [] and two.pull() == []
    late = RedisChangeFeed(redis_url, "three", stream="test:feed")
    assert [c.kind for c in late.pull()] == ["events", "inventory"]
    for feed in (one, two, late):
        feed.close()
