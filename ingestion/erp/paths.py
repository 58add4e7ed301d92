"""The three ways ERP rows reach the warehouse, behind one small interface.

A `Loader` does what `ingestion.erp.sync` needs from the source: replace `raw.<table>` with the
whole source table (`full`); stage the rows matching a filter (changed since the cursor, or in
some key ranges) into the temporary table `crm_stage_<table>__delta` (`stage_delta`), or every
primary key into `crm_stage_<table>__keys` (`stage_keys`; session-private, so no reader ever
sees them; see `stage_tables`); compute the source's key-range fingerprints on the source
(`fingerprints`). The merge itself is plain SQL, the same on
every path. Each path moves rows with its own bulk mechanism, so there is no Python per row on
the PostgreSQL paths:

- PostgreSQL → DuckDB: DuckDB's postgres extension (binary COPY into DuckDB tables);
- PostgreSQL → PostgreSQL: `COPY … TO STDOUT (FORMAT binary)` piped into `COPY … FROM STDIN`;
- anything else: SQLAlchemy → Arrow batches → the warehouse's bulk append.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Protocol

import psycopg
import pyarrow as pa
import sqlalchemy as sa
from sqlalchemy.engine import Connection
from sqlalchemy.exc import SQLAlchemyError

from crm_core.errors import CrmError, first_line
from ingestion.erp import postgres_copy, postgres_scan
from ingestion.erp.fingerprint import (
    Fingerprints,
    Totals,
    as_fingerprints,
    as_totals,
    fingerprint_sql,
    totals_sql,
)
from ingestion.erp.source import ErpSource, SourceTable
from ingestion.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    Warehouse,
    duckdb_landing,
    qualified,
    quote_ident,
)

RAW_SCHEMA = "raw"
#: DuckDB's buffer pool while the sync lands `raw` (`warehouse.duckdb_landing`): the sync's
#: peak memory then does not grow with the tables (uncapped, the cache keeps every block).
SYNC_MEMORY_LIMIT = "512MB"


def stage_tables(table: str) -> tuple[str, str]:
    """Names of the temporary key and delta tables of one ERP table."""
    return f"crm_stage_{table}__keys", f"crm_stage_{table}__delta"


@dataclass(frozen=True)
class RowFilter:
    """Which source rows an incremental step stages. `sql` is a predicate in PostgreSQL's SQL
    (the PostgreSQL paths send it to the source verbatim, so only matching rows cross the wire);
    `expr` builds the same predicate for the generic path, None when it has no equivalent there
    (the xmin cursor)."""

    sql: str
    expr: Callable[[sa.Table], sa.ColumnElement[bool]] | None


def since_filter(cursor: str, since: dt.datetime) -> RowFilter:
    """Rows stamped at or after `since` (or not stamped). `since` is a datetime we made, never
    user text."""
    column = quote_ident(cursor)
    sql = (f"{column} >= timestamptz '{since.astimezone(dt.UTC).isoformat()}' "
           f"or {column} is null")
    return RowFilter(sql, lambda t: sa.or_(t.c[cursor] >= since, t.c[cursor].is_(None)))


def sql_filter(sql: str, portable: bool) -> RowFilter:
    """A predicate we generated ourselves; `portable` when every source database reads it."""
    return RowFilter(sql, (lambda _t: sa.text(sql)) if portable else None)


class Loader(Protocol):
    #: Names the path in the sync state: a table landed by another path is reloaded in full.
    path: str

    def full(self, table: SourceTable) -> int:
        """Replace `raw.<table>` with the source table; returns rows read."""
        ...

    def stage_delta(self, table: SourceTable, rows: RowFilter) -> int:
        """(Re)fill the temporary delta table with the source rows matching; returns rows."""
        ...

    def stage_keys(self, table: SourceTable, key: str) -> int:
        """Fill the temporary key table with every source key (tables whose key is not an
        integer, which cannot be fingerprinted by range); returns rows."""
        ...

    def fingerprints(self, table: SourceTable, key: str) -> Fingerprints:
        """The source table's key-range fingerprints (`fingerprint`), computed there."""
        ...

    def totals(self, table: SourceTable, key: str) -> Totals | None:
        """The source's whole-table key totals (`fingerprint.totals_sql`), or None when
        this path does not screen with them (the generic path: SQLite's sums overflow)."""
        ...


class GenericLoader:
    """SQLAlchemy → Arrow batches → the warehouse's bulk append (SQLite, MySQL, …)."""

    path = "generic"

    def __init__(self, source: ErpSource, conn: Connection, wh: Warehouse) -> None:
        self.source, self.conn, self.wh = source, conn, wh

    def _land(self, schema: str, name: str, arrow_schema: pa.Schema,
              batches: Iterator[pa.RecordBatch]) -> int:
        self.wh.create_table(schema, name, arrow_schema)
        rows = 0
        for batch in batches:
            self.wh.append(schema, name, batch)
            rows += batch.num_rows
        return rows

    def full(self, table: SourceTable) -> int:
        return self._land(RAW_SCHEMA, table.name, table.schema,
                          self.source.batches(self.conn, table))

    def stage_delta(self, table: SourceTable, rows: RowFilter) -> int:
        if rows.expr is None:
            raise ValueError(f"{rows.sql!r} has no generic form")
        return self._land(self.wh.temp_schema, stage_tables(table.name)[1], table.schema,
                          self.source.batches(self.conn, table, where=rows.expr(table.table)))

    def stage_keys(self, table: SourceTable, key: str) -> int:
        return self._land(self.wh.temp_schema, stage_tables(table.name)[0],
                          pa.schema([table.schema.field(key)]),
                          self.source.batches(self.conn, table, columns=[key]))

    def fingerprints(self, table: SourceTable, key: str) -> Fingerprints:
        name = self.conn.dialect.identifier_preparer.format_table(table.table)
        cast = self.source.backend in ("sqlite", "postgresql", "duckdb")
        try:
            rows = self.conn.execute(sa.text(fingerprint_sql(name, key, cast))).all()
        except SQLAlchemyError as exc:
            raise CrmError(f"source table {table.name}: read failed: "
                           f"{first_line(exc.orig or exc)}") from None
        return as_fingerprints(rows)

    def totals(self, table: SourceTable, key: str) -> Totals | None:
        return None


class DuckDBScanLoader:
    """PostgreSQL → DuckDB through the attached source (`postgres_scan`)."""

    path = "postgres-duckdb"

    def __init__(self, wh: DuckDBWarehouse, source_url: str, schema: str) -> None:
        self.con, self.url, self.schema = wh.con, source_url, schema

    def full(self, table: SourceTable) -> int:
        return postgres_scan.copy_table(self.con, self.url, self.schema, table.name,
                                        RAW_SCHEMA, table.name)

    def stage_delta(self, table: SourceTable, rows: RowFilter) -> int:
        return postgres_scan.copy_table(self.con, self.url, self.schema, table.name, "temp",
                                        stage_tables(table.name)[1], where=f"where {rows.sql}")

    def stage_keys(self, table: SourceTable, key: str) -> int:
        return postgres_scan.copy_table(self.con, self.url, self.schema, table.name, "temp",
                                        stage_tables(table.name)[0], columns=[key])

    def fingerprints(self, table: SourceTable, key: str) -> Fingerprints:
        query = fingerprint_sql(qualified(self.schema, table.name), key)
        return as_fingerprints(postgres_scan.source_query(self.con, self.url, table.name, query))

    def totals(self, table: SourceTable, key: str) -> Totals | None:
        query = totals_sql(qualified(self.schema, table.name), key)
        return as_totals(postgres_scan.source_query(self.con, self.url, table.name, query)[0])


class PostgresCopyLoader:
    """PostgreSQL → PostgreSQL by piped binary COPY (`postgres_copy`)."""

    path = "postgres-postgres"

    def __init__(self, source: postgres_copy.PgSource, wh: PostgresWarehouse,
                 schema: str) -> None:
        self.source, self.wh, self.schema = source, wh, schema

    def full(self, table: SourceTable) -> int:
        return postgres_copy.copy_table(self.source, self.schema, table.name, self.wh,
                                        RAW_SCHEMA, table.name)

    def stage_delta(self, table: SourceTable, rows: RowFilter) -> int:
        # Not analyzed: the planner sizes a never-analyzed table from its pages, and the merge
        # is a hash (semi-)join either way, so an `analyze` would buy nothing.
        return postgres_copy.copy_table(self.source, self.schema, table.name, self.wh,
                                        self.wh.temp_schema, stage_tables(table.name)[1],
                                        where=f"where {rows.sql}")

    def stage_keys(self, table: SourceTable, key: str) -> int:
        temp, name = self.wh.temp_schema, stage_tables(table.name)[0]
        rows = postgres_copy.copy_table(self.source, self.schema, table.name, self.wh, temp,
                                        name, columns=[key])
        # Autovacuum never analyzes temporary tables: give the planner the size of this one
        # (every key of the table), so the anti-join that finds deletes is hashed.
        self.wh.execute(f"analyze {qualified(temp, name)}")
        return rows

    def _query(self, table: SourceTable, query: str) -> list[tuple]:
        try:
            return self.source.conn.execute(query).fetchall()
        except psycopg.Error as exc:
            raise CrmError(f"source table {table.name}: read failed: {first_line(exc)}") \
                from None

    def fingerprints(self, table: SourceTable, key: str) -> Fingerprints:
        return as_fingerprints(self._query(
            table, fingerprint_sql(qualified(self.schema, table.name), key)))

    def totals(self, table: SourceTable, key: str) -> Totals | None:
        return as_totals(self._query(
            table, totals_sql(qualified(self.schema, table.name), key))[0])


@contextmanager
def open_loader(source: ErpSource, conn: Connection, source_url: str,
                wh: Warehouse) -> Iterator[Loader]:
    """The loader for this source and warehouse, with whatever source connection it needs
    (opened read-only, named, with a statement timeout) for the duration of the block."""
    schema = source.schema or "public"
    if source.backend == "postgresql" and isinstance(wh, DuckDBWarehouse):
        with postgres_scan.attached_source(wh.con, source_url, source.statement_timeout_ms), \
                duckdb_landing(wh.con, SYNC_MEMORY_LIMIT):
            yield DuckDBScanLoader(wh, source_url, schema)
    elif source.backend == "postgresql" and isinstance(wh, PostgresWarehouse):
        with postgres_copy.source_snapshot(source_url, source.statement_timeout_ms) as pg:
            yield PostgresCopyLoader(pg, wh, schema)
    else:
        yield GenericLoader(source, conn, wh)
