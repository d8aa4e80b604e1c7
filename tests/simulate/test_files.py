"""The simulator's files follow the public contracts and are reproducible."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pyarrow.parquet as pq
from simulated_store import SEED, TinyStore

from shelfrank.contracts import CONTRACTS
from shelfrank.simulate import SCALES, simulate

KINDS = ("categories", "items", "users", "collections", "inventory")


def test_every_file_has_its_contract_schema(tiny: TinyStore) -> None:
    for kind in KINDS:
        assert pq.read_schema(tiny.path / f"{kind}.parquet") == CONTRACTS[kind].arrow_schema, kind
    parts = sorted((tiny.path / "events").glob("part-*.parquet"))
    assert parts
    for part in parts:
        assert pq.read_schema(part) == CONTRACTS["events"].arrow_schema, part.name


def test_ids_referenced_by_events_exist(tiny: TinyStore) -> None:
    q = tiny.con.execute
    assert q("SELECT count(*) FROM events WHERE item_id IS NOT NULL "
             "AND item_id NOT IN (SELECT item_id FROM items)").fetchone()[0] == 0
    assert q("SELECT count(*) FROM events WHERE collection_id IS NOT NULL "
             "AND collection_id NOT IN (SELECT collection_id FROM collections)").fetchone()[0] == 0
    assert q("SELECT count(*) FROM events WHERE user_id NOT IN (SELECT user_id FROM users)").fetchone()[0] == 0
    assert q("SELECT count(*) FROM inventory WHERE item_id NOT IN (SELECT item_id FROM items)").fetchone()[0] == 0
    assert q("SELECT count(*) - count(DISTINCT event_id) FROM events").fetchone()[0] == 0


def test_event_fields_follow_the_event_type(tiny: TinyStore) -> None:
    q = tiny.con.execute
    bad_item = q("SELECT count(*) FROM events WHERE event_type <> 'search' AND (item_id IS NULL OR "
                 "request_id IS NULL OR row IS NULL OR position IS NULL OR propensity IS NULL)").fetchone()[0]
    assert bad_item == 0
    assert q("SELECT count(*) FROM events WHERE event_type = 'search' "
             "AND (query IS NULL OR item_id IS NOT NULL)").fetchone()[0] == 0
    assert q("SELECT count(*) FROM events WHERE event_type = 'purchase' "
             "AND (quantity IS NULL OR quantity < 1 OR price <= 0)").fetchone()[0] == 0
    assert q("SELECT count(*) FROM events WHERE surface IS NULL OR location IS NULL").fetchone()[0] == 0
    assert q("SELECT min(propensity) > 0 AND max(propensity) <= 1 FROM events").fetchone()[0]
    start, end = q("SELECT min(ts), max(ts) FROM events").fetchone()
    spec = SCALES["tiny"]
    assert start >= spec.start and (end - spec.start).total_seconds() < spec.period_seconds


def test_categories_form_a_three_level_tree_under_the_verticals(tiny: TinyStore) -> None:
    q = tiny.con.execute
    assert q("SELECT list(DISTINCT level ORDER BY level) FROM categories").fetchone()[0] == [0, 1, 2]
    assert q("SELECT count(*) FROM categories WHERE level = 0").fetchone()[0] == SCALES["tiny"].n_verticals
    orphans = q("SELECT count(*) FROM categories c LEFT JOIN categories p ON c.parent_id = p.category_id "
                "WHERE c.level > 0 AND (p.category_id IS NULL OR p.level <> c.level - 1)").fetchone()[0]
    assert orphans == 0
    assert q("SELECT count(*) FROM items i JOIN categories c USING (category_id) "
             "WHERE c.level = 2").fetchone()[0] == SCALES["tiny"].n_items


def test_collections_in_events_are_defined_with_their_rules(tiny: TinyStore) -> None:
    rows = tiny.con.execute("SELECT collection_id, source, item_ids, rule_categories, rule_brands FROM collections "
                            "WHERE collection_id IN (SELECT DISTINCT collection_id FROM events)").fetchall()
    kinds = {cid.split(":")[0] for cid, *_ in rows}
    assert kinds == {"cur", "cat", "brand"}
    for cid, source, item_ids, rule_categories, rule_brands in rows:
        if cid.startswith("cat:"):
            assert source == "rules" and rule_categories == [cid[4:]]
        elif cid.startswith("brand:"):
            assert source == "rules" and rule_brands
        else:
            assert source == "curated" and item_ids or cid == "cur:new-arrivals"


def _digests(path: Path) -> dict[str, str]:
    return {str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(path.rglob("*")) if p.is_file()}


def test_same_seed_gives_identical_bytes_and_another_seed_differs(tiny: TinyStore, tmp_path: Path) -> None:
    again = simulate("tiny", SEED, tmp_path / "again")
    assert again.counts == tiny.summary.counts
    assert _digests(tmp_path / "again") == _digests(tiny.path)
    other = _digests(simulate("tiny", SEED + 1, tmp_path / "other").out_dir)
    mine = _digests(tiny.path)
    for name in ("items.parquet", "users.parquet", "events/part-00000.parquet"):
        assert other[name] != mine[name], name


def test_event_parts_hold_at_most_the_configured_rows(tmp_path: Path) -> None:
    spec = SCALES["tiny"].with_(n_users=200, rows_per_event_part=20_000, name="tiny-parts")
    summary = simulate(spec, 3, tmp_path)
    parts = sorted((tmp_path / "events").glob("part-*.parquet"))
    sizes = [pq.read_metadata(p).num_rows for p in parts]
    assert len(parts) > 1 and max(sizes) <= 20_000
    assert sum(sizes) == summary.counts["events"]
