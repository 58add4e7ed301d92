"""`CRM_SYNC_MODE=cdc`: the sync driven by the ERP's logical decoding (`ingestion/erp/cdc_slot`).

- **First sync** (no position in the warehouse, or the slot was dropped, lost or moved past
  the warehouse): the slot is created if needed, then every table is copied in full by the
  same wire-speed paths as the default mode (`ingestion/erp/paths.py`). The copy's snapshot is
  taken after the slot exists, so every change after the slot's position is either in the copy
  or still in the slot; the position recorded is the slot's, and the changes in between are
  applied again, harmlessly, by key.
- **Later syncs** peek the slot's changes and apply the decoded rows themselves: per table,
  the text values of every change go to the warehouse as one columnar batch, the last change
  of each key wins (commit order), the changed keys leave `raw.<table>` and the surviving rows
  come back in, cast to the declared types in one statement. No ERP table is read, except the
  few rows whose last change left a TOASTed value out (PostgreSQL sends "unchanged" instead of
  the value): those are read again by key with the bulk paths. A table whose columns changed,
  or that was truncated, is copied in full; one whose change stream could not be kept whole
  (columns changed between changes, or more rows than `pgoutput.MAX_ROWS_PER_TABLE`) has its
  changed keys read back from the ERP instead.

The data, `raw._sync_state` and the applied position (`raw._cdc_state`: the source's
flushed WAL position taken before the peek, or the end of the last commit read if later) are
written in one warehouse transaction; the slot is advanced only after it commits. A crash
before the commit leaves the slot where it was (the next peek reads the same changes); a crash
after the commit and before the advance is recognised by the recorded position, and those
transactions are skipped.
"""

from __future__ import annotations

import datetime as dt
import time
from contextlib import ExitStack
from dataclasses import dataclass

import numpy as np
import psycopg
import pyarrow as pa
import pyarrow.compute as pc
import sqlalchemy as sa

from crm_core.errors import CrmError
from crm_core.urls import redact_url
from ingestion.erp.cdc_slot import (
    advance,
    cdc_connection,
    lsn_text,
    peek,
    setup,
    slot_status,
    wait_visible,
)
from ingestion.erp.paths import RAW_SCHEMA, Loader, open_postgres_loader, sql_filter, stage_tables
from ingestion.erp.pgoutput import Changes, TableChanges
from ingestion.erp.schema import OPTIONAL_TABLES, REQUIRED_TABLES, SOURCE_TABLES
from ingestion.erp.source import ErpSource, SourceTable
from ingestion.erp.state import TableState, ensure_state_table, read_states, signature, write_state
from ingestion.erp.sync import SyncReport, check_staging_columns, land_absent_optional
from ingestion.warehouse import (
    DuckDBWarehouse,
    PostgresWarehouse,
    Warehouse,
    pg_columns,
    qualified,
    quote_ident,
    table_names,
)

CDC_STATE_TABLE = "_cdc_state"
#: A table with more changed keys than this share of its rows (and than `FULL_COPY_MIN_KEYS`)
#: is copied in full instead: past that, one bulk copy costs less than reading by key.
FULL_COPY_SHARE = 0.3
FULL_COPY_MIN_KEYS = 1000


def read_position(wh: Warehouse, slot: str) -> int | None:
    """The last position the warehouse applied from `slot`, or None."""
    if not wh.table_exists(RAW_SCHEMA, CDC_STATE_TABLE):
        return None
    rows = wh.fetchall(f"select applied_lsn from {qualified(RAW_SCHEMA, CDC_STATE_TABLE)} "
                       "where slot_name = ?", (slot,))
    return int(rows[0][0]) if rows else None


def write_position(wh: Warehouse, slot: str, lsn: int, synced_at: dt.datetime) -> None:
    """Record the applied position (inside the sync's transaction)."""
    target = qualified(RAW_SCHEMA, CDC_STATE_TABLE)
    wh.execute(f"create table if not exists {target} (slot_name varchar primary key, "
               "applied_lsn bigint not null, synced_at timestamp with time zone not null)")
    wh.execute(f"delete from {target} where slot_name = ?", (slot,))
    wh.execute(f"insert into {target} values (?, ?, ?)", (slot, lsn, synced_at))


@dataclass(frozen=True)
class CatalogTable:
    """An ERP table as the source's catalog lists it: (column, type) in order, and its
    one-column primary key (None otherwise)."""

    name: str
    columns: tuple[tuple[str, str], ...]
    key: str | None

    @property
    def signature(self) -> str:
        # One signature whatever the warehouse path: a change of columns is what matters.
        return signature("cdc", [list(c) for c in self.columns])

    def source_table(self, schema: str) -> SourceTable:
        """What the by-key path needs of a `SourceTable` — the column names, the key and
        whether it is an integer — without reflecting the source through SQLAlchemy (its
        PostgreSQL dialect and reflection are most of a small sync's fixed cost)."""
        md = sa.MetaData(schema=schema)
        table = sa.Table(self.name, md, *(
            sa.Column(name, sa.types.NullType(), primary_key=name == self.key)
            for name, _ in self.columns))
        arrow = pa.schema([pa.field(name, pa.int64() if sql_type in INTEGER_TYPES
                                    else pa.string()) for name, sql_type in self.columns])
        return SourceTable(self.name, table, arrow)


INTEGER_TYPES = frozenset({"smallint", "integer", "bigint"})


def source_catalog(conn: psycopg.Connection, schema: str) -> dict[str, CatalogTable]:
    """The ERP tables present in `schema`, from one catalog query."""
    rows = conn.execute(
        "select c.relname, a.attname, format_type(a.atttypid, a.atttypmod), "
        "coalesce(a.attnum = any(i.indkey), false) "
        "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "join pg_attribute a on a.attrelid = c.oid and a.attnum > 0 and not a.attisdropped "
        "left join pg_index i on i.indrelid = c.oid and i.indisprimary "
        "where n.nspname = %s and c.relname = any(%s) and c.relkind in ('r', 'p') "
        "order by c.relname, a.attnum", [schema, list(SOURCE_TABLES)]).fetchall()
    columns: dict[str, list[tuple[str, str]]] = {}
    keys: dict[str, list[str]] = {}
    for table, column, sql_type, is_key in rows:
        columns.setdefault(table, []).append((column, sql_type))
        if is_key:
            keys.setdefault(table, []).append(column)
    return {name: CatalogTable(name, tuple(columns[name]),
                               keys[name][0] if len(keys.get(name, [])) == 1 else None)
            for name in SOURCE_TABLES if name in columns}


def sync_cdc(source_url: str, source_schema: str, warehouse: Warehouse, slot: str,
             timeout_ms: int) -> SyncReport:
    started = time.monotonic()
    schema = source_schema or "public"
    backend = _backend(source_url)
    if backend != "postgresql":
        raise CrmError(f"CRM_SYNC_MODE=cdc needs a PostgreSQL source (CRM_SOURCE_URL is "
                       f"{backend})")
    report = SyncReport()
    with cdc_connection(source_url, timeout_ms) as cdc:
        applied = read_position(warehouse, slot)
        status = slot_status(cdc, slot, schema)
        full = applied is None
        if applied is not None and (not status.exists or status.lost):
            report.warnings.append(
                f"replication slot {slot} was {'invalidated' if status.lost else 'dropped'} "
                "on the source: changes since the last sync are unknown, full resync")
            full = True
        elif (applied is not None and status.confirmed_lsn is not None
              and status.confirmed_lsn > applied):
            report.warnings.append(
                f"replication slot {slot} moved past the warehouse's position "
                f"({lsn_text(status.confirmed_lsn)} > {lsn_text(applied)}): full resync")
            full = True
        catalog = source_catalog(cdc, schema)
        states = read_states(warehouse, RAW_SCHEMA)
        landed = table_names(warehouse, RAW_SCHEMA)
        # A full load, or a table missing: reflect it as the read-only mode does (its errors
        # name what is missing); otherwise the catalog is all the by-key path needs.
        reflect = full or any(name not in catalog for name in REQUIRED_TABLES) or any(
            _needs_full(t, states, landed) for t in catalog.values())
        if reflect:
            source = ErpSource(source_url, schema, timeout_ms)
            with source.snapshot() as conn:
                tables = source.tables(conn)
        else:
            tables = [t.source_table(schema) for t in catalog.values()]
        check_staging_columns(tables)
        setup(cdc, slot, schema, [t.name for t in tables])
        status = slot_status(cdc, slot, schema)
        assert status.confirmed_lsn is not None
        position = status.confirmed_lsn
        changes = None
        if not full:
            changes = peek(cdc, slot, applied)
            position = max(changes.end_lsn or 0, changes.read_through or 0,
                           applied or 0, position)
        report.absent_optional = [t for t in OPTIONAL_TABLES if t not in catalog]
        plan = _plan(tables, catalog, states, landed, changes, full, schema)
        synced_at = dt.datetime.now(dt.UTC)
        if any(kind != "unchanged" for kind, _ in plan.values()):
            reads = _reads_source(plan, changes, schema)
            if reads and changes is not None:
                # Rows are read back by key: the decoded transactions must be visible first.
                wait_visible(cdc, changes.xids)
            with ExitStack() as stack:
                loader = (stack.enter_context(open_postgres_loader(
                    source_url, schema, timeout_ms, warehouse)) if reads else None)
                with warehouse.transaction():
                    _apply(warehouse, loader, tables, catalog, plan, changes, schema, report,
                           synced_at)
                    write_position(warehouse, slot, position, synced_at)
        elif position != applied:
            with warehouse.transaction():
                write_position(warehouse, slot, position, synced_at)
        counts = _landed_counts(warehouse)
        for name in [t.name for t in tables] + report.absent_optional:
            report.rows.setdefault(name, counts.get(name, 0))
            report.load_kind.setdefault(name, "unchanged")
            report.rows_read.setdefault(name, 0)
        if not full and changes is not None and position > (status.confirmed_lsn or 0):
            advance(cdc, slot, position)
    report.seconds = time.monotonic() - started
    return report


def _backend(source_url: str) -> str:
    try:
        return sa.make_url(source_url).get_backend_name()
    except sa.exc.ArgumentError:
        raise CrmError(f"CRM_SOURCE_URL: malformed URL {redact_url(source_url)!r}") from None


def _needs_full(table: CatalogTable, states: dict[str, TableState], landed: set[str]) -> bool:
    """Whether the table must be copied in full whatever changed: never landed, landed with
    other columns, or without a one-column key to apply changes by."""
    state = states.get(table.name) if table.name in landed else None
    return state is None or state.signature != table.signature or table.key is None


def _plan(tables: list[SourceTable], catalog: dict[str, CatalogTable],
          states: dict[str, TableState], landed: set[str], changes: Changes | None,
          full: bool, schema: str) -> dict[str, tuple[str, set[str]]]:
    """table -> ("full" | "values" | "keys" | "unchanged", changed keys): "values" applies
    the decoded rows, "keys" reads the changed keys (given only for it) back from the
    source."""
    plan: dict[str, tuple[str, set[str]]] = {}
    for table in tables:
        qualified_name = f"{schema}.{table.name}"
        decoded = changes.tables.get(qualified_name) if changes is not None else None
        if full or _needs_full(catalog[table.name], states, landed) or (
                changes is not None and qualified_name in changes.truncated):
            plan[table.name] = ("full", set())
        elif decoded is None:
            plan[table.name] = ("unchanged", set())
        elif not decoded.partial and decoded.columns == tuple(
                n for n, _ in catalog[table.name].columns):
            plan[table.name] = ("values", set())
        else:
            plan[table.name] = ("keys", decoded.keys())
    return plan


def _reads_source(plan: dict[str, tuple[str, set[str]]], changes: Changes | None,
                  schema: str) -> bool:
    """Whether applying `plan` reads any ERP table: a full copy, changed keys read back, or a
    decoded row with an unchanged TOASTed value left out."""
    for name, (kind, _) in plan.items():
        if kind in ("full", "keys"):
            return True
        if kind == "values" and changes is not None and changes.tables[
                f"{schema}.{name}"].toasted:
            return True
    return False


def _apply(wh: Warehouse, loader: Loader | None, tables: list[SourceTable],
           catalog: dict[str, CatalogTable], plan: dict[str, tuple[str, set[str]]],
           changes: Changes | None, schema: str, report: SyncReport,
           synced_at: dt.datetime) -> None:
    if isinstance(wh, PostgresWarehouse):
        wh.execute("set local work_mem = '256MB'")
    ensure_state_table(wh, RAW_SCHEMA)
    landed = _landed_counts(wh)
    for table in tables:
        kind, keys = plan[table.name]
        if kind == "unchanged":
            continue
        started = time.monotonic()
        if kind == "keys":
            total = _count(wh, table.name)
            if len(keys) > max(FULL_COPY_SHARE * total, FULL_COPY_MIN_KEYS):
                kind = "full"
        applied = 0
        if kind == "full":
            assert loader is not None
            # The copy runs at wire speed without an index to maintain; the next sync that
            # applies changes to this table builds it once.
            _drop_key_index(wh, table.name)
            read = loader.full(table)
            rows = read
        else:
            if kind == "values":
                assert changes is not None
                decoded = changes.tables[f"{schema}.{table.name}"]
                _key_index(wh, table.name, catalog[table.name].key)
                applied, removed, reread = _apply_values(wh, table.name, catalog[table.name],
                                                         decoded)
                read = _apply_keys(wh, loader, table, reread) if reread else 0
                # The rows before (recorded with them) and what this merge moved: no count
                # over the whole table.
                rows = landed[table.name] - removed + applied + read
            else:
                assert loader is not None
                read = _apply_keys(wh, loader, table, keys)
                rows = _count(wh, table.name)
            kind = "cdc"
        write_state(wh, RAW_SCHEMA, table.name, TableState(catalog[table.name].signature, None),
                    kind, rows, synced_at)
        report.rows[table.name], report.load_kind[table.name] = rows, kind
        report.rows_read[table.name] = read
        report.changes_applied[table.name] = applied
        report.table_seconds[table.name] = time.monotonic() - started
    land_absent_optional(wh, report, synced_at)


def _key_index_name(table: str) -> str:
    return f"{table}__cdc_key"


def _key_index(wh: Warehouse, table: str, key: str | None) -> None:
    """In a PostgreSQL warehouse, an index on `raw.<table>`'s key: the changed keys then leave
    the table by index lookups, a cost that follows the changes instead of a scan of the whole
    table per sync. Built by the first sync that applies changes to the table after a full
    copy (once), kept up to date by the merges after it. (DuckDB scans one key column in a
    fraction of that time.)"""
    if isinstance(wh, PostgresWarehouse) and key is not None:
        wh.execute(f"create index if not exists {quote_ident(_key_index_name(table))} "
                   f"on {qualified(RAW_SCHEMA, table)} ({quote_ident(key)})")


def _drop_key_index(wh: Warehouse, table: str) -> None:
    if isinstance(wh, PostgresWarehouse):
        wh.execute(f"drop index if exists {qualified(RAW_SCHEMA, _key_index_name(table))}")


def _raw_types(wh: Warehouse, table: str) -> dict[str, str]:
    """`raw.<table>`'s column types as the warehouse spells them in a cast."""
    if isinstance(wh, PostgresWarehouse):
        return dict(pg_columns(wh.conn, RAW_SCHEMA, table))
    return {name: data_type for name, data_type in wh.fetchall(
        "select column_name, data_type from information_schema.columns "
        "where table_schema = ? and table_name = ?", (RAW_SCHEMA, table))}


def _latest(batch: pa.Table, key: str) -> pa.Table:
    """The last change of each key (largest `__seq`) of a table's changes, in commit order.
    Picked with numpy on the few thousand changed rows before the warehouse sees them, so the
    warehouse reads one row per key; Arrow's group-by would do the same but costs tens of
    milliseconds on its first call in a process, and a sync is a fresh process."""
    codes = np.asarray(batch[key].combine_chunks().dictionary_encode().indices)
    seq = np.asarray(batch["__seq"].combine_chunks())
    order = np.lexsort((-seq, codes))  # by key, its last change first
    grouped = codes[order]
    first = np.ones(len(order), np.bool_)
    first[1:] = grouped[1:] != grouped[:-1]
    return batch.take(pa.array(np.sort(order[first])))


def _apply_values(wh: Warehouse, name: str, table: CatalogTable,
                  decoded: TableChanges) -> tuple[int, int, set[str]]:
    """Merge the decoded changes of one table into `raw`: the last change of each key wins,
    every changed key leaves the table, the surviving rows come back cast to `raw`'s types —
    two set-based statements over one columnar batch of text values. Returns the rows
    inserted, the rows removed and the keys whose last change lacks an unchanged TOASTed
    value (to be read back from the source)."""
    assert table.key is not None
    columns = [n for n, _ in table.columns]
    k = f"c{columns.index(table.key)}"
    types = _raw_types(wh, name)
    latest = _latest(decoded.table(), k)
    stage = f"crm_cdc_{name}__latest"
    if isinstance(wh, DuckDBWarehouse):
        # DuckDB reads the Arrow batch in place.
        wh.con.register(stage, latest)
        stage_table = quote_ident(stage)
    else:
        wh.create_table(wh.temp_schema, stage, latest.schema)
        wh.append(wh.temp_schema, stage, latest)
        stage_table = qualified(wh.temp_schema, stage)
    target = qualified(RAW_SCHEMA, name)
    key = quote_ident(table.key)
    key_type = types[table.key]
    if isinstance(wh, PostgresWarehouse):
        # `= any(array(…))` probes the key index (`_key_index`) once per changed key; a join
        # would be planned as a hash join over a scan of the whole table.
        removed = _rowcount(wh, f"delete from {target} where {key} = any(array("
                                f"select cast({k} as {key_type}) from {stage_table}))")
    else:
        removed = _rowcount(wh, f"delete from {target} where {key} in "
                                f"(select cast({k} as {key_type}) from {stage_table})")
    casts = ", ".join(f"cast(c{i} as {types[c]})" for i, c in enumerate(columns))
    wh.execute(f"insert into {target} ({', '.join(quote_ident(c) for c in columns)}) "
               f"select {casts} from {stage_table} where __op <> 'D' and not __toasted")
    if isinstance(wh, DuckDBWarehouse):
        wh.con.unregister(stage)
    else:
        wh.execute(f"drop table {stage_table}")
    kept = pc.not_equal(latest["__op"], "D")
    toasted = pc.and_(kept, latest["__toasted"])
    inserted = pc.sum(pc.and_not(kept, latest["__toasted"])).as_py() or 0
    reread = set(latest[k].filter(toasted).to_pylist())
    return inserted, removed, reread


def _rowcount(wh: Warehouse, statement: str) -> int:
    """Run a DELETE and return the rows it removed."""
    if isinstance(wh, PostgresWarehouse):
        return wh.conn.execute(statement).rowcount
    assert isinstance(wh, DuckDBWarehouse)
    return int(wh.con.execute(statement).fetchone()[0])


def _apply_keys(wh: Warehouse, loader: Loader | None, table: SourceTable, keys: set[str]
                ) -> int:
    """Replace the rows of `keys` in `raw` by what the source holds for them now (nothing, for
    a deleted row). Returns the rows read from the source."""
    assert loader is not None
    key = table.key
    assert key is not None
    target = qualified(RAW_SCHEMA, table.name)
    keys_name, delta_name = stage_tables(table.name)
    keys_table = qualified(wh.temp_schema, keys_name)
    k = quote_ident(key)
    is_int = pa.types.is_integer(table.schema.field(key).type)
    if is_int:
        values = pa.array(sorted(int(v) for v in keys), pa.int64())
        predicate = f"{k} = any('{{{','.join(str(v) for v in values.to_pylist())}}}'::bigint[])"
        match = f"k.{k} = r.{k}"
    else:
        values = pa.array(sorted(keys), pa.string())
        literals = ", ".join("'" + v.replace("'", "''") + "'" for v in values.to_pylist())
        predicate = f"{k}::text = any(array[{literals}]::text[])"
        match = f"k.{k} = cast(r.{k} as varchar)"
    if is_int:
        # The keys as one list literal (integers we parsed: nothing to escape), unnested by
        # the warehouse: no Arrow hand-over for a few thousand numbers.
        listed = ",".join(str(v) for v in values.to_pylist())
        array = (f"'{{{listed}}}'::bigint[]" if isinstance(wh, PostgresWarehouse)
                 else f"cast(string_split('{listed}', ',') as bigint[])")
        wh.execute(f"drop table if exists {keys_table}")
        wh.execute(f"create temporary table {quote_ident(keys_name)} as "
                   f"select unnest({array}) as {k}")
    else:
        wh.create_table(wh.temp_schema, keys_name, pa.schema([pa.field(key, values.type)]))
        wh.append(wh.temp_schema, keys_name, pa.table({key: values}))
    wh.execute(f"delete from {target} as r where exists (select 1 from {keys_table} as k "
               f"where {match})")
    read = loader.stage_delta(table, sql_filter(predicate, portable=False))
    cols = ", ".join(quote_ident(n) for n in table.schema.names)
    delta = qualified(wh.temp_schema, delta_name)
    wh.execute(f"insert into {target} ({cols}) select {cols} from {delta}")
    wh.execute(f"drop table {delta}")
    wh.execute(f"drop table {keys_table}")
    return read


def _landed_counts(wh: Warehouse) -> dict[str, int]:
    """Rows in each `raw` table, as the sync state recorded them (written with the data)."""
    return {name: int(rows) for name, rows in wh.fetchall(
        f"select table_name, row_count from {qualified(RAW_SCHEMA, '_sync_state')}")}


def _count(wh: Warehouse, table: str) -> int:
    return int(wh.fetchall(f"select count(*) from {qualified(RAW_SCHEMA, table)}")[0][0])
