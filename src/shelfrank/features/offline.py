"""Point-in-time features for training sets: DuckDB SQL over the event log.

For an example (user_id, item_id, ts) every counter is read from events *strictly before* ts.
How: per stream (user, item, user x category, ...) the events are grouped by (key, time) and
turned into running sums with a window ordered by time; each example then takes the last
running row before its ts with an ASOF JOIN (``ex.t > k.t``). A decayed sum is kept in SQL as
``sum(w * exp((t_i - t0) / tau))`` and read at ts as that times ``exp(-(ts - t0) / tau)``,
which equals ``sum(w * exp(-(ts - t_i) / tau))``; t0 is the middle of the data's time span so
the exponents stay far from overflow (see ``MAX_EXPONENT``).

The SQL only reads inputs; the formulas in ``definitions.py`` turn them into features, the same
code the online state uses.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import duckdb
import numpy as np
import pyarrow as pa

from shelfrank.features.definitions import (
    ATTRIBUTE_INPUTS,
    ITEM_VECTOR,
    STREAM_KEYS,
    Counter,
    FeatureSpace,
    ItemVectors,
    TasteVector,
    Vocabularies,
)

# exp() of a double overflows past ~709; stay well inside so sums of many terms are safe too.
MAX_EXPONENT = 600.0
CONTEXT_COLUMNS = ("surface", "location", "session_id", "collection_id")
_T = "epoch_us({col}) / 1000000.0"  # seconds since the epoch as DOUBLE; online uses the same arithmetic


def fit_vocabularies(con: duckdb.DuckDBPyConnection) -> Vocabularies:
    """Categorical values seen in the data (events and profiles), for stable codes."""
    queries = {
        "surface": "SELECT DISTINCT surface AS v FROM events",
        "location": "SELECT DISTINCT location AS v FROM events UNION SELECT DISTINCT location FROM users",
        "subscription": "SELECT DISTINCT subscription AS v FROM users",
    }
    values = {}
    for name, sql in queries.items():
        rows = con.execute(f"SELECT v FROM ({sql}) WHERE v IS NOT NULL AND v <> '' ORDER BY v").fetchall()
        values[name] = tuple(r[0] for r in rows)
    return Vocabularies(values)


class OfflineFeatures:
    """Computes the feature matrix of many examples at their own time, from a DuckDB store.

    >>> table = OfflineFeatures(store.con, space).compute(examples)  # doctest: +SKIP

    ``examples`` holds user_id, item_id, ts and optionally surface, location, session_id and
    collection_id (the collection the item is shown in).
    The result holds user_id, item_id, ts, then one float64 column per feature in the order
    of ``space.features``, one row per example in the input order.
    """

    def __init__(self, con: duckdb.DuckDBPyConnection, space: FeatureSpace | None = None) -> None:
        self.con = con
        self.space = space or FeatureSpace()

    def compute(self, examples: pa.Table) -> pa.Table:
        inputs = self.inputs(examples)
        matrix = self.space.matrix(inputs)
        columns = [examples.column(c) for c in ("user_id", "item_id", "ts")]
        names = ["user_id", "item_id", "ts"]
        for j, name in enumerate(self.space.names):
            columns.append(pa.array(matrix[:, j], type=pa.float64()))
            names.append(name)
        return pa.Table.from_arrays(columns, names=names)

    def inputs(self, examples: pa.Table) -> dict[str, np.ndarray]:
        """Every input the features read, at each example's time: counters and attributes."""
        missing = {"user_id", "item_id", "ts"} - set(examples.column_names)
        if missing:
            raise ValueError(f"examples lack the column(s) {sorted(missing)}; they need user_id, item_id, ts")
        con = self.con
        n = examples.num_rows
        self._load_examples(examples)
        t0 = self._time_anchor()
        self._load_examination_curve()
        rows, positions = self._curve_shape
        con.execute(_EVENT_VIEW.format(t=_T.format(col="e.ts"), max_row=rows - 1, max_position=positions - 1))
        inputs: dict[str, np.ndarray] = {}
        for stream, counters in self.space.counters.items():
            inputs.update(self._read_stream(stream, counters, t0, n))
        inputs.update(self._read_attributes(n))
        if self.space.tastes:
            inputs.update(self._read_tastes(n))
        con.execute("DROP TABLE IF EXISTS _sr_ev")
        con.execute("DROP TABLE IF EXISTS _sr_ex")
        con.execute("DROP TABLE IF EXISTS _sr_users")
        return inputs

    # --- steps ---------------------------------------------------------------------------

    def _load_examples(self, examples: pa.Table) -> None:
        ex = examples.append_column("_row", pa.array(np.arange(examples.num_rows, dtype=np.int64)))
        for col in CONTEXT_COLUMNS:
            if col not in ex.column_names:
                ex = ex.append_column(col, pa.nulls(ex.num_rows, pa.string()))
        self.con.register("_sr_examples_in", ex)
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sr_ex AS
            SELECT x._row, x.user_id, x.item_id, {_T.format(col='x.ts')} AS t,
                   x.surface, x.location, x.session_id, x.collection_id,
                   i.vertical, i.category_id, i.brand, i.rowid AS _ik
            FROM _sr_examples_in x LEFT JOIN items i ON i.item_id = x.item_id
        """)
        self.con.unregister("_sr_examples_in")
        # Users are keyed by an integer too, and only the examples' users get one: the events of
        # other users count for items and collections, never for a user-keyed stream.
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _sr_users AS
            SELECT user_id, row_number() OVER () AS _uk FROM (SELECT DISTINCT user_id FROM _sr_ex)
        """)
        self.con.execute("""
            CREATE OR REPLACE TEMP TABLE _sr_ex AS
            SELECT ex.*, u._uk FROM _sr_ex ex LEFT JOIN _sr_users u ON u.user_id = ex.user_id
        """)

    def _time_anchor(self) -> float:
        lo, hi = self.con.execute(f"""
            SELECT min(t), max(t) FROM (
                SELECT {_T.format(col='ts')} AS t FROM events UNION ALL SELECT t FROM _sr_ex)
        """).fetchall()[0]
        if lo is None:
            return 0.0
        t0 = float(math.floor((lo + hi) / 2.0))
        rates = [c.decay_rate for cs in self.space.counters.values() for c in cs]
        if rates and (hi - lo) / 2.0 * max(rates) > MAX_EXPONENT:
            raise ValueError(
                f"the events and examples span {(hi - lo) / 86400:.0f} days, too long for the shortest "
                "half-life in one pass; build features over a shorter window of events"
            )
        return t0

    def _load_examination_curve(self) -> None:
        curve = np.asarray(self.space.examination_curve, dtype=np.float64)
        rows, positions = np.meshgrid(np.arange(curve.shape[0]), np.arange(curve.shape[1]), indexing="ij")
        table = pa.table({"row_i": rows.ravel(), "pos_i": positions.ravel(), "w": curve.ravel()})
        self.con.register("_sr_exam_in", table)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _sr_exam AS SELECT * FROM _sr_exam_in")
        self.con.unregister("_sr_exam_in")
        self._curve_shape = curve.shape

    def _read_stream(self, stream: str, counters: Sequence[Counter], t0: float, n: int) -> dict[str, np.ndarray]:
        """Read one stream's counters at each example's time.

        Impression counters get their own running table: a window aggregate costs per row it runs
        over, most rows are impressions, and click / cart / purchase counters do not need them.
        Each extra table costs an ASOF join, so the other counters share one table.
        """
        # Items are keyed by their catalog row number: integer keys partition and join faster than
        # strings, and events about items outside the catalog count for no item (as online).
        integer_keys = {"item_id": "_ik", "user_id": "_uk"}
        keys = tuple(integer_keys.get(k, k) for k in STREAM_KEYS[stream])
        not_null = " AND ".join(f"{k} IS NOT NULL" for k in keys)
        key_cols = ", ".join(keys)
        groups: dict[tuple[str, ...], list[int]] = {}
        for j, c in enumerate(counters):
            groups.setdefault(("impression",) if c.event_types == ("impression",) else (), []).append(j)
        joins, reads = [], []
        for g, members in enumerate(groups.values()):
            event_types = sorted({e for j in members for e in counters[j].event_types})
            event_list = ", ".join(f"'{e}'" for e in event_types)
            running = []
            for j in members:
                c = counters[j]
                cond = "event_type IN (" + ", ".join(f"'{e}'" for e in c.event_types) + ")"
                weight = {"one": "1.0", "examination": "exam_w", "log_price": "coalesce(log_price, 0.0)"}[c.weight]
                if c.aggregate == "decayed_sum":
                    running.append(f"sum(CASE WHEN {cond} THEN {weight} * exp((t - {t0!r}) * {c.decay_rate!r}) "
                                   f"ELSE 0.0 END) OVER w AS c{j}")
                    reads.append(f"coalesce(k{g}.c{j} * exp(-(ex.t - {t0!r}) * {c.decay_rate!r}), 0.0) AS c{j}")
                elif c.aggregate == "sum":
                    running.append(f"sum(CASE WHEN {cond} THEN {weight} ELSE 0.0 END) OVER w AS c{j}")
                    reads.append(f"coalesce(k{g}.c{j}, 0.0) AS c{j}")
                else:  # last_time
                    running.append(f"max(CASE WHEN {cond} THEN t END) OVER w AS c{j}")
                    reads.append(f"k{g}.c{j} AS c{j}")
            # RANGE framing (the default with ORDER BY) gives rows tied in time the same running
            # value, so whichever of them the ASOF join picks holds every event at that time.
            self.con.execute(f"""
                CREATE OR REPLACE TEMP TABLE _sr_k{g} AS
                SELECT {key_cols}, t, {", ".join(running)}
                FROM _sr_ev WHERE event_type IN ({event_list}) AND {not_null}
                WINDOW w AS (PARTITION BY {key_cols} ORDER BY t)
            """)
            on = " AND ".join(f"ex.{k} = k{g}.{k}" for k in keys)
            joins.append(f"ASOF LEFT JOIN _sr_k{g} k{g} ON {on} AND ex.t > k{g}.t")
        result = self.con.sql(f"SELECT ex._row, {', '.join(reads)} FROM _sr_ex ex {' '.join(joins)}").to_arrow_table()
        for g in range(len(groups)):
            self.con.execute(f"DROP TABLE _sr_k{g}")
        assert result.num_rows == n
        order = np.argsort(result.column("_row").to_numpy())
        return {c.name: _floats(result.column(f"c{j}"))[order] for j, c in enumerate(counters)}

    def _read_attributes(self, n: int) -> dict[str, np.ndarray]:
        has_inventory = self._has_table("inventory")
        price_at = "p.price" if has_inventory else "NULL"
        stock_at = "s.in_stock" if has_inventory else "NULL"
        inventory_joins = """
            ASOF LEFT JOIN (SELECT item_id, t, max(price) AS price FROM (
                    SELECT item_id, {t} AS t, price FROM inventory WHERE price IS NOT NULL)
                GROUP BY item_id, t) p ON ex.item_id = p.item_id AND ex.t > p.t
            ASOF LEFT JOIN (SELECT item_id, t, max(stock) AS in_stock FROM (
                    SELECT item_id, {t} AS t, CAST(coalesce(in_stock, quantity > 0) AS DOUBLE) AS stock
                    FROM inventory WHERE coalesce(in_stock, quantity > 0) IS NOT NULL)
                GROUP BY item_id, t) s ON ex.item_id = s.item_id AND ex.t > s.t
        """.format(t=_T.format(col="ts")) if has_inventory else ""
        result = self.con.sql(f"""
            WITH medians AS (SELECT category_id, median(price) AS median_price FROM items GROUP BY category_id)
            SELECT ex.t AS "context.t",
                   coalesce(ex.surface, '') AS "context.surface",
                   coalesce(ex.location, '') AS "context.location",
                   coalesce(u.location, '') AS "user.location",
                   coalesce(u.subscription, '') AS "user.subscription",
                   coalesce({price_at}, i.price) AS "item.price",
                   m.median_price AS "item.category_median_price",
                   CAST(coalesce(i.has_image, coalesce(i.image_url, '') <> '') AS DOUBLE) AS "item.has_image",
                   {_T.format(col='i.created_at')} AS "item.created_t",
                   CASE WHEN i.item_id IS NULL THEN NULL
                        ELSE coalesce({stock_at}, CAST(coalesce(i.in_stock, i.stock_quantity > 0, true) AS DOUBLE))
                   END AS "item.in_stock",
                   coalesce(c.source, '') AS "collection.source",
                   CAST(len(c.item_ids) AS DOUBLE) AS "collection.size"
            FROM _sr_ex ex
            LEFT JOIN items i ON i.item_id = ex.item_id
            LEFT JOIN users u ON u.user_id = ex.user_id
            LEFT JOIN medians m ON m.category_id = i.category_id
            LEFT JOIN (SELECT collection_id, any_value(source) AS source, any_value(item_ids) AS item_ids
                       FROM collections GROUP BY collection_id) c ON c.collection_id = ex.collection_id
            {inventory_joins}
            ORDER BY ex._row
        """).to_arrow_table()
        assert result.num_rows == n
        out = {}
        for name in ATTRIBUTE_INPUTS:
            col = result.column(name)
            out[name] = _strings(col) if pa.types.is_string(col.type) else _floats(col)
        return out

    def _read_tastes(self, n: int) -> dict[str, np.ndarray]:
        """Taste vectors at each example's time and the item's own vector (see definitions.TasteVector).

        DuckDB joins: each engagement event gets its item's vector row and a running number in
        (key, time) order, and each example takes, by an ASOF join strictly before its time, the
        number of the last event of its key (ties at one time share the largest). numpy then
        runs the decayed sums over the events in that order (:func:`decayed_prefix_sums`) and
        reads each example's row.
        """
        vectors = self.space.item_vectors
        if vectors is None:  # no embeddings: every similarity is NaN (its default)
            empty = np.zeros((n, 1))
            return {ITEM_VECTOR: empty, **{taste.name: empty for taste in self.space.tastes}}
        # Items (events and examples) count only if in the catalog too, as online.
        ids = pa.table({"item_id": pa.array(vectors.item_ids, type=pa.string()),
                        "vrow": pa.array(np.arange(len(vectors.item_ids), dtype=np.int64))})
        self.con.register("_sr_vec_in", ids)
        self.con.execute("CREATE OR REPLACE TEMP TABLE _sr_vec AS SELECT * FROM _sr_vec_in")
        self.con.unregister("_sr_vec_in")
        rows = self.con.sql("""
            SELECT CASE WHEN ex._ik IS NULL THEN -1 ELSE coalesce(v.vrow, -1) END AS vrow
            FROM _sr_ex ex LEFT JOIN _sr_vec v ON v.item_id = ex.item_id
            ORDER BY ex._row""").fetchnumpy()["vrow"].astype(np.int64)
        out = {ITEM_VECTOR: vectors.at_rows(rows)}
        for taste in self.space.tastes:
            out[taste.name] = self._read_taste(taste, vectors, n)
        self.con.execute("DROP TABLE _sr_vec")
        return out

    def _read_taste(self, taste: TasteVector, vectors: ItemVectors, n: int) -> np.ndarray:
        keys = ("_uk",) if taste.stream == "user" else ("_uk", "session_id")
        on = " AND ".join(f"ex.{k} = ev.{k}" for k in keys)
        key_cols = ", ".join(keys)
        weight = "CASE event_type " + " ".join(f"WHEN '{e}' THEN {w!r}" for e, w in taste.weights if w > 0) + " END"
        types = ", ".join(f"'{e}'" for e in taste.event_types)
        not_null = " AND ".join(f"e.{k} IS NOT NULL" for k in keys)
        self.con.execute(f"""
            CREATE OR REPLACE TEMP TABLE _sr_taste AS
            SELECT *, max(rn) OVER (PARTITION BY {key_cols} ORDER BY t) AS upto FROM (
                SELECT {key_cols}, e.t, v.vrow, {weight} AS w,
                       dense_rank() OVER (ORDER BY {key_cols}) AS segment,
                       row_number() OVER (ORDER BY {key_cols}, e.t) - 1 AS rn
                FROM _sr_ev e JOIN _sr_vec v ON v.item_id = e.item_id
                WHERE e.event_type IN ({types}) AND e._ik IS NOT NULL AND {not_null})
        """)
        events = self.con.sql("SELECT segment, t, vrow, w FROM _sr_taste ORDER BY rn").fetchnumpy()
        upto = self.con.sql(f"""
            SELECT coalesce(ev.upto, -1) AS upto FROM _sr_ex ex
            ASOF LEFT JOIN (SELECT DISTINCT {key_cols}, t, upto FROM _sr_taste) ev ON {on} AND ex.t > ev.t
            ORDER BY ex._row""").fetchnumpy()["upto"].astype(np.int64)
        self.con.execute("DROP TABLE _sr_taste")
        assert len(upto) == n
        return decayed_prefix_sums(
            events["segment"].astype(np.int64), events["t"].astype(np.float64), events["vrow"].astype(np.int64),
            events["w"].astype(np.float64), vectors, taste.decay_rate, upto)

    def _has_table(self, name: str) -> bool:
        return bool(self.con.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_name = ?", [name]).fetchall()[0][0])


_EVENT_VIEW = """
    CREATE OR REPLACE TEMP TABLE _sr_ev AS
    SELECT u._uk, e.item_id, e.session_id, e.collection_id, {t} AS t, e.event_type,
           i.vertical, i.category_id, i.brand, i.rowid AS _ik,
           CASE WHEN i.price > 0 THEN ln(i.price) END AS log_price,
           coalesce(x.w, 0.0) AS exam_w
    FROM events e
    LEFT JOIN items i ON i.item_id = e.item_id
    LEFT JOIN _sr_users u ON u.user_id = e.user_id
    LEFT JOIN _sr_exam x
        ON x.row_i = least(greatest(coalesce(e.row, 0), 0), {max_row})
       AND x.pos_i = least(greatest(coalesce(e.position, 0), 0), {max_position})
    -- Every stream is keyed by a user, an item or a collection: events that touch none of the
    -- examples' users, items or collections can change no feature read here. Dropping them
    -- keeps the running tables small when examples are a sample of a large log.
    WHERE u._uk IS NOT NULL
       OR i.rowid IN (SELECT _ik FROM _sr_ex WHERE _ik IS NOT NULL)
       OR e.collection_id IN (SELECT collection_id FROM _sr_ex WHERE collection_id IS NOT NULL)
"""


def decayed_prefix_sums(segment: np.ndarray, t: np.ndarray, vrow: np.ndarray, weight: np.ndarray,
                        vectors: ItemVectors, rate: float, at: np.ndarray, chunk_rows: int = 200_000) -> np.ndarray:
    """Running decayed sums of weighted item vectors, read at given event numbers.

    Events are in (segment, time) order. Event i's running value, as of its own time, is
    ``R_i = a_i * R_{i-1} + w_i * vector(vrow_i)`` with ``a_i = exp(-rate * (t_i - t_{i-1}))``
    inside a segment and 0 at its start: a linear recurrence, computed for all events at once
    by a log-depth scan (Hillis-Steele: after the pass with offset d, each row holds the
    composition of the 2d rows ending at it). Returns ``R[at]`` (zeros where at < 0), one row
    per reader. Whole segments are processed in chunks of about ``chunk_rows`` events, so memory
    stays bounded whatever the number of events.
    """
    out = np.zeros((len(at), vectors.dim))
    if len(segment) == 0:
        return out
    starts = np.flatnonzero(np.r_[True, segment[1:] != segment[:-1]])
    bounds = [0]
    for s in starts[1:]:  # chunk edges at segment starts, about chunk_rows apart
        if s - bounds[-1] >= chunk_rows:
            bounds.append(int(s))
    bounds.append(len(segment))
    readers = np.flatnonzero(at >= 0)
    reader_at = at[readers]
    for lo, hi in zip(bounds[:-1], bounds[1:], strict=True):
        mine = (reader_at >= lo) & (reader_at < hi)
        if not mine.any():
            continue
        seg, tt = segment[lo:hi], t[lo:hi]
        a = np.zeros(hi - lo)
        same = seg[1:] == seg[:-1]
        a[1:] = np.where(same, np.exp(-rate * (tt[1:] - tt[:-1])), 0.0)
        running = weight[lo:hi, None] * vectors.at_rows(vrow[lo:hi])
        d = 1
        while d < hi - lo and a[d:].any():
            running[d:] += a[d:, None] * running[:-d]
            a[d:] = a[d:] * a[:-d]
            d *= 2
        out[readers[mine]] = running[reader_at[mine] - lo]
    return out


def _floats(col: pa.ChunkedArray) -> np.ndarray:
    return col.to_numpy(zero_copy_only=False).astype(np.float64)  # nulls become NaN


def _strings(col: pa.ChunkedArray) -> np.ndarray:
    return np.asarray(col.to_pylist(), dtype=str)
