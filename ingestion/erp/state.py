"""The sync's memory, kept in the warehouse beside the data it describes: `raw._sync_state`.

One row per ERP table: the column signature the table was last landed with, the cursor (the
largest `updated_at` landed so far), for a PostgreSQL table without `updated_at` the source's
snapshot xmin and the table's identity (`ingestion/erp/xmin.py`), how it was loaded and how
many rows it holds. It is written
in the same transaction as the data, so the state can never claim rows that did not commit — a
failed sync leaves both as they were, and the next one starts from the last good state.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass

from ingestion.warehouse import Warehouse, qualified, quote_ident

STATE_TABLE = "_sync_state"


@dataclass(frozen=True)
class TableState:
    """What the last successful sync left for one table."""

    signature: str
    cursor: dt.datetime | None
    #: PostgreSQL source, table without `updated_at`: the snapshot xmin (64-bit) of that sync
    source_xmin: int | None = None
    #: … and the table's identity then (oid, file node, vacuums, …): any change → full reload
    source_identity: str | None = None


def signature(path: str, columns: list[tuple[str, str]]) -> str:
    """A stable text naming the sync path and the source's columns (name and type, in order):
    any difference means the landed table may not match, so the table is reloaded in full."""
    return json.dumps({"path": path, "columns": columns}, separators=(",", ":"))


def ensure_state_table(wh: Warehouse, schema: str) -> None:
    wh.execute(f"create schema if not exists {quote_ident(schema)}")
    wh.execute(
        f"create table if not exists {qualified(schema, STATE_TABLE)} ("
        "table_name varchar primary key, column_signature varchar not null, "
        "cursor_at timestamp with time zone, load_kind varchar not null, "
        "row_count bigint not null, synced_at timestamp with time zone not null)"
    )
    # Columns added after the first release: a state table made before gains them (NULL).
    for column, sql_type in (("source_xmin", "bigint"), ("source_identity", "varchar")):
        wh.execute(f"alter table {qualified(schema, STATE_TABLE)} add column if not exists "
                   f"{column} {sql_type}")


def read_states(wh: Warehouse, schema: str) -> dict[str, TableState]:
    """Every table's state; empty when there is none yet (the first sync loads in full)."""
    if not wh.table_exists(schema, STATE_TABLE):
        return {}
    columns = {r[0] for r in wh.fetchall(
        "select column_name from information_schema.columns where table_schema = ? "
        "and table_name = ?", (schema, STATE_TABLE))}
    extra = ("source_xmin, source_identity" if "source_xmin" in columns
             else "null, null")
    rows = wh.fetchall(f"select table_name, column_signature, cursor_at, {extra} "
                       f"from {qualified(schema, STATE_TABLE)}")
    return {name: TableState(sig, cursor, None if xmin is None else int(xmin), identity)
            for name, sig, cursor, xmin, identity in rows}


def write_state(wh: Warehouse, schema: str, table: str, state: TableState, load_kind: str,
                row_count: int, synced_at: dt.datetime) -> None:
    """Replace one table's state (call inside the sync's transaction)."""
    target = qualified(schema, STATE_TABLE)
    wh.execute(f"delete from {target} where table_name = ?", (table,))
    wh.execute(
        f"insert into {target} (table_name, column_signature, cursor_at, load_kind, row_count, "
        "synced_at, source_xmin, source_identity) values (?, ?, ?, ?, ?, ?, ?, ?)",
        (table, state.signature, state.cursor, load_kind, row_count, synced_at,
         state.source_xmin, state.source_identity),
    )
