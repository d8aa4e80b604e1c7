"""The intake log: append + fsync, replay, a torn tail, segments, one owner, compaction."""

from __future__ import annotations

import shutil

import duckdb
import pytest

from shelfrank.config import StoreConfig
from shelfrank.serve.changes import Change
from shelfrank.serve.intake import IntakeLockedError, IntakeLog, compact_intake, segment_paths
from shelfrank.serve.validation import event_id
from shelfrank.store.database import Store
from shelfrank.store.ingest import event_id_expression


def _event(n: int, item: str = "i1") -> dict:
    row = {"ts": 1_790_000_000_000_000 + n, "user_id": "u1", "session_id": "s1", "event_type": "click",
           "item_id": item}
    return {**row, "event_id": event_id(row)}


def test_appended_changes_replay_in_order_after_a_reopen(tmp_path):
    with IntakeLog(tmp_path) as log:
        log.append(Change("events", [_event(1)], "main"))
        log.append(Change("inventory", [{"item_id": "i1", "ts": 5, "in_stock": False}], "main"))
    with IntakeLog(tmp_path) as log:
        assert [c.kind for c in log.replay()] == ["events", "inventory"]


def test_a_torn_last_line_is_dropped_and_appends_continue_after_it(tmp_path):
    with IntakeLog(tmp_path) as log:
        log.append(Change("events", [_event(1)], "main"))
    segment = segment_paths(tmp_path)[0]
    with segment.open("ab") as fh:
        fh.write(b'{"kind": "events", "rows": [{"event_')  # the crash came mid-write: never acknowledged
    with IntakeLog(tmp_path) as log:
        assert len(list(log.replay())) == 1
        log.append(Change("events", [_event(2)], "main"))
        assert [c.rows[0]["ts"] for c in log.replay()] == [_event(1)["ts"], _event(2)["ts"]]


def test_segments_roll_over_at_the_configured_size(tmp_path):
    with IntakeLog(tmp_path, segment_bytes=4_096) as log:
        for n in range(60):
            log.append(Change("events", [_event(n)], "main"))
        assert len(segment_paths(tmp_path)) > 1
        assert len(list(log.replay())) == 60


def test_one_process_owns_a_log(tmp_path):
    with IntakeLog(tmp_path), pytest.raises(IntakeLockedError, match="replica_id"):
        IntakeLog(tmp_path)


def test_the_derived_event_id_is_the_one_ingest_derives():
    con = duckdb.connect()
    rows = con.execute(f"""SELECT {event_id_expression()} FROM (
        SELECT TIMESTAMPTZ '2026-10-03 10:00:00.123456+00' AS ts, 'u1' AS user_id,
        's1' AS session_id, 'click' AS event_type, 'i1' AS item_id, NULL AS collection_id,
        NULL AS request_id, 2 AS "row", 3 AS position, NULL AS query)""").fetchall()
    ours = event_id({"ts": 1_791_021_600_123_456, "user_id": "u1", "session_id": "s1", "event_type": "click",
                     "item_id": "i1", "row": 2, "position": 3})
    assert rows[0][0] == ours


def test_compaction_moves_the_log_into_the_store_once(world, tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data", memory_limit="1GB", threads=1)
    config.data_dir.mkdir()
    shutil.copyfile(world["database"], config.database_path)
    with Store.open(config) as store:
        before = store.count("events")
        item = store.con.execute("SELECT min(item_id) FROM items").fetchone()[0]
    intake = tmp_path / "intake"
    with IntakeLog(intake) as log:
        log.append(Change("events", [_event(1, item), _event(2, item)], "main"))
        log.append(Change("collection", [{"collection_id": "cur:compacted", "title": "Compacted", "source": "curated",
                                          "item_ids": [item]}], "main"))
        log.append(Change("events", [_event(2, item)], "main"))  # a retry: same event_id
    with Store.open(config) as store:
        report = compact_intake(store, intake)
        assert report.accepted["events"] == 2 and store.count("events") == before + 2
        assert store.con.execute("SELECT title FROM collections WHERE collection_id = 'cur:compacted'").fetchall()
        assert segment_paths(intake) == [] and len(list((intake / "compacted").iterdir())) == 1
        again = compact_intake(store, intake)
        assert again.segments == 0 and store.count("events") == before + 2
