"""One transaction per file: a failure at any step leaves the store exactly as it was."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pyarrow as pa
import pyarrow.compute
import pyarrow.parquet as pq
import pytest
from store_files import ITEM_ROWS, event, write_csv

from shelfrank.config import StoreConfig
from shelfrank.contracts import EVENTS
from shelfrank.store import ingest
from shelfrank.store.database import Store
from shelfrank.store.ingest import ingest_file


def snapshot(store: Store) -> dict[str, list]:
    return {t: store.con.execute(f"SELECT * FROM {t} ORDER BY ALL").fetchall() for t in store.table_names}


@pytest.mark.parametrize("error", [RuntimeError("disk on fire"), KeyboardInterrupt()])
@pytest.mark.parametrize("step", ["_insert_events", "_write_rejects"])
def test_failure_after_rows_were_inserted_rolls_back_everything(store_with_items, tmp_path, monkeypatch, error, step):
    before = snapshot(store_with_items)
    original = getattr(ingest, step)

    def insert_then_fail(*args, **kwargs):
        original(*args, **kwargs)
        assert store_with_items.count("events") > 0 or step == "_write_rejects"
        raise error

    monkeypatch.setattr(ingest, step, insert_then_fail)
    rows = [event(seconds=1), event(seconds=2), event(position=-1)]
    with pytest.raises(type(error)):
        ingest_file(store_with_items, write_csv(tmp_path / "in" / "events.csv", rows))

    assert snapshot(store_with_items) == before
    assert list(store_with_items.config.rejects_dir.glob("*")) == []  # no rejects file, not even a partial one
    monkeypatch.undo()
    # The store still works, and the same file now goes in.
    assert ingest_file(store_with_items, tmp_path / "in" / "events.csv").accepted == 2


def test_failure_after_items_were_updated_keeps_the_old_items(store_with_items, tmp_path, monkeypatch):
    before = snapshot(store_with_items)
    original = ingest._apply_inventory

    def apply_then_fail(con):
        original(con)
        assert con.execute("SELECT price FROM items WHERE item_id = 'i1'").fetchone() == (9.0,)
        raise RuntimeError("boom")

    monkeypatch.setattr(ingest, "_apply_inventory", apply_then_fail)
    rows = [{"item_id": "i1", "ts": "2026-01-03T00:00:00Z", "quantity": 0, "price": 9.0}]
    with pytest.raises(RuntimeError):
        ingest_file(store_with_items, write_csv(tmp_path / "in" / "inventory.csv", rows))
    assert snapshot(store_with_items) == before


KILLED_INGEST = textwrap.dedent(
    """
    import sys
    from pathlib import Path
    from shelfrank.config import StoreConfig
    from shelfrank.store import ingest
    from shelfrank.store.database import Store

    original = ingest._insert_events

    def insert_then_wait(*args, **kwargs):
        n = original(*args, **kwargs)
        print("inserted", n, flush=True)  # the rows are in the open transaction now
        sys.stdin.readline()  # the parent kills us here
        return n

    ingest._insert_events = insert_then_wait
    with Store.open(StoreConfig(data_dir=Path(sys.argv[1]), memory_limit="1GB")) as store:
        ingest.ingest_file(store, Path(sys.argv[2]))
    """
)


def test_sigkill_mid_ingest_leaves_the_store_as_before(tmp_path):
    config = StoreConfig(data_dir=tmp_path / "data")
    with Store.open(config) as store:
        ingest_file(store, write_csv(tmp_path / "items.csv", ITEM_ROWS))
        before = snapshot(store)
    # More than one DuckDB row group (122,880 rows): uncommitted full row groups are written to the
    # database file itself before commit, which is the case worth killing.
    n = 130_000
    table = pa.table({
        "ts": pa.array(np.full(n, np.datetime64("2026-01-02T10:00:00", "us"))).cast(EVENTS.field("ts").arrow_type),
        "user_id": pa.compute.binary_join_element_wise("u", pa.array(np.arange(n)).cast(pa.string()), ""),
        "session_id": pa.array(["s"] * n),
        "event_type": pa.array(["impression"] * n), "item_id": pa.array(["i1"] * n),
        "position": pa.array(np.arange(n)),
    })
    events = tmp_path / "events.parquet"
    pq.write_table(table, events)

    child = subprocess.Popen([sys.executable, "-c", KILLED_INGEST, str(config.data_dir), str(events)],
                             stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        line = child.stdout.readline()
        assert line.startswith(f"inserted {n}"), line or child.stderr.read()
        os.kill(child.pid, signal.SIGKILL)
        child.wait(timeout=30)
    finally:
        if child.poll() is None:
            child.kill()
    for _ in range(50):  # the lock goes with the process
        try:
            with Store.open(config) as store:
                assert snapshot(store) == before
                # And the store takes data again.
                assert ingest_file(store, write_csv(tmp_path / "events.csv", [event()])).accepted == 1
            break
        except Exception as exc:  # noqa: BLE001
            if "locked" not in str(exc):
                raise
            time.sleep(0.1)
    else:
        pytest.fail("the store stayed locked after the process was killed")
