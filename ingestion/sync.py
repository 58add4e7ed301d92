"""`crm-analytics sync`: copy the ERP tables into the warehouse schema `raw`.

One entry point, `sync_erp`, whatever the source and warehouse are; the path is chosen from the
URLs. PostgreSQL into DuckDB goes through DuckDB's postgres extension, PostgreSQL into PostgreSQL
through binary COPY piped between the servers (neither makes a Python object per row); every other
pair through the generic SQLAlchemy → Arrow path, in batches. Every table is
reloaded in full (incremental sync is still to come). All tables are replaced in one warehouse
transaction: readers see the previous sync or this one, never a mix, and a failure anywhere
leaves `raw` as it was.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import pyarrow as pa

from ingestion import postgres_copy
from ingestion.erp_schema import OPTIONAL_TABLES, build_metadata
from ingestion.postgres_scan import attached_source, copy_tables
from ingestion.source import ErpSource, arrow_type
from ingestion.warehouse import DuckDBWarehouse, PostgresWarehouse, Warehouse, replace_tables

RAW_SCHEMA = "raw"


@dataclass
class SyncReport:
    """What a sync did: rows landed per table, and how long it took."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    absent_optional: list[str] = field(default_factory=list)


def _empty_optional_schema(name: str) -> pa.Schema:
    """The ERD's columns of an optional table the source does not have (landed empty, so the
    dbt models can always join to it)."""
    table = build_metadata().tables[name]
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])


def sync_erp(source_url: str, source_schema: str, warehouse: Warehouse) -> SyncReport:
    """Replace `raw.<table>` for every ERP table. Raises `CrmError` with one clear line."""
    started = time.monotonic()
    source = ErpSource(source_url, source_schema)
    report = SyncReport()
    with source.snapshot() as conn:
        tables = source.tables(conn)
        present = {t.name for t in tables}
        report.absent_optional = [t for t in OPTIONAL_TABLES if t not in present]

        def plan() -> Iterator[tuple[str, pa.Schema, Iterator[pa.RecordBatch]]]:
            for table in tables:
                yield table.name, table.schema, source.batches(conn, table)
            for name in report.absent_optional:
                yield name, _empty_optional_schema(name), iter(())

        if source.backend == "postgresql" and isinstance(warehouse, DuckDBWarehouse):
            # PostgreSQL → DuckDB at wire speed, same transaction rules.
            with attached_source(warehouse.con, source_url), warehouse.transaction():
                report.rows = copy_tables(warehouse.con, source_url, source.schema or "public",
                                          [t.name for t in tables], RAW_SCHEMA)
                for name in report.absent_optional:
                    warehouse.create_table(RAW_SCHEMA, name, _empty_optional_schema(name))
                    report.rows[name] = 0
        elif source.backend == "postgresql" and isinstance(warehouse, PostgresWarehouse):
            # PostgreSQL → PostgreSQL: binary COPY piped from one server to the other.
            with postgres_copy.source_snapshot(source_url) as pg, warehouse.transaction():
                report.rows = postgres_copy.copy_tables(
                    pg, source.schema or "public", [t.name for t in tables], warehouse,
                    RAW_SCHEMA)
                for name in report.absent_optional:
                    warehouse.create_table(RAW_SCHEMA, name, _empty_optional_schema(name))
                    report.rows[name] = 0
        else:
            report.rows = replace_tables(warehouse, RAW_SCHEMA, plan())
    report.seconds = time.monotonic() - started
    return report
