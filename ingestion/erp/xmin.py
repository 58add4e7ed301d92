"""A change cursor for PostgreSQL tables that have no `updated_at` (contacts, contact_accounts):
the system column `xmin`, the id of the transaction that wrote each row version.

Each sync records its source snapshot's xmin X, 64-bit
(`pg_snapshot_xmin(pg_current_snapshot())`): every transaction with an id below X had ended when
that snapshot was taken, so every row version they wrote that is still alive was visible to the
sync and is already in `raw`. The next sync
therefore copies only the rows whose xmin is X or newer, and merges them on the primary key
(deletes are found by `fingerprint`).

Why the comparison is safe:
- Row xmins are 32-bit and wrap around; the comparison is done by the server in one statement,
  `age(xmin) <= age('<X mod 2^32>'::xid)`, both ages taken from the same "latest xid" of the
  reading transaction, so a row written at X or later always passes, whatever moment that
  read-only transaction calls "now". This holds while fewer than 2^31 ids separate X from now:
  beyond `XID_HORIZON` (or when X is in the future: the source was restored or replaced) the
  table is reloaded in full.
- X is read in the sync's first source snapshot, before any table is copied: the data is read
  in that snapshot or a newer one, so it holds every row below X; reading X earlier than the data
  can only over-select next time, which the merge absorbs.
- Freezing does not hide a row: since PostgreSQL 9.4 a frozen row keeps its raw xmin, and the
  `xmin` column shows it (tests/ingestion/erp/test_sync_ranges.py checks the frozen bit with
  pageinspect).
  An xmin from more than 2^31 ids ago reads with a negative age and is left out
  (`age(xmin) >= 0`), so old frozen rows are not re-read after the counter wraps.
- Each table's identity (its oid and file node, the database oid, the cluster's system
  identifier when the role may read it) is saved too: a table rewritten (VACUUM FULL, CLUSTER,
  TRUNCATE), dropped and re-created, or a source restored elsewhere reloads in full.
"""

from __future__ import annotations

from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.engine import Connection

#: The largest distance, in transaction ids, between the saved xmin and now for which the 32-bit
#: `age` comparison is used (2^31 minus a margin for transactions started while the sync runs).
XID_HORIZON = 2**31 - 2**24


@dataclass(frozen=True)
class SourcePosition:
    """Where the source stood at the start of this sync."""

    #: xmin of the snapshot, 64-bit (the epoch included)
    xmin: int
    #: xmax of the snapshot (the next xid), 64-bit
    xmax: int
    #: table -> identity text (see the module docstring); absent when it cannot be known
    identities: dict[str, str]


def read_position(conn: Connection, schema: str, tables: list[str]) -> SourcePosition:
    """The source's position and table identities, read in the sync's first snapshot."""
    xmin, xmax, db_oid = conn.execute(sa.text(
        "select pg_snapshot_xmin(pg_current_snapshot())::text::bigint, "
        "pg_snapshot_xmax(pg_current_snapshot())::text::bigint, "
        "(select oid from pg_database where datname = current_database())")).one()
    system = ""
    if conn.execute(sa.text(
            "select has_function_privilege('pg_control_system()', 'execute')")).scalar():
        system = str(conn.execute(sa.text(
            "select system_identifier from pg_control_system()")).scalar())
    rows = conn.execute(sa.text(
        "select c.relname, c.oid, c.relfilenode from pg_class c "
        "join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = :schema and c.relname = any(:names)"),
        {"schema": schema, "names": tables}).all()
    identities = {name: f"{system}/{db_oid}/{oid}/{node}" for name, oid, node in rows}
    return SourcePosition(int(xmin), int(xmax), identities)


def changed_since(saved_xmin: int, now: SourcePosition) -> str | None:
    """The PostgreSQL predicate selecting the row versions written at or after `saved_xmin`,
    or None when the distance is not safe to compare (restored source, or ≥ 2^31 ids)."""
    if saved_xmin > now.xmax or now.xmax - saved_xmin > XID_HORIZON:
        return None
    # 0, 1 and 2 are not normal xids (64-bit counters skip them): start a little earlier.
    low = saved_xmin if saved_xmin % 2**32 >= 3 else saved_xmin - 3
    return f"age(xmin) >= 0 and age(xmin) <= age('{low % 2**32}'::xid)"
