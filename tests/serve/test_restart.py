"""Durable intake: a server killed (SIGKILL) right after answering 2xx loses nothing."""

from __future__ import annotations

from datetime import timedelta

from serve_support import ADMIN_HEADERS, store_end

from shelfrank.serve.changes import Change
from shelfrank.serve.intake import read_segment, segment_paths


def test_events_and_stock_acknowledged_before_a_kill_survive_the_restart(world, world_dir, start_server):
    at = store_end(world["database"]) + timedelta(hours=1)
    server = start_server(world_dir)
    server.wait_ready()
    user = "serve-restart-newcomer"
    params = {"user_id": user, "at": at.isoformat(), "seed": 3}
    assert server.client.get("/v1/homepage", params=params).json()["new_user"] is True
    page = server.client.get("/v1/homepage", params={**params, "user_id": "u000030"}).json()
    item = page["rows"][0]["items"][0]["item_id"]
    event = {"ts": (at - timedelta(minutes=1)).isoformat(), "user_id": user, "session_id": "s-restart",
             "event_type": "add_to_cart", "item_id": item, "event_id": "restart-cart-1"}
    r = server.client.post("/v1/events", json={"events": [event]})
    assert r.status_code == 200 and r.json()["accepted"] == 1
    r = server.client.post("/v1/inventory", headers=ADMIN_HEADERS,
                           json={"updates": [{"item_id": item, "ts": at.isoformat(), "in_stock": False}]})
    assert r.status_code == 200
    server.kill()  # right after the 2xx: no shutdown hook, no flush

    logged = [c for p in segment_paths(world_dir / "intake" / "main") for c in read_segment(p)]
    assert [c.kind for c in logged] == ["events", "inventory"]
    assert logged[0].rows[0]["event_id"] == "restart-cart-1"

    again = start_server(world_dir)
    ready = again.wait_ready()
    assert ready["startup"]["intake_changes"] == 2
    assert ready["startup"]["replay_seconds"] < 5
    after = again.client.get("/v1/homepage", params=params).json()
    assert after["new_user"] is False  # the cart event is in the online state again
    for user_id in (user, "u000030"):
        shown = {s["item_id"] for row in again.client.get("/v1/homepage", params={**params, "user_id": user_id})
                 .json()["rows"] for s in row["items"]}
        assert item not in shown
    # The same event sent again (a client retry) is recognised, not applied twice.
    r = again.client.post("/v1/events", json={"events": [event]})
    assert (r.json()["accepted"], r.json()["duplicates"]) == (0, 1)


def test_change_lines_round_trip():
    change = Change("events", [{"event_id": "e1", "ts": 1}], "main")
    assert Change.from_json(change.to_json()) == change
