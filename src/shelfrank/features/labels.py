"""Training labels from the event log: what each impression led to.

The label join (documented in docs/data.md, decided here):

* An *impression* is one `impression` event: an item rendered at (row, position) of a
  collection in one page request. Duplicate impression events of the same slot count once.
* A click, add_to_cart or purchase is credited to the impression with the same
  `request_id`, `item_id`, `row` and `position` (the client logs the slot it acted on).
  Actions without a request_id (e.g. from a product page) train nothing here.
* The label is the **deepest** stage the impression reached (purchase 3 > add_to_cart 2 >
  click 1 > none 0), not the most recent event.
* A collection impression is a (request_id, row, collection_id) with at least one item
  impression; its label is the deepest stage reached by any of its items.
"""

from __future__ import annotations

from datetime import datetime

import duckdb
import pyarrow as pa

_STAGE = "CASE event_type WHEN 'click' THEN 1 WHEN 'add_to_cart' THEN 2 WHEN 'purchase' THEN 3 END"


def _window(start: datetime | None, end: datetime | None) -> tuple[str, list]:
    clauses, params = [], []
    if start is not None:
        clauses.append("ts >= ?")
        params.append(start)
    if end is not None:
        clauses.append("ts < ?")
        params.append(end)
    return (" AND " + " AND ".join(clauses)) if clauses else "", params


def item_impression_labels(
    con: duckdb.DuckDBPyConnection, start: datetime | None = None, end: datetime | None = None
) -> pa.Table:
    """One row per item impression in [start, end) with its deepest funnel stage.

    Columns: request_id, ts, user_id, session_id, item_id, collection_id, row, position,
    surface, location, propensity, stage (int8).
    """
    where, params = _window(start, end)
    sql = f"""
        WITH impressions AS (
            SELECT request_id, item_id, row, position,
                   min(ts) AS ts, any_value(user_id) AS user_id, any_value(session_id) AS session_id,
                   any_value(collection_id) AS collection_id, any_value(surface) AS surface,
                   any_value(location) AS location, any_value(propensity) AS propensity
            FROM events
            WHERE event_type = 'impression' AND request_id IS NOT NULL {where}
            GROUP BY request_id, item_id, row, position
        ), actions AS (
            -- Actions may come after the window's end; they still belong to its impressions.
            SELECT request_id, item_id, row, position, max({_STAGE})::TINYINT AS stage
            FROM events
            WHERE event_type IN ('click', 'add_to_cart', 'purchase') AND request_id IS NOT NULL
            GROUP BY request_id, item_id, row, position
        )
        SELECT i.request_id, i.ts, i.user_id, i.session_id, i.item_id, i.collection_id, i.row, i.position,
               i.surface, i.location, i.propensity, coalesce(a.stage, 0)::TINYINT AS stage
        FROM impressions i
        LEFT JOIN actions a
          ON a.request_id = i.request_id AND a.item_id = i.item_id
         AND a.row IS NOT DISTINCT FROM i.row AND a.position IS NOT DISTINCT FROM i.position
        ORDER BY i.ts, i.request_id, i.row, i.position
    """
    return con.sql(sql, params=params).to_arrow_table()


def collection_impression_labels(
    con: duckdb.DuckDBPyConnection, start: datetime | None = None, end: datetime | None = None
) -> pa.Table:
    """One row per collection impression (request_id, row, collection_id) with its deepest stage
    and the number of its items impressed."""
    con.register("_item_impression_labels", item_impression_labels(con, start, end))
    try:
        return con.sql(
            """
        SELECT request_id, min(ts) AS ts, any_value(user_id) AS user_id, any_value(session_id) AS session_id,
               collection_id, row, any_value(surface) AS surface, any_value(location) AS location,
               count(*) AS n_items, max(stage)::TINYINT AS stage
        FROM _item_impression_labels
        GROUP BY request_id, row, collection_id
        ORDER BY ts, request_id, row
            """
        ).to_arrow_table()
    finally:
        con.unregister("_item_impression_labels")
