"""The embedded store: one DuckDB file holding a table per data contract.

Tables carry the contract's columns (``Field.duckdb_type``) plus a little bookkeeping:
``updated_at`` on every table that is upserted by key, ``items.stock_updated_at`` (the
``ts`` of the newest inventory update applied to the item) and ``ingest_files`` (one row
per ingested file with its content hash and counts). There are no PRIMARY KEY / UNIQUE
constraints: index maintenance dominates bulk inserts at tens of millions of rows, so
ingest keeps keys unique with anti-joins instead.
"""

from __future__ import annotations

import os
from pathlib import Path
from types import TracebackType

import duckdb

from shelfrank.config import StoreConfig
from shelfrank.contracts import CONTRACTS, INGEST_ORDER, Contract
from shelfrank.errors import UserFacingError

# Bookkeeping columns per table, after the contract's columns.
EXTRA_COLUMNS: dict[str, tuple[tuple[str, str], ...]] = {
    "categories": (("updated_at", "TIMESTAMPTZ"),),
    "items": (("updated_at", "TIMESTAMPTZ"), ("stock_updated_at", "TIMESTAMPTZ")),
    "users": (("updated_at", "TIMESTAMPTZ"),),
    "collections": (("updated_at", "TIMESTAMPTZ"),),
    "inventory": (("updated_at", "TIMESTAMPTZ"),),
    "events": (),
}

INGEST_FILES_COLUMNS = (
    ("content_hash", "VARCHAR"),
    ("kind", "VARCHAR"),
    ("path", "VARCHAR"),
    ("rows_read", "BIGINT"),
    ("accepted", "BIGINT"),
    ("rejected", "BIGINT"),
    ("duplicates", "BIGINT"),
    ("reasons", "VARCHAR"),  # JSON object: reason -> count
    ("rejects_path", "VARCHAR"),
    ("ingested_at", "TIMESTAMPTZ"),
)


class StoreError(UserFacingError):
    """The store cannot be opened or used; one line naming the problem and the fix."""


class UnknownTableError(StoreError, ValueError):
    """A table name that is not one of the store's tables."""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _sql_string(text: str) -> str:
    return "'" + text.replace("'", "''") + "'"


class Store:
    """The embedded DuckDB store. Use as a context manager, or call :meth:`close`."""

    def __init__(self, config: StoreConfig) -> None:
        self.config = config
        path = config.database_path
        try:
            config.data_dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise StoreError(f"cannot create the data folder {config.data_dir}: {exc.strerror or exc}") from None
        if path.is_dir():
            raise StoreError(f"{path} is a folder, not a DuckDB file; set store.database_file to a file name")
        try:
            self.con = duckdb.connect(
                str(path),
                config={"memory_limit": config.memory_limit, "threads": config.threads},
            )
        except duckdb.Error as exc:
            if "memory" in str(exc).lower() and not isinstance(exc, duckdb.IOException):
                raise StoreError(
                    f"invalid store.memory_limit {config.memory_limit!r}: {_first_line(exc)}"
                ) from None
            raise StoreError(_open_error_message(path, exc)) from None
        try:
            # Timestamps without an offset (CSV text, naive Parquet timestamps) mean UTC.
            self.con.execute("SET TimeZone = 'UTC'")
            # DuckDB's own progress bar writes to stdout; callers report progress instead.
            self.con.execute("SET enable_progress_bar = false")
            self._create_tables()
        except BaseException:
            self.con.close()
            raise

    @classmethod
    def open(cls, config: StoreConfig) -> Store:
        return cls(config)

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        self.con.close()

    # -- schema -------------------------------------------------------------------------------

    def _create_tables(self) -> None:
        # duckdb_columns() answers in milliseconds; information_schema takes ~50 ms a query.
        existing: dict[str, set[str]] = {}
        for table, column in self.con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database() "
            "AND schema_name = 'main'"
        ).fetchall():
            existing.setdefault(table, set()).add(column)
        wanted = {name: table_columns(name) for name in INGEST_ORDER}
        wanted["ingest_files"] = INGEST_FILES_COLUMNS
        for name, columns in wanted.items():
            if name not in existing:
                body = ", ".join(f"{_quote(c)} {t}" for c, t in columns)
                self.con.execute(f"CREATE TABLE {_quote(name)} ({body})")
                continue
            # A store created by an older version may lack columns added to a contract since.
            for column, duckdb_type in columns:
                if column not in existing[name]:
                    self.con.execute(f"ALTER TABLE {_quote(name)} ADD COLUMN {_quote(column)} {duckdb_type}")

    # -- reading ------------------------------------------------------------------------------

    @property
    def table_names(self) -> tuple[str, ...]:
        return (*INGEST_ORDER, "ingest_files")

    def _check_table(self, table: str) -> str:
        if table not in self.table_names:
            known = ", ".join(self.table_names)
            raise UnknownTableError(f"unknown table {table!r}; the store has: {known}")
        return table

    def count(self, table: str) -> int:
        self._check_table(table)
        return self.con.execute(f"SELECT count(*) FROM {_quote(table)}").fetchone()[0]

    def table_counts(self) -> dict[str, int]:
        """Rows in every data table (one per contract), in ingest order."""
        return {name: self.count(name) for name in INGEST_ORDER}

    def export(self, table: str, path: Path) -> int:
        """Write a table to Parquet or CSV (by the suffix); returns the rows written.

        Data tables are written with exactly their contract's columns, in the contract's
        CSV conventions, so the file can be ingested again as it is.
        """
        self._check_table(table)
        path = Path(path)
        suffix = path.suffix.lower()
        if suffix not in (".parquet", ".csv"):
            raise StoreError(f"cannot export to {path.name}: the file name must end in .parquet or .csv")
        contract = CONTRACTS.get(table)
        if contract is None:
            select = f"SELECT * FROM {_quote(table)}"
        else:
            select = f"SELECT {_export_columns(contract, csv=suffix == '.csv')} FROM {_quote(table)}"
            if table != "events":  # ordering 20M events costs more than it helps
                select += " ORDER BY " + ", ".join(_quote(k) for k in contract.key)
        options = "FORMAT parquet, COMPRESSION zstd" if suffix == ".parquet" else "FORMAT csv, HEADER true"
        path.parent.mkdir(parents=True, exist_ok=True)
        partial = path.with_name(path.name + ".partial")
        try:
            self.con.execute(f"COPY ({select}) TO {_sql_string(str(partial))} ({options})")
            os.replace(partial, path)
        except BaseException:
            partial.unlink(missing_ok=True)
            raise
        return self.count(table)


def table_columns(name: str) -> tuple[tuple[str, str], ...]:
    """(column, DuckDB type) of a data table: the contract's fields, then bookkeeping."""
    contract = CONTRACTS[name]
    return tuple((f.name, f.duckdb_type) for f in contract.fields) + EXTRA_COLUMNS[name]


def _export_columns(contract: Contract, csv: bool) -> str:
    if not csv:
        return ", ".join(_quote(f.name) for f in contract.fields)
    parts = []
    for f in contract.fields:
        column = _quote(f.name)
        if f.type == "string_list":
            expr = f"array_to_string({column}, '|')"
        elif f.type == "timestamp":
            expr = f"strftime({column}, '%Y-%m-%dT%H:%M:%S.%fZ')"
        else:
            expr = column
        parts.append(f"{expr} AS {column}")
    return ", ".join(parts)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__


def _open_error_message(path: Path, exc: duckdb.Error) -> str:
    text = str(exc)
    first_line = _first_line(exc)
    lowered = text.lower()
    if "lock" in lowered:
        holder = ""
        if "pid" in lowered:
            holder = " (" + text[lowered.rindex("pid") :].split(")")[0].strip() + ")"
        return (
            f"the store {path} is locked by another process{holder}; "
            "wait for it to finish or stop it, then try again"
        )
    if "not a valid duckdb database" in lowered or "database file" in lowered and "version" not in lowered:
        return f"{path} is not a DuckDB database file; point store.data_dir / store.database_file elsewhere"
    if "version" in lowered:
        return f"{path} was written by another DuckDB version: {first_line}"
    return f"cannot open the store {path}: {first_line}"
