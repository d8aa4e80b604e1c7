"""Checked, idempotent, transactional ingest of Parquet / CSV files into the store.

All the work is SQL in DuckDB over whole columns: the file is read with ``read_parquet`` /
``read_csv``, every value is parsed with TRY_CAST-style expressions generated from the
contract, the first failing check of each row is recorded as a small integer, and good rows
are inserted with anti-joins (events) or upserted by key (everything else). Nothing loops
over rows in Python. See docs/data.md for the rules as the user sees them.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import re
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import duckdb

from shelfrank.contracts import CONTRACTS, INGEST_ORDER, LIST_SEPARATOR, Contract
from shelfrank.errors import UserFacingError
from shelfrank.progress import SILENT, Progress
from shelfrank.store.checks import Check, build_checks, parse_expression
from shelfrank.store.database import EXTRA_COLUMNS, Store, _quote, _sql_string

PARQUET_SUFFIXES = (".parquet",)
CSV_SUFFIXES = (".csv", ".csv.gz")
# Columns that identify an event when the file gives no event_id (see docs/data.md).
EVENT_ID_SOURCE_COLUMNS = (
    "ts", "user_id", "session_id", "event_type", "item_id", "collection_id", "request_id", "row", "position",
    "query",
)


# Errors that mean the file's content is broken; any other DuckDB error is a bug here.
_READ_ERRORS = (duckdb.IOException, duckdb.InvalidInputException, duckdb.ConversionException)


class IngestError(UserFacingError):
    """A file that cannot be ingested at all; one line naming the file and the fix."""


@dataclass
class IngestReport:
    kind: str
    path: Path
    rows_read: int
    accepted: int  # rows inserted, or updated with new values
    rejected: int
    duplicates: int  # rows already in the store (or repeated in the file) with the same key and values
    rejects_path: Path | None
    reasons: dict[str, int]  # reason (without the row's value) -> rows rejected for it
    warnings: list[str] = field(default_factory=list)  # e.g. columns the contract does not know


# -- naming ------------------------------------------------------------------------------------


def _data_suffix(path: Path) -> str | None:
    name = path.name.lower()
    for suffix in (*CSV_SUFFIXES, *PARQUET_SUFFIXES):
        if name.endswith(suffix):
            return suffix
    return None


def _expected_names() -> str:
    kinds = ", ".join(INGEST_ORDER)
    return f"name it after its kind ({kinds}), e.g. items.parquet, events.csv, events/ or events-2026-01.parquet"


def detect_kind(path: Path) -> str:
    """The data kind a file or folder holds, from its name: items.parquet, events/, events-2026-01.csv."""
    path = Path(path)
    if path.is_dir():
        stem = path.name
    else:
        suffix = _data_suffix(path)
        if suffix is None:
            raise IngestError(f"{path.name} is not a .parquet or .csv file; {_expected_names()}")
        stem = path.name[: -len(suffix)]
    stem = stem.lower()
    for kind in CONTRACTS:
        if stem == kind or re.match(rf"{kind}[-_.]", stem):
            return kind
    raise IngestError(f"cannot tell what {path.name} holds; {_expected_names()}, or pass the kind")


# -- reading -----------------------------------------------------------------------------------


@dataclass
class _Source:
    """The files of one ingest and the relation that reads them with (_file, _row)."""

    path: Path
    files: list[Path]
    format: str  # "parquet" or "csv"
    relation: str = ""  # SQL relation with _file, _row and the file's columns
    columns: dict[str, str] = field(default_factory=dict)  # contract field -> DuckDB type in the file
    column_names: dict[str, str] = field(default_factory=dict)  # contract field -> column name in the file
    extra_columns: list[str] = field(default_factory=list)
    overflow_columns: list[str] = field(default_factory=list)  # CSV: values beyond the header


def _csv_header(path: Path) -> list[str]:
    opener = gzip.open if path.name.lower().endswith(".gz") else open
    with opener(path, "rt", newline="", encoding="utf-8", errors="replace") as fh:
        return next(csv.reader(fh), [])


def _source_files(path: Path) -> tuple[list[Path], str]:
    if not path.exists():
        raise IngestError(f"{path} does not exist")
    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.is_file() and not p.name.startswith((".", "_")))
        data = [p for p in files if _data_suffix(p) is not None]
        if not data:
            raise IngestError(f"the folder {path} holds no .parquet or .csv part files")
        formats = {"csv" if _data_suffix(p) in CSV_SUFFIXES else "parquet" for p in data}
        if len(formats) > 1:
            raise IngestError(f"the folder {path} mixes Parquet and CSV part files; keep one format per folder")
        return data, formats.pop()
    suffix = _data_suffix(path)
    if suffix is None:
        raise IngestError(f"{path.name} is not a .parquet or .csv file")
    if path.stat().st_size == 0:
        raise IngestError(f"{path} is empty")
    return [path], "csv" if suffix in CSV_SUFFIXES else "parquet"


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_source(con: duckdb.DuckDBPyConnection, path: Path, contract: Contract) -> _Source:
    files, fmt = _source_files(path)
    source = _Source(path=path, files=files, format=fmt)
    file_list = "[" + ", ".join(_sql_string(str(p)) for p in files) + "]"
    try:
        if fmt == "parquet":
            # file_row_number is 0-based; rejects report 1-based data rows.
            reader = (
                f"read_parquet({file_list}, filename = '_file', file_row_number = true, union_by_name = true)"
            )
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW _src AS SELECT * EXCLUDE (file_row_number), "
                f"file_row_number + 1 AS _row FROM {reader}"
            )
        else:
            # CSV has no row-number column: load the text into a table, whose rowid follows file
            # order (insertion order is preserved), and number rows from each file's first rowid.
            reader = (
                f"read_csv({file_list}, header = true, all_varchar = true, union_by_name = true, "
                f"filename = '_file', delim = ',', quote = '\"', escape = '\"', auto_detect = true"
            )
            try:
                con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS SELECT * FROM {reader})")
            except duckdb.InvalidInputException:
                # Rows with more or fewer values than the header: null_padding pads short rows with
                # empty values and gives long rows extra columns (column5, ...) not in any header,
                # both then rejected row by row. Not the default, as it cannot read quoted newlines.
                con.execute(f"CREATE OR REPLACE TEMP TABLE _csv AS SELECT * FROM {reader}, null_padding = true)")
            headers = {name.lower() for p in files for name in _csv_header(p)}
            csv_columns = [r[0] for r in con.execute("DESCRIBE _csv").fetchall() if r[0] != "_file"]
            source.overflow_columns = [c for c in csv_columns if c.lower() not in headers]
            overflow = " OR ".join(f"c.{_quote(c)} IS NOT NULL" for c in source.overflow_columns) or "false"
            hidden = ", ".join(["_file", *map(_quote, source.overflow_columns)])
            con.execute(
                f"CREATE OR REPLACE TEMP VIEW _src AS SELECT c.* EXCLUDE ({hidden}), "
                f"c._file, c.rowid - f._first + 1 AS _row, ({overflow}) AS _overflow FROM _csv c "
                "JOIN (SELECT _file, min(rowid) AS _first FROM _csv GROUP BY _file) f USING (_file)"
            )
        described = con.execute("DESCRIBE SELECT * FROM _src").fetchall()
    except duckdb.Error as exc:
        what = "Parquet" if fmt == "parquet" else "CSV"
        raise IngestError(f"cannot read {path} as {what}: {_first_line(exc)}") from None
    source.relation = "_src"
    internal = ("_file", "_row", "_overflow")
    by_lower = {name.lower(): (name, dtype) for name, dtype, *_ in described if name not in internal}
    for f in contract.fields:
        if f.name.lower() in by_lower:
            name, dtype = by_lower.pop(f.name.lower())
            source.columns[f.name] = dtype
            source.column_names[f.name] = name
    source.extra_columns = sorted(name for name, _ in by_lower.values())
    missing = [c for c in contract.required_columns if c not in source.columns]
    if missing:
        found = ", ".join(n for n, *_ in described if n not in internal) or "none"
        raise IngestError(
            f"{path.name} lacks required {contract.name} column(s) {', '.join(missing)} (found: {found})"
        )
    return source


def _content_hash(files: list[Path]) -> str:
    # Content only: a renamed or copied file is the same data.
    digest = hashlib.sha256()
    for p in files:
        with p.open("rb") as fh:
            digest.update(hashlib.file_digest(fh, "sha256").digest())
    return digest.hexdigest()


# -- the stage: parsed values and the first failing check per row ------------------------------


def _stage_sql(contract: Contract, source: _Source, checks: list[Check], materialize: bool) -> str:
    """CREATE TEMP TABLE (or VIEW) _stage: _file, _row, the contract's typed columns (derived
    where the file leaves them empty), and _check (index into `checks` of the first failure,
    or NULL)."""
    parsed = []
    for f in contract.fields:
        raw_type = source.columns.get(f.name)
        raw = f"_src.{_quote(source.column_names[f.name])}" if raw_type else None
        parsed.append(f"{parse_expression(f, raw, raw_type)} AS {_quote(f.name)}")
        if raw is not None:
            parsed.append(f"{raw} AS {_quote('_raw_' + f.name)}")
    joins = []
    if contract.name in ("events", "inventory"):
        joins.append("LEFT JOIN (SELECT item_id AS _known_item FROM items) k ON k._known_item = p.item_id")
    if contract.name == "collections":
        joins.append(
            """LEFT JOIN (
                SELECT _file, _row, arg_min(u._id, u._pos) AS _first_unknown_item
                FROM (SELECT _file, _row, unnest(item_ids) AS _id, generate_subscripts(item_ids, 1) AS _pos
                      FROM _parsed) u
                WHERE u._id NOT IN (SELECT item_id FROM items)
                GROUP BY _file, _row
            ) unknown USING (_file, _row)"""
        )
    overflow = "_src._overflow, " if source.overflow_columns else ""
    case = " ".join(f"WHEN {c.condition} THEN {i}" for i, c in enumerate(checks))
    check_expr = f"CASE {case} END" if checks else "NULL"
    derived = _derived_columns(contract)
    final = [derived.get(f.name, _quote(f.name)) + f" AS {_quote(f.name)}" for f in contract.fields]
    extra = ", unknown._first_unknown_item" if contract.name == "collections" else ""
    return f"""
        CREATE OR REPLACE TEMP {'TABLE' if materialize else 'VIEW'} _stage AS
        WITH _parsed AS (SELECT _src._file, _src._row, {overflow}{', '.join(parsed)} FROM _src)
        SELECT p._file, p._row, {', '.join(final)}{extra},
               ({check_expr})::SMALLINT AS _check
        FROM _parsed p {' '.join(joins)}
    """


def _derived_columns(contract: Contract) -> dict[str, str]:
    """Values filled in when the file leaves them empty (expressions over the parsed columns)."""
    if contract.name == "items":
        return {
            "has_image": "coalesce(has_image, image_url IS NOT NULL)",
            "in_stock": "coalesce(in_stock, stock_quantity > 0)",
        }
    if contract.name == "inventory":
        return {"in_stock": "coalesce(in_stock, quantity > 0)"}
    if contract.name == "events":
        return {"event_id": f"coalesce(event_id, {event_id_expression()})"}
    return {}


def event_id_expression(prefix: str = "") -> str:
    """md5 over the identifying columns; NULLs as empty text (empty values are NULL anyway)."""
    parts = []
    for name in EVENT_ID_SOURCE_COLUMNS:
        column = prefix + _quote(name)
        value = f"epoch_us({column})::VARCHAR" if name == "ts" else f"{column}::VARCHAR"
        parts.append(f"coalesce({value}, '')")
    return f"md5(concat_ws(chr(31), {', '.join(parts)}))"


# -- writing -----------------------------------------------------------------------------------


def _contract_columns(contract: Contract, prefix: str = "") -> str:
    return ", ".join(prefix + _quote(f.name) for f in contract.fields)


def _insert_events(con: duckdb.DuckDBPyConnection, contract: Contract, in_file_repeats: int) -> int:
    """Insert the good rows whose event_id is new; returns the rows inserted."""
    columns = _contract_columns(contract)
    rows = "SELECT * FROM _stage WHERE _check IS NULL"
    if in_file_repeats:
        # The first occurrence in the file wins; the others are duplicates.
        rows = f"SELECT DISTINCT ON (event_id) * FROM ({rows}) ORDER BY event_id, _file, _row"
    store_has_events = con.execute("SELECT EXISTS (SELECT 1 FROM events)").fetchone()[0]
    anti_join = (
        " WHERE NOT EXISTS (SELECT 1 FROM events e WHERE e.event_id = s.event_id)" if store_has_events else ""
    )
    return con.execute(f"INSERT INTO events ({columns}) SELECT {columns} FROM ({rows}) s{anti_join}").fetchone()[0]


def _upsert(con: duckdb.DuckDBPyConnection, contract: Contract) -> int:
    """Upsert the good rows by key (the last row of a key in the file wins); returns rows
    inserted or changed. Rows identical to the stored ones change nothing."""
    table = _quote(contract.name)
    key = contract.key
    key_cols = ", ".join(_quote(k) for k in key)
    columns = _contract_columns(contract)
    same_values = " AND ".join(f"l.{_quote(f.name)} IS NOT DISTINCT FROM t.{_quote(f.name)}" for f in contract.fields)
    key_join = " AND ".join(f"l.{_quote(k)} = t.{_quote(k)}" for k in key)
    carried = [c for c, _ in EXTRA_COLUMNS[contract.name] if c != "updated_at"]
    carried_select = "".join(f", t.{_quote(c)} AS {_quote(c)}" for c in carried)
    con.execute(
        f"""
        CREATE OR REPLACE TEMP TABLE _upsert AS
        WITH latest AS (
            SELECT * FROM _stage WHERE _check IS NULL
            QUALIFY row_number() OVER (PARTITION BY {key_cols} ORDER BY _file DESC, _row DESC) = 1
        )
        SELECT {_contract_columns(contract, 'l.')}{carried_select},
               t.{_quote(key[0])} IS NOT NULL AS _exists,
               t.{_quote(key[0])} IS NOT NULL AND {same_values} AS _same
        FROM latest l LEFT JOIN {table} t ON {key_join}
        """
    )
    key_match = " AND ".join(f"u.{_quote(k)} = {table}.{_quote(k)}" for k in key)
    con.execute(
        f"DELETE FROM {table} WHERE EXISTS "
        f"(SELECT 1 FROM _upsert u WHERE u._exists AND NOT u._same AND {key_match})"
    )
    carried_cols = "".join(f", {_quote(c)}" for c in carried)
    return con.execute(
        f"""INSERT INTO {table} ({columns}{carried_cols}, updated_at)
            SELECT {columns}{carried_cols}, now() FROM _upsert WHERE NOT _same"""
    ).fetchone()[0]


def _apply_inventory(con: duckdb.DuckDBPyConnection) -> None:
    """Set items' stock and price from the newest inventory update per item and field, among
    this file's updates newer than the last update already applied to the item."""
    con.execute(
        """
        UPDATE items SET
            in_stock = coalesce(u.in_stock, items.in_stock),
            stock_quantity = coalesce(u.quantity, items.stock_quantity),
            price = coalesce(u.price, items.price),
            stock_updated_at = u.ts,
            updated_at = now()
        FROM (
            SELECT v.item_id, max(v.ts) AS ts,
                   arg_max(v.in_stock, v.ts) FILTER (WHERE v.in_stock IS NOT NULL) AS in_stock,
                   arg_max(v.quantity, v.ts) FILTER (WHERE v.quantity IS NOT NULL) AS quantity,
                   arg_max(v.price, v.ts) FILTER (WHERE v.price IS NOT NULL) AS price
            FROM _stage v JOIN items i ON i.item_id = v.item_id
            WHERE v._check IS NULL AND (i.stock_updated_at IS NULL OR v.ts > i.stock_updated_at)
            GROUP BY v.item_id
        ) u
        WHERE items.item_id = u.item_id
        """
    )


def _rejects_path(store: Store, kind: str, path: Path) -> Path:
    suffix = _data_suffix(path)
    stem = path.name[: -len(suffix)] if suffix and path.is_file() else path.name
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate = store.config.rejects_dir / f"{kind}-{stem}-{stamp}.csv"
    n = 1
    while candidate.exists() or candidate.with_name(candidate.name + ".partial").exists():
        n += 1
        candidate = store.config.rejects_dir / f"{kind}-{stem}-{stamp}-{n}.csv"
    return candidate


def _write_rejects(
    con: duckdb.DuckDBPyConnection, contract: Contract, source: _Source, checks: list[Check], target: Path
) -> None:
    """rejects CSV: row_number, (file, for a folder), reason, then the file's values as text."""
    reason = "CASE s._check " + " ".join(f"WHEN {i} THEN {c.message}" for i, c in enumerate(checks)) + " END"
    values = []
    for f in contract.fields:
        if f.name in source.columns:
            raw = f"_src.{_quote(source.column_names[f.name])}"
            values.append(f"{_text(raw, source.columns[f.name])} AS {_quote(f.name)}")
    file_column = ", parse_filename(s._file) AS file" if source.path.is_dir() else ""
    target.parent.mkdir(parents=True, exist_ok=True)
    sql = f"""
        COPY (
            SELECT s._row AS row_number{file_column},
                   {reason} AS reason,
                   {', '.join(values)}
            FROM (SELECT * FROM _stage WHERE _check IS NOT NULL) s JOIN _src USING (_file, _row)
            ORDER BY s._file, s._row
        ) TO {_sql_string(str(target))} (FORMAT csv, HEADER true)
    """
    con.execute(sql)


def _text(raw: str, raw_type: str) -> str:
    """A file value as the text a person would write in a CSV."""
    if raw_type.endswith("[]"):
        return f"array_to_string({raw}, '{LIST_SEPARATOR}')"
    return f"CAST({raw} AS VARCHAR)"


# -- the public entry points -------------------------------------------------------------------


def ingest_file(store: Store, path: Path, kind: str | None = None, progress: Progress = SILENT) -> IngestReport:
    """Ingest one .parquet/.csv file, or a folder of part files of one kind, in one transaction.

    Bad rows are rejected (written with row number and reason to a rejects file), good rows
    are kept; re-ingesting the same rows adds nothing.
    """
    path = Path(path)
    if kind is None:
        kind = detect_kind(path)
    if kind not in CONTRACTS:
        raise IngestError(f"unknown data kind {kind!r}; expected one of: {', '.join(INGEST_ORDER)}")
    contract = CONTRACTS[kind]
    con = store.con
    files, _ = _source_files(path)
    content_hash = _content_hash(files)
    if kind == "events":
        # The event log is append-only: a file whose every row was taken already has nothing new.
        earlier = con.execute(
            "SELECT rows_read, path, ingested_at FROM ingest_files WHERE content_hash = ? AND kind = 'events' "
            "AND rejected = 0 ORDER BY ingested_at DESC LIMIT 1",
            [content_hash],
        ).fetchone()
        if earlier is not None:
            rows_read, earlier_path, at = earlier
            return IngestReport(
                kind, path, rows_read, 0, 0, rows_read, None, {},
                [f"same content as {earlier_path}, ingested {at:%Y-%m-%d %H:%M:%S} UTC; nothing new"],
            )

    rejects_target: Path | None = None
    partial: Path | None = None
    with progress.task(f"{kind}: read {path.name}"):
        # Outside the transaction: it only creates session-local temp objects, and a failed CSV
        # read (retried with null_padding) would abort the transaction.
        source = _open_source(con, path, contract)
    con.begin()
    try:
        with progress.task(f"{kind}: check {path.name}") as advance:
            checks = build_checks(contract, source.columns, source.column_names)
            if source.overflow_columns:
                # Checked first: with values shifted, every other check would mislead.
                checks.insert(0, Check("more values than the header has columns", "p._overflow",
                                       "'more values than the header has columns'"))
            # Events (tens of millions of rows) are checked as a view, read once to count and
            # once to insert: materializing them would hold the whole file in memory.
            is_events = kind == "events"
            distinct_ids = "count(DISTINCT event_id) FILTER (WHERE _check IS NULL)" if is_events else "0"
            try:
                con.execute(_stage_sql(contract, source, checks, materialize=not is_events))
                counts = con.execute(
                    f"SELECT _check, count(*), {distinct_ids} FROM _stage GROUP BY _check"
                ).fetchall()
            except _READ_ERRORS as exc:
                raise IngestError(f"cannot read {path}: {_first_line(exc)}") from None
            advance(1)
        rows_read = sum(n for _, n, _ in counts)
        if rows_read == 0:
            raise IngestError(f"{path} has no data rows")
        reasons: dict[str, int] = {}
        in_file_repeats = 0
        for check_index, n, distinct in counts:
            if check_index is None:
                in_file_repeats = n - distinct if is_events else 0
            else:
                key = checks[check_index].reason
                reasons[key] = reasons.get(key, 0) + n
        rejected = sum(reasons.values())
        good = rows_read - rejected

        with progress.task(f"{kind}: insert {good:,} rows", total=good) as advance:
            if kind == "events":
                accepted = _insert_events(con, contract, in_file_repeats)
            else:
                accepted = _upsert(con, contract)
                if kind == "inventory":
                    _apply_inventory(con)
            advance(good)

        if rejected:
            with progress.task(f"{kind}: write {rejected:,} rejected rows", total=rejected) as advance:
                rejects_target = _rejects_path(store, kind, path)
                partial = rejects_target.with_name(rejects_target.name + ".partial")
                _write_rejects(con, contract, source, checks, partial)
                advance(rejected)

        report = IngestReport(
            kind=kind, path=path, rows_read=rows_read, accepted=accepted, rejected=rejected,
            duplicates=good - accepted, rejects_path=rejects_target, reasons=reasons,
        )
        if source.extra_columns:
            report.warnings.append(f"ignored columns not in the {kind} contract: {', '.join(source.extra_columns)}")
        con.execute(
            "INSERT INTO ingest_files VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, now())",
            [content_hash, kind, str(path.resolve()), rows_read, accepted, rejected, report.duplicates,
             json.dumps(reasons), str(rejects_target) if rejects_target else None],
        )
        _drop_scratch(con)
        con.commit()
    except BaseException:
        try:
            con.rollback()
            _drop_scratch(con)
        finally:
            if partial is not None:
                partial.unlink(missing_ok=True)
        raise
    if partial is not None and rejects_target is not None:
        os.replace(partial, rejects_target)
    return report


def _drop_scratch(con: duckdb.DuckDBPyConnection) -> None:
    # By type: DROP TABLE on a view is an error, and an error aborts the open transaction.
    for kind, name in con.execute(
        "SELECT 'VIEW', view_name FROM duckdb_views() WHERE temporary AND view_name IN ('_src', '_stage') "
        "UNION ALL SELECT 'TABLE', table_name FROM duckdb_tables() WHERE temporary "
        "AND table_name IN ('_stage', '_upsert', '_csv')"
    ).fetchall():
        con.execute(f"DROP {kind} {name}")


def ingest_folder(store: Store, folder: Path, progress: Progress = SILENT) -> list[IngestReport]:
    """Ingest every recognised file and part folder in `folder`, kinds in INGEST_ORDER (so
    references point to rows already in the store), files of one kind by name."""
    folder = Path(folder)
    if not folder.is_dir():
        raise IngestError(f"{folder} is not a folder")
    found: dict[str, list[Path]] = {kind: [] for kind in INGEST_ORDER}
    for entry in sorted(folder.iterdir()):
        if entry.name.startswith((".", "_")) or (entry.is_file() and _data_suffix(entry) is None):
            continue
        try:
            found[detect_kind(entry)].append(entry)
        except IngestError:
            continue  # other files (notes, ground truth) may sit next to the data
    if not any(found.values()):
        try:
            kind = detect_kind(folder)  # the folder is itself a kind: events/ with part files
        except IngestError:
            raise IngestError(f"{folder} holds no data files; {_expected_names()}") from None
        return [ingest_file(store, folder, kind=kind, progress=progress)]
    return [ingest_file(store, p, kind=kind, progress=progress) for kind in INGEST_ORDER for p in found[kind]]
