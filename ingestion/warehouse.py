"""Writing Arrow data into the warehouse (a DuckDB file or a PostgreSQL database), atomically.

Both the ERP sync and the event loader land data through `open_warehouse(...)`, so the
"never half-written" rule is implemented once: everything written inside `transaction()` becomes
visible together at commit, or not at all.
"""

from __future__ import annotations

import io
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager, suppress
from typing import Any, Protocol

import duckdb
import psycopg
import pyarrow as pa
import pyarrow.csv as pacsv

from crm_core.errors import CrmError, first_line, missing_database
from crm_core.sql import pg_placeholders, qualified, quote_ident
from crm_core.urls import WarehouseTarget


class Warehouse(Protocol):
    """What the loaders need from a warehouse. SQL uses `?` placeholders on both kinds."""

    target: WarehouseTarget
    #: The schema name under which `create_table` makes a session-private temporary table
    #: (never visible to readers, gone at the end of the session).
    temp_schema: str

    def transaction(self) -> Any: ...
    def execute(self, sql: str, params: Sequence[Any] = ()) -> None: ...
    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]: ...
    def table_exists(self, schema: str, table: str) -> bool: ...
    def create_table(self, schema: str, table: str, arrow_schema: pa.Schema) -> None: ...
    def append(self, schema: str, table: str, batch: pa.RecordBatch | pa.Table) -> None: ...
    def close(self) -> None: ...


# --------------------------------------------------------------------------------------------
# DuckDB


def duckdb_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "BOOLEAN"
    if pa.types.is_integer(t):
        return "BIGINT"
    if pa.types.is_floating(t):
        return "DOUBLE"
    if pa.types.is_decimal(t):
        return f"DECIMAL({min(t.precision, 38)},{t.scale})"
    if pa.types.is_timestamp(t):
        return "TIMESTAMPTZ" if t.tz else "TIMESTAMP"
    if pa.types.is_date(t):
        return "DATE"
    return "VARCHAR"


class DuckDBWarehouse:
    """The embedded default: one DuckDB file, written by one process at a time."""

    temp_schema = "temp"

    def __init__(self, target: WarehouseTarget) -> None:
        assert target.duckdb_path is not None
        self.target = target
        path = target.duckdb_path
        try:
            path.parent.mkdir(parents=True, exist_ok=True)
            self.con = duckdb.connect(str(path), config={
                "autoinstall_known_extensions": False,
                "autoload_known_extensions": False,
            })
            self.con.execute("set TimeZone = 'UTC'")
        except (OSError, duckdb.Error) as exc:
            raise CrmError(f"warehouse {path} cannot be opened for writing: {first_line(exc)}") \
                from None

    @contextmanager
    def transaction(self) -> Iterator[None]:
        self.con.execute("begin transaction")
        try:
            yield
        except BaseException:
            # An attached source whose connection died cannot roll back its side; the DuckDB
            # side is undone regardless, and the original error is the one that says what failed.
            with suppress(duckdb.Error):
                self.con.execute("rollback")
            raise
        self.con.execute("commit")

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.con.execute(sql, list(params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.con.execute(sql, list(params)).fetchall()

    def table_exists(self, schema: str, table: str) -> bool:
        return table in table_names(self, schema)

    def create_table(self, schema: str, table: str, arrow_schema: pa.Schema) -> None:
        cols = ", ".join(f"{quote_ident(f.name)} {duckdb_type(f.type)}" for f in arrow_schema)
        if schema == self.temp_schema:
            self.con.execute(f"create or replace temp table {quote_ident(table)} ({cols})")
            return
        self.con.execute(f"create schema if not exists {quote_ident(schema)}")
        self.con.execute(f"create or replace table {qualified(schema, table)} ({cols})")

    def append(self, schema: str, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        data = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        self.con.register("__crm_batch", data)
        try:
            cols = ", ".join(quote_ident(n) for n in data.column_names)
            self.con.execute(
                f"insert into {qualified(schema, table)} ({cols}) select {cols} from __crm_batch"
            )
        finally:
            self.con.unregister("__crm_batch")

    def close(self) -> None:
        self.con.close()


def table_names(wh: Warehouse, schema: str) -> set[str]:
    """The tables and views of `schema` (one catalog query, however many are asked about)."""
    return {name for (name,) in wh.fetchall(
        "select table_name from information_schema.tables where table_schema = ?", (schema,))}


@contextmanager
def duckdb_landing(con: duckdb.DuckDBPyConnection,
                   memory_limit: str | None = None) -> Iterator[None]:
    """DuckDB settings while bulk rows land in `raw` (the ERP sync, the event files); restored
    afterwards.

    - No FSST, DuckDB's string compression: it is the costliest step of writing many strings
      (BENCHMARKS.md) and only saves space. `raw` is a landing zone that staging reads once per
      run; the marts are written by dbt's own connection, with every method on.
    - `memory_limit`, when given: DuckDB's buffer pool keeps every block written cached, so
      without a cap memory grows with the data (to DuckDB's default of 80% of RAM); beyond the
      cap blocks already on disk are simply dropped."""
    con.execute("set disabled_compression_methods = 'fsst'")
    if memory_limit:
        con.execute(f"set memory_limit = '{memory_limit}'")
    try:
        yield
    finally:
        con.execute("reset disabled_compression_methods")
        if memory_limit:
            con.execute("reset memory_limit")


# --------------------------------------------------------------------------------------------
# PostgreSQL


def _pg_type(t: pa.DataType) -> str:
    if pa.types.is_boolean(t):
        return "boolean"
    if pa.types.is_integer(t):
        return "bigint"
    if pa.types.is_floating(t):
        return "double precision"
    if pa.types.is_decimal(t):
        return f"numeric({min(t.precision, 1000)},{t.scale})"
    if pa.types.is_timestamp(t):
        return "timestamp with time zone" if t.tz else "timestamp without time zone"
    if pa.types.is_date(t):
        return "date"
    return "text"


class PostgresWarehouse:
    """The production warehouse. One psycopg connection; DDL and COPY are transactional."""

    temp_schema = "pg_temp"

    def __init__(self, target: WarehouseTarget) -> None:
        self.target = target
        try:
            self.conn = psycopg.connect(target.conninfo(), connect_timeout=10, autocommit=True)
        except psycopg.Error as exc:
            raise CrmError(missing_database(exc, f"warehouse {target.describe()}",
                                            host=target.host, port=target.port, user=target.user)
                           or f"warehouse {target.describe()} is unreachable: "
                              f"{first_line(exc)}") from None
        self.conn.execute("set time zone 'UTC'")

    @contextmanager
    def transaction(self) -> Iterator[None]:
        with self.conn.transaction():
            yield

    def execute(self, sql: str, params: Sequence[Any] = ()) -> None:
        self.conn.execute(pg_placeholders(sql), list(params))

    def fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[tuple[Any, ...]]:
        return self.conn.execute(pg_placeholders(sql), list(params)).fetchall()

    def table_exists(self, schema: str, table: str) -> bool:
        return table in table_names(self, schema)

    def create_table(self, schema: str, table: str, arrow_schema: pa.Schema) -> None:
        """An empty table of this shape. An existing table of the same shape is truncated, so
        the dbt views built on it stay valid; one of another shape is dropped with its
        dependent views (dbt rebuilds them in the same run)."""
        self.create_table_typed(schema, table, [(f.name, _pg_type(f.type)) for f in arrow_schema])

    def create_table_typed(self, schema: str, table: str, wanted: list[tuple[str, str]]) -> None:
        """`create_table` with PostgreSQL column types given as (name, type) pairs."""
        if schema != self.temp_schema:
            self.conn.execute(f"create schema if not exists {quote_ident(schema)}")
        current = pg_columns(self.conn, schema, table)
        if current == wanted:
            self.conn.execute(f"truncate {qualified(schema, table)}")
            return
        cols = ", ".join(f"{quote_ident(name)} {pg_type}" for name, pg_type in wanted)
        self.conn.execute(f"drop table if exists {qualified(schema, table)} cascade")
        self.conn.execute(f"create table {qualified(schema, table)} ({cols})")

    def append(self, schema: str, table: str, batch: pa.RecordBatch | pa.Table) -> None:
        """COPY the batch as CSV produced by Arrow's C++ writer: no Python object per row."""
        data = batch if isinstance(batch, pa.Table) else pa.Table.from_batches([batch])
        if data.num_rows == 0:
            return
        # Arrow quotes every string value ("needed" style), so '' arrives as "" while a NULL
        # is an unquoted empty field: exactly how PostgreSQL's CSV COPY tells them apart.
        buf = io.BytesIO()
        pacsv.write_csv(
            data, buf,
            write_options=pacsv.WriteOptions(include_header=False, quoting_style="needed"),
        )
        cols = ", ".join(quote_ident(n) for n in data.column_names)
        sql = (f"copy {qualified(schema, table)} ({cols}) from stdin "
               "(format csv)")
        with self.conn.cursor() as cur, cur.copy(sql) as copy:
            view = buf.getbuffer()
            for start in range(0, len(view), 1 << 20):
                copy.write(view[start:start + (1 << 20)])

    def close(self) -> None:
        self.conn.close()


def pg_columns(conn: psycopg.Connection, schema: str, table: str) -> list[tuple[str, str]]:
    """A table's columns as (name, type as `format_type` spells it), in order."""
    rows = conn.execute(
        "select a.attname, format_type(a.atttypid, a.atttypmod) from pg_attribute a "
        "join pg_class c on c.oid = a.attrelid join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = %s and c.relkind in ('r', 'p', 'v', 'm', 'f') "
        "and a.attnum > 0 and not a.attisdropped order by a.attnum",
        [schema, table],
    ).fetchall()
    return [(name, pg_type) for name, pg_type in rows]


# --------------------------------------------------------------------------------------------


def open_warehouse(target: WarehouseTarget) -> DuckDBWarehouse | PostgresWarehouse:
    """Connect to the warehouse the loaders write (for Spark: its local DuckDB staging file,
    `WarehouseTarget.staging`); raises `CrmError` with one clear line."""
    target = target.staging()
    if target.is_duckdb:
        return DuckDBWarehouse(target)
    return PostgresWarehouse(target)


def replace_tables(
    wh: Warehouse, schema: str, tables: Iterable[tuple[str, pa.Schema, Iterable[pa.RecordBatch]]]
) -> dict[str, int]:
    """Replace each table's whole content in ONE transaction: readers see all old or all new.

    `tables` yields (name, arrow schema, batches); batches are pulled lazily, so a source that
    fails half-way raises inside the transaction and nothing changes.
    """
    counts: dict[str, int] = {}
    with wh.transaction():
        for name, arrow_schema, batches in tables:
            wh.create_table(schema, name, arrow_schema)
            rows = 0
            for batch in batches:
                wh.append(schema, name, batch)
                rows += batch.num_rows
            counts[name] = rows
    return counts

