"""The three ways ERP rows reach the warehouse, behind one small interface.

A `Loader` does two things for `ingestion.sync`: replace `raw.<table>` with the whole source
table (`full`), or stage what an incremental merge needs (`stage`): the source's primary keys
(only the key column is read) into the temporary table `crm_stage_<table>__keys`, and the rows
stamped at or after a moment into `crm_stage_<table>__delta` (session-private, so no reader
ever sees them; see `stage_tables`). The merge itself is plain SQL, the same on
every path. Each path moves rows with its own bulk mechanism, so there is no Python per row on
the PostgreSQL paths:

- PostgreSQL → DuckDB: DuckDB's postgres extension (binary COPY into DuckDB tables);
- PostgreSQL → PostgreSQL: `COPY … TO STDOUT (FORMAT binary)` piped into `COPY … FROM STDIN`;
- anything else: SQLAlchemy → Arrow batches → the warehouse's bulk append.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Protocol

import psycopg
import pyarrow as pa
from sqlalchemy.engine import Connection

from ingestion import postgres_copy, postgres_scan
from ingestion.source import ErpSource, SourceTable
from ingestion.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    Warehouse,
    qualified,
    quote_ident,
)

RAW_SCHEMA = "raw"


def stage_tables(table: str) -> tuple[str, str]:
    """Names of the temporary key and delta tables of one ERP table."""
    return f"crm_stage_{table}__keys", f"crm_stage_{table}__delta"


class Loader(Protocol):
    #: Names the path in the sync state: a table landed by another path is reloaded in full.
    path: str

    def full(self, table: SourceTable) -> int:
        """Replace `raw.<table>` with the source table; returns rows read."""
        ...

    def stage(self, table: SourceTable, key: str, cursor: str, since: dt.datetime) -> int:
        """Stage the keys and the delta (`cursor >= since` or NULL); returns delta rows."""
        ...


def _since_filter(cursor: str, since: dt.datetime) -> str:
    """SQL both PostgreSQL and DuckDB read; `since` is a datetime we made, never user text."""
    column = quote_ident(cursor)
    return (f"where {column} >= timestamptz '{since.astimezone(dt.UTC).isoformat()}' "
            f"or {column} is null")


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

    def stage(self, table: SourceTable, key: str, cursor: str, since: dt.datetime) -> int:
        keys, delta = stage_tables(table.name)
        temp = self.wh.temp_schema
        self._land(temp, keys, pa.schema([table.schema.field(key)]),
                   self.source.batches(self.conn, table, columns=[key]))
        return self._land(temp, delta, table.schema,
                          self.source.batches(self.conn, table, since=(cursor, since)))


class DuckDBScanLoader:
    """PostgreSQL → DuckDB through the attached source (`postgres_scan`)."""

    path = "postgres-duckdb"

    def __init__(self, wh: DuckDBWarehouse, source_url: str, schema: str) -> None:
        self.con, self.url, self.schema = wh.con, source_url, schema

    def full(self, table: SourceTable) -> int:
        return postgres_scan.copy_table(self.con, self.url, self.schema, table.name,
                                        RAW_SCHEMA, table.name)

    def stage(self, table: SourceTable, key: str, cursor: str, since: dt.datetime) -> int:
        # Keys first, then the delta: should the two reads see different moments, a row
        # inserted in between arrives with the delta, and one deleted in between leaves at the
        # next sync — never a lost row.
        keys, delta = stage_tables(table.name)
        postgres_scan.copy_table(self.con, self.url, self.schema, table.name, "temp", keys,
                                 columns=[key])
        return postgres_scan.copy_table(self.con, self.url, self.schema, table.name, "temp",
                                        delta, where=_since_filter(cursor, since))


class PostgresCopyLoader:
    """PostgreSQL → PostgreSQL by piped binary COPY (`postgres_copy`)."""

    path = "postgres-postgres"

    def __init__(self, source: psycopg.Connection, wh: PostgresWarehouse, schema: str) -> None:
        self.source, self.wh, self.schema = source, wh, schema

    def full(self, table: SourceTable) -> int:
        return postgres_copy.copy_table(self.source, self.schema, table.name, self.wh,
                                        RAW_SCHEMA, table.name)

    def stage(self, table: SourceTable, key: str, cursor: str, since: dt.datetime) -> int:
        keys, delta = stage_tables(table.name)
        temp = self.wh.temp_schema
        postgres_copy.copy_table(self.source, self.schema, table.name, self.wh, temp, keys,
                                 columns=[key])
        rows = postgres_copy.copy_table(self.source, self.schema, table.name, self.wh, temp,
                                        delta, where=_since_filter(cursor, since))
        # Autovacuum never analyzes temporary tables: give the planner their sizes, so the
        # merge's deletes become hash anti- and semi-joins.
        self.wh.execute(f"analyze {qualified(temp, keys)}, {qualified(temp, delta)}")
        return rows


@contextmanager
def open_loader(source: ErpSource, conn: Connection, source_url: str,
                wh: Warehouse) -> Iterator[Loader]:
    """The loader for this source and warehouse, with whatever source connection it needs
    (opened read-only, named, with a statement timeout) for the duration of the block."""
    schema = source.schema or "public"
    if source.backend == "postgresql" and isinstance(wh, DuckDBWarehouse):
        with postgres_scan.attached_source(wh.con, source_url, source.statement_timeout_ms):
            yield DuckDBScanLoader(wh, source_url, schema)
    elif source.backend == "postgresql" and isinstance(wh, PostgresWarehouse):
        with postgres_copy.source_snapshot(source_url, source.statement_timeout_ms) as pg:
            yield PostgresCopyLoader(pg, wh, schema)
    else:
        yield GenericLoader(source, conn, wh)
