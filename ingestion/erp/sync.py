"""`crm-analytics sync`: bring the warehouse schema `raw` up to date with the ERP tables.

One entry point, `sync_erp`, whatever the source and warehouse are; the path is chosen from the
URLs (`ingestion/erp/paths.py`): PostgreSQL into DuckDB through DuckDB's postgres extension,
PostgreSQL into PostgreSQL through binary COPY piped between the servers (neither makes a Python
object per row), every other pair through the generic SQLAlchemy → Arrow path, in batches.

Per table:
- **Incremental** when the table has a one-column primary key, the last sync left a state with
  the same columns, and the table has a change cursor: `updated_at` (rows stamped at or after
  `cursor - overlap`; the overlap catches rows that tie the cursor and transactions that
  committed after a later-stamped one), or, on a PostgreSQL source, the system column `xmin`
  (`ingestion/erp/xmin.py`: contacts and contact_accounts have no `updated_at`). The changed
  rows are staged in the warehouse with the path's own bulk mechanism and merged on the key
  (one `delete`, one `insert`). Hard deletes are then found by key-range fingerprints compared
  on both sides (`ingestion/erp/fingerprint.py`): only differing id ranges are copied again.
  A key that is not an integer is compared key by key instead.
- **Full** otherwise (first sync, no cursor, changed column set, missing state or table, a
  source table rewritten, vacuumed or restored since — see `xmin`). The generic path
  (SQLite, MySQL) has no xmin: tables without `updated_at` reload in full there.

Everything — data and `raw._sync_state` — is written in ONE warehouse transaction: readers see
the previous sync or this one, never a mix, and a failure anywhere leaves `raw` as it was.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import pyarrow as pa
import sqlalchemy as sa

from crm_core.errors import CrmError
from crm_core.settings import Settings
from ingestion.erp.fingerprint import (
    as_fingerprints,
    as_totals,
    differing_ranges,
    fingerprint_sql,
    ranges_sql,
    totals_sql,
)
from ingestion.erp.paths import (
    RAW_SCHEMA,
    Loader,
    RowFilter,
    open_loader,
    since_filter,
    sql_filter,
    stage_tables,
)
from ingestion.erp.schema import OPTIONAL_TABLES, build_metadata, erp_tables
from ingestion.erp.source import STATEMENT_TIMEOUT_MS, ErpSource, SourceTable, arrow_type
from ingestion.erp.state import TableState, ensure_state_table, read_states, signature, write_state
from ingestion.erp.xmin import SourcePosition, changed_since, read_position
from ingestion.warehouse import (
    PostgresWarehouse,
    Warehouse,
    qualified,
    quote_ident,
    table_names,
)

#: How far before the cursor an incremental sync looks again (CRM_SYNC_OVERLAP).
DEFAULT_OVERLAP = dt.timedelta(minutes=10)
#: PostgreSQL warehouse: memory per hash for the merge (SET LOCAL, this transaction only).
MERGE_WORK_MEM = "256MB"


@dataclass
class SyncReport:
    """What a sync did: rows in each `raw` table afterwards, how each was loaded, how long."""

    rows: dict[str, int] = field(default_factory=dict)
    seconds: float = 0.0
    absent_optional: list[str] = field(default_factory=list)
    #: table -> "full" or "incremental"
    load_kind: dict[str, str] = field(default_factory=dict)
    #: table -> rows read from the source for it (the whole table, or the delta)
    rows_read: dict[str, int] = field(default_factory=dict)
    #: table -> changed rows applied from the source's change stream without reading the
    #: table (`CRM_SYNC_MODE=cdc`)
    changes_applied: dict[str, int] = field(default_factory=dict)
    #: table -> seconds spent on it (where the time goes)
    table_seconds: dict[str, float] = field(default_factory=dict)
    #: things an operator should know although the sync succeeded (one line each)
    warnings: list[str] = field(default_factory=list)


def _empty_optional_schema(name: str) -> pa.Schema:
    """The ERD's columns of an optional table the source does not have (landed empty, so the
    dbt models can always join to it)."""
    table = build_metadata().tables[name]
    return pa.schema([pa.field(c.name, arrow_type(c.type)) for c in table.columns])


def check_staging_columns(tables: list[SourceTable]) -> None:
    """Stop before writing anything when the source lost a column the staging models read:
    every declared column (tests/dbt/test_staging_reads.py proves from the compiled dbt
    project that staging reads exactly those)."""
    declared = erp_tables()
    for table in tables:
        missing = sorted(declared[table.name].column_names - set(table.schema.names))
        if missing:
            raise CrmError(
                f"source table {table.name}: column(s) {', '.join(missing)} used by the staging "
                f"model stg_erp__{table.name} no longer exist in the source")


def sync_configured(settings: Settings, warehouse: Warehouse,
                    on_table: Callable[[int, int], None] | None = None) -> SyncReport:
    """`sync_erp` with the source, overlap and timeout of the settings (the command line and
    the Dagster asset both sync this way); `CRM_SYNC_MODE=cdc` syncs from the source's
    logical decoding instead (`ingestion/erp/cdc_sync.py`). `on_table` as in
    `sync_erp`."""
    if settings.sync_mode == "cdc":
        from ingestion.erp.cdc_sync import sync_cdc

        return sync_cdc(settings.source_url, settings.source_schema, warehouse,
                        settings.cdc_slot, timeout_ms(settings.source_statement_timeout))
    return sync_erp(settings.source_url, settings.source_schema, warehouse,
                    overlap=settings.sync_overlap,
                    statement_timeout=settings.source_statement_timeout, on_table=on_table)


def sync_erp(source_url: str, source_schema: str, warehouse: Warehouse,
             overlap: dt.timedelta = DEFAULT_OVERLAP,
             statement_timeout: dt.timedelta | None = None,
             on_table: Callable[[int, int], None] | None = None) -> SyncReport:
    """Bring `raw.<table>` up to date for every ERP table. Raises `CrmError` with one line.

    `statement_timeout` bounds every statement on the source (default `STATEMENT_TIMEOUT_MS`);
    a statement that hits it fails the sync with a line saying which timeout it was.
    `on_table(done, total)` is called after each table (a progress display)."""
    timeout = timeout_ms(statement_timeout)
    try:
        return _sync_erp(source_url, source_schema, warehouse, overlap, timeout, on_table)
    except CrmError as exc:
        if "statement timeout" not in str(exc):
            raise
        raise CrmError(f"{exc} (the source statement timeout, CRM_SOURCE_STATEMENT_TIMEOUT, "
                       f"is {timeout / 1000:g}s)") from None


def timeout_ms(statement_timeout: dt.timedelta | None) -> int:
    """The source statement timeout in milliseconds (`STATEMENT_TIMEOUT_MS` when unset)."""
    return (STATEMENT_TIMEOUT_MS if statement_timeout is None
            else max(1, int(statement_timeout.total_seconds() * 1000)))


def land_absent_optional(wh: Warehouse, report: SyncReport, synced_at: dt.datetime) -> None:
    """Land each optional table the source lacks empty, with the ERD's columns (inside the
    sync's transaction)."""
    for name in report.absent_optional:
        schema = _empty_optional_schema(name)
        wh.create_table(RAW_SCHEMA, name, schema)
        state = TableState(signature("absent", [(f.name, str(f.type)) for f in schema]), None)
        write_state(wh, RAW_SCHEMA, name, state, "full", 0, synced_at)
        report.rows[name], report.load_kind[name], report.rows_read[name] = 0, "full", 0


def _sync_erp(source_url: str, source_schema: str, warehouse: Warehouse,
              overlap: dt.timedelta, timeout_ms: int,
              on_table: Callable[[int, int], None] | None = None) -> SyncReport:
    started = time.monotonic()
    source = ErpSource(source_url, source_schema, timeout_ms)
    report = SyncReport()
    with source.snapshot() as conn:
        tables = source.tables(conn)
        check_staging_columns(tables)
        present = {t.name for t in tables}
        report.absent_optional = [t for t in OPTIONAL_TABLES if t not in present]
        # Read in the first snapshot, before any table is copied (see `xmin`).
        position = (read_position(conn, source_schema or "public", [t.name for t in tables])
                    if source.backend == "postgresql" else None)
        # Read before the source is attached: once it is, DuckDB's information_schema lists
        # the attached catalog too, a round trip to the source. Syncs of one
        # warehouse never overlap (`orchestration/run_lock.py`), so this is still the state.
        states = read_states(warehouse, RAW_SCHEMA)
        landed = table_names(warehouse, RAW_SCHEMA)
        with open_loader(source, conn, source_url, warehouse) as loader, \
                warehouse.transaction():
            if isinstance(warehouse, PostgresWarehouse):
                # The merge hashes every source key: keep that hash in memory, not on disk.
                warehouse.execute(f"set local work_mem = '{MERGE_WORK_MEM}'")
            ensure_state_table(warehouse, RAW_SCHEMA)
            synced_at = dt.datetime.now(dt.UTC)
            for table in tables:
                table_started = time.monotonic()
                kind, state, read, rows = _sync_table(
                    warehouse, loader, table,
                    states.get(table.name) if table.name in landed else None, overlap, position)
                write_state(warehouse, RAW_SCHEMA, table.name, state, kind, rows, synced_at)
                report.rows[table.name], report.load_kind[table.name] = rows, kind
                report.rows_read[table.name] = read
                report.table_seconds[table.name] = time.monotonic() - table_started
                if on_table is not None:
                    on_table(len(report.rows), len(tables))
            land_absent_optional(warehouse, report, synced_at)
    report.seconds = time.monotonic() - started
    return report


def _sync_table(wh: Warehouse, loader: Loader, table: SourceTable, state: TableState | None,
                overlap: dt.timedelta, position: SourcePosition | None
                ) -> tuple[str, TableState, int, int]:
    """Load one table, incrementally when it can be; returns (kind, new state, rows read, rows
    in `raw` now). `state` is None when there is none or `raw` lacks the table."""
    sig = signature(loader.path, table.columns())
    key = table.key
    cursor_column = erp_tables()[table.name].cursor  # declared; `updated_at` in the ERD
    has_cursor = cursor_column is not None and cursor_column in table.schema.names
    int_key = key is not None and pa.types.is_integer(table.schema.field(key).type)
    # The xmin cursor: PostgreSQL source, no `updated_at`, an integer key (deletes are then
    # found by fingerprints), and a table whose identity the source could tell.
    identity = (position.identities.get(table.name)
                if position is not None and not has_cursor and int_key else None)
    source_xmin = position.xmin if position is not None and identity is not None else None
    changes: RowFilter | None = None
    if key is not None and state is not None and state.signature == sig:
        if has_cursor and state.cursor is not None:
            changes = since_filter(cursor_column, state.cursor - overlap)
        elif (position is not None and identity is not None
              and state.source_xmin is not None and state.source_identity == identity):
            predicate = changed_since(state.source_xmin, position)
            changes = sql_filter(predicate, portable=False) if predicate else None
    if key is None or changes is None:
        read = loader.full(table)
        cursor = None
        if has_cursor:
            cursor = wh.fetchall(f"select max({quote_ident(cursor_column)}) from "
                                 f"{qualified(RAW_SCHEMA, table.name)}")[0][0]
        # A full load holds what it copied.
        return "full", TableState(sig, cursor, source_xmin, identity), read, read

    target = qualified(RAW_SCHEMA, table.name)
    keys, delta = (qualified(wh.temp_schema, name) for name in stage_tables(table.name))
    k = quote_ident(key)
    if not int_key:
        # A key that cannot be bucketed: compare every key (staged before the delta, so a row
        # inserted in between arrives with the delta and one deleted leaves next time).
        loader.stage_keys(table, key)
        wh.execute(f"delete from {target} as r where not exists "
                   f"(select 1 from {keys} as k where k.{k} = r.{k})")
        wh.execute(f"drop table {keys}")
    read = loader.stage_delta(table, changes)
    _merge(wh, table, key)
    cursor = state.cursor
    if has_cursor:
        newest = wh.fetchall(f"select max({quote_ident(cursor_column)}) from {delta}")[0][0]
        cursor = max(state.cursor, newest) if newest is not None else state.cursor
    rows = None
    if int_key:
        repaired, rows = _repair_ranges(wh, loader, table, key)
        read += repaired
    wh.execute(f"drop table {delta}")
    if rows is None:
        rows = _count(wh, table.name)
    return "incremental", TableState(sig, cursor, source_xmin, identity), read, rows


def _merge(wh: Warehouse, table: SourceTable, key: str) -> None:
    """Replace in `raw` the rows whose keys are in the staged delta by the delta's rows
    (a semi-join delete, then an insert: both warehouses plan them well)."""
    target = qualified(RAW_SCHEMA, table.name)
    delta = qualified(wh.temp_schema, stage_tables(table.name)[1])
    k = quote_ident(key)
    wh.execute(f"delete from {target} as r where exists "
               f"(select 1 from {delta} as d where d.{k} = r.{k})")
    cols = ", ".join(quote_ident(n) for n in table.schema.names)
    wh.execute(f"insert into {target} ({cols}) select {cols} from {delta}")


def _repair_ranges(wh: Warehouse, loader: Loader, table: SourceTable, key: str
                   ) -> tuple[int, int | None]:
    """Compare key-range fingerprints of the source and of `raw` (`fingerprint`) and
    replace every differing id range from the source: this is how hard deletes leave `raw`.
    Returns the source rows read for it, and the rows `raw` holds when that is known already
    (the totals' count, when nothing needed repair)."""
    target = qualified(RAW_SCHEMA, table.name)
    if not isinstance(table.table.c[key].type, sa.BigInteger):  # squares fit a bigint
        source_totals = loader.totals(table, key)
        if source_totals is not None and source_totals == as_totals(
                wh.fetchall(totals_sql(target, key))[0]):
            return 0, source_totals[0]  # same keys (count, sums): no bucket to compare
    ranges = differing_ranges(loader.fingerprints(table, key),
                              as_fingerprints(wh.fetchall(fingerprint_sql(target, key))))
    if not ranges:
        return 0, None
    predicate = ranges_sql(key, ranges)
    wh.execute(f"delete from {target} where {predicate}")
    read = loader.stage_delta(table, sql_filter(predicate, portable=True))
    cols = ", ".join(quote_ident(n) for n in table.schema.names)
    delta = qualified(wh.temp_schema, stage_tables(table.name)[1])
    wh.execute(f"insert into {target} ({cols}) select {cols} from {delta}")
    return read, None


def _count(wh: Warehouse, table: str) -> int:
    return int(wh.fetchall(f"select count(*) from {qualified(RAW_SCHEMA, table)}")[0][0])
