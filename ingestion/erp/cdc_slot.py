"""The source side of change data capture: the publication and the logical replication slot
the pipeline owns on the ERP's PostgreSQL database, and reading the slot's changes.

Everything goes through an ordinary connection (psycopg has no replication protocol): the
changes are *peeked* with `pg_logical_slot_peek_binary_changes` and the `pgoutput` plugin
built into PostgreSQL — nothing for the ERP to install — and the slot is moved on with
`pg_replication_slot_advance` only after the warehouse has committed what was read. A peek is
repeatable, so a sync that dies before the advance reads the same changes again.

The publication and the slot share one name (`CRM_CDC_SLOT`). Creating the publication needs
CREATE on the database and ownership of the tables; the slot needs the REPLICATION attribute.
The sync (or `crm-analytics cdc setup`) checks these first and names the one that is missing.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from crm_core.errors import CrmError, first_line, redacted_line
from ingestion.erp.pgoutput import Changes, Decoder
from ingestion.erp.postgres_scan import source_conninfo
from ingestion.erp.source import STATEMENT_TIMEOUT_MS

#: Messages fetched per round trip while a peek is read, and decoded together: enough for
#: the decoder's few numpy steps per column to be spread over many messages (5,000–50,000
#: decode equally fast), few enough to hold one batch's raw messages at a time.
PEEK_BATCH = 10_000
#: Fetched batches waiting for the decoder at most.
PEEK_AHEAD = 2


def lsn_int(text: str) -> int:
    """`16/B374D848` as a number."""
    high, _, low = text.partition("/")
    return (int(high, 16) << 32) + int(low, 16)


def lsn_text(value: int) -> str:
    return f"{value >> 32:X}/{value & 0xFFFFFFFF:X}"


@dataclass(frozen=True)
class SlotStatus:
    slot: str
    #: the slot exists (in this database)
    exists: bool
    #: PostgreSQL invalidated it (`wal_status = 'lost'`, e.g. `max_slot_wal_keep_size`)
    lost: bool
    #: where the next peek starts (what was last confirmed)
    confirmed_lsn: int | None
    #: WAL the slot keeps on the source's disk (bytes), from its restart position
    retained_bytes: int | None
    publication: bool
    #: tables in the publication (`schema.name`)
    tables: tuple[str, ...]
    active: bool = False


@contextmanager
def cdc_connection(source_url: str, timeout_ms: int = STATEMENT_TIMEOUT_MS
                   ) -> Iterator[psycopg.Connection]:
    """A connection for the slot's functions: like every source session it is named and has
    the statement timeout, but it is not read-only (creating and advancing a slot write)."""
    params = conninfo_to_dict(source_conninfo(source_url, timeout_ms))
    password = params.get("password")
    # The decoded values are written by the output functions of this session: fixed settings
    # make their text what the warehouse parses back exactly (ISO dates, UTC offsets, floats
    # with every digit).
    params["options"] = (f"-c statement_timeout={timeout_ms} -c TimeZone=UTC -c DateStyle=ISO "
                         "-c IntervalStyle=postgres -c extra_float_digits=3")
    try:
        conn = psycopg.connect(make_conninfo(**params), autocommit=True, connect_timeout=10)
    except psycopg.Error as exc:
        raise CrmError(f"source is unreachable: {redacted_line(exc, password)}") from None
    try:
        yield conn
    finally:
        conn.close()


def slot_status(conn: psycopg.Connection, slot: str, schema: str) -> SlotStatus:
    row = conn.execute(
        "select confirmed_flush_lsn::text, coalesce(wal_status, ''), active, "
        "pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
        "coalesce(database, ''), current_database(), plugin "
        "from pg_replication_slots where slot_name = %s", [slot]).fetchone()
    if row is not None and (row[4], row[6]) != (row[5], "pgoutput"):
        # Slot names are per server, not per database.
        raise CrmError(f"replication slot {slot} already exists on the source for another "
                       f"database or plugin ({row[4] or 'physical'}, {row[6]}): set "
                       "CRM_CDC_SLOT to another name")
    tables = tuple(f"{s}.{t}" for s, t in conn.execute(
        "select schemaname, tablename from pg_publication_tables where pubname = %s "
        "order by 1, 2", [slot]).fetchall())
    publication = conn.execute("select 1 from pg_publication where pubname = %s",
                               [slot]).fetchone() is not None
    if row is None:
        return SlotStatus(slot, False, False, None, None, publication, tables)
    confirmed, wal_status, active, retained = row[:4]
    return SlotStatus(slot, True, wal_status == "lost" or confirmed is None,
                      lsn_int(confirmed) if confirmed else None,
                      None if retained is None else int(retained), publication, tables,
                      bool(active))


def _missing_privileges(conn: psycopg.Connection, schema: str, tables: list[str],
                        need_publication: bool, need_slot: bool) -> list[str]:
    """What the connected role lacks for setup, each named the way a DBA grants it."""
    user, db, replication, create, superuser = conn.execute(
        "select current_user, current_database(), r.rolreplication, "
        "has_database_privilege(current_database(), 'CREATE'), r.rolsuper "
        "from pg_roles r where r.rolname = current_user").fetchone()
    if superuser:
        return []
    missing = []
    if need_slot and not replication:
        missing.append(f"the REPLICATION attribute (ALTER ROLE {user} REPLICATION) for the "
                       "replication slot")
    if need_publication:
        if not create:
            missing.append(f"CREATE on database {db} for the publication")
        not_owned = [name for (name,) in conn.execute(
            "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname = %s and c.relname = any(%s) "
            "and not pg_has_role(c.relowner, 'USAGE') order by 1", [schema, tables]).fetchall()]
        if not_owned:
            missing.append(f"ownership of table(s) {', '.join(not_owned)} for the publication")
    return missing


def _require_logical(conn: psycopg.Connection) -> None:
    level = conn.execute("show wal_level").fetchone()[0]
    if level != "logical":
        raise CrmError(f"CRM_SYNC_MODE=cdc needs wal_level = logical on the source (it is "
                       f"{level}; changing it restarts the server)")


def _require_keys(conn: psycopg.Connection, schema: str, tables: list[str]) -> None:
    """A published table without a replica identity makes the ERP's own UPDATEs and DELETEs
    fail: refuse before publishing one."""
    bare = [name for (name,) in conn.execute(
        "select c.relname from pg_class c join pg_namespace n on n.oid = c.relnamespace "
        "where n.nspname = %s and c.relname = any(%s) and (c.relreplident = 'n' or "
        "(c.relreplident = 'd' and not exists (select 1 from pg_index i where "
        "i.indrelid = c.oid and i.indisprimary))) order by 1", [schema, tables]).fetchall()]
    if bare:
        raise CrmError(f"cdc: table(s) {', '.join(bare)} have no primary key (replica "
                       "identity): publishing them would make the ERP's updates fail")


def setup(conn: psycopg.Connection, slot: str, schema: str, tables: list[str]) -> list[str]:
    """Create (or complete) the publication on `tables` and the slot; returns what was done.
    Raises `CrmError` naming the missing privilege when the role cannot."""
    _require_logical(conn)
    status = slot_status(conn, slot, schema)
    wanted = [f"{schema}.{t}" for t in tables]
    missing_tables = [t for t in wanted if t not in status.tables]
    missing = _missing_privileges(conn, schema, tables,
                                  need_publication=bool(missing_tables),
                                  need_slot=not status.exists or status.lost)
    if missing:
        user = conn.execute("select current_user").fetchone()[0]
        raise CrmError(f"cdc setup: role {user} lacks {'; '.join(missing)}")
    _require_keys(conn, schema, tables)
    done = []
    try:
        names = sql.SQL(", ").join(sql.Identifier(schema, t) for t in tables
                                   if f"{schema}.{t}" in missing_tables)
        if not status.publication:
            conn.execute(sql.SQL("create publication {} for table {}").format(
                sql.Identifier(slot), names))
            done.append(f"created publication {slot} on {len(tables)} tables")
        elif missing_tables:
            conn.execute(sql.SQL("alter publication {} add table {}").format(
                sql.Identifier(slot), names))
            done.append(f"added {len(missing_tables)} table(s) to publication {slot}")
        if status.lost:
            conn.execute("select pg_drop_replication_slot(%s)", [slot])
            done.append(f"dropped invalidated slot {slot}")
        if not status.exists or status.lost:
            lsn = conn.execute("select lsn::text from pg_create_logical_replication_slot(%s, "
                               "'pgoutput')", [slot]).fetchone()[0]
            done.append(f"created replication slot {slot} at {lsn}")
    except psycopg.errors.InsufficientPrivilege as exc:
        raise CrmError(f"cdc setup: {first_line(exc)}") from None
    except psycopg.Error as exc:
        raise CrmError(f"cdc setup failed: {first_line(exc)}") from None
    return done


def drop(conn: psycopg.Connection, slot: str, schema: str) -> list[str]:
    """Drop the slot (the source then stops keeping WAL for it) and the publication."""
    status = slot_status(conn, slot, schema)
    done = []
    try:
        if status.exists:
            if status.active:
                raise CrmError(f"cdc drop: slot {slot} is in use by a running sync")
            conn.execute("select pg_drop_replication_slot(%s)", [slot])
            done.append(f"dropped replication slot {slot}")
        if status.publication:
            conn.execute(sql.SQL("drop publication {}").format(sql.Identifier(slot)))
            done.append(f"dropped publication {slot}")
    except psycopg.errors.InsufficientPrivilege as exc:
        user = conn.execute("select current_user").fetchone()[0]
        what = ("the REPLICATION attribute" if "replication" in str(exc).lower()
                else f"ownership of publication {slot}")
        raise CrmError(f"cdc drop: role {user} lacks {what} ({first_line(exc)})") from None
    except psycopg.Error as exc:
        raise CrmError(f"cdc drop failed: {first_line(exc)}") from None
    return done


def peek(conn: psycopg.Connection, slot: str, skip_through: int | None) -> Changes:
    """Every change the slot holds, decoded (not consumed). Transactions that committed
    before `skip_through` — already in the warehouse — are left out.

    `Changes.read_through` is the source's flushed WAL position taken before the peek: the
    peek decodes every record that starts before the end of the WAL it finds, so every
    commit before that position is in it (PostgreSQL's `pg_logical_slot_get_changes_guts`
    reads on while the last record read ends before that end, waiting for a record's flush).
    Confirming up to there moves the slot past WAL the ERP wrote outside the publication,
    which no decoded commit would reach.

    The server decodes its WAL while this side decodes the messages already fetched: batches
    are decoded in order in one thread while the next is fetched (psycopg waits on the
    socket without the GIL), at most `PEEK_AHEAD` batches ahead, so memory stays bounded."""
    decoder = Decoder(skip_through)
    pending: deque[Future[None]] = deque()
    pool = ThreadPoolExecutor(max_workers=1)
    try:
        (read_through,) = conn.execute(
            "select case when pg_is_in_recovery() then pg_last_wal_replay_lsn() "
            "else pg_current_wal_flush_lsn() end::text").fetchone()
        with conn.transaction(), conn.cursor(name="crm_cdc_peek", binary=True) as cur:
            cur.execute("select data from pg_logical_slot_peek_binary_changes(%s, null, null, "
                        "'proto_version', '1', 'publication_names', %s)", [slot, slot])
            while rows := cur.fetchmany(PEEK_BATCH):
                if len(pending) >= PEEK_AHEAD:
                    pending.popleft().result()
                pending.append(pool.submit(decoder.feed, [data for (data,) in rows]))
            while pending:
                pending.popleft().result()
    except psycopg.Error as exc:
        raise CrmError(f"cdc: reading slot {slot} failed: {first_line(exc)}") from None
    finally:
        # A failed decode or fetch: the batches not started are dropped, not decoded.
        pool.shutdown(cancel_futures=True)
    decoder.changes.read_through = lsn_int(read_through)
    return decoder.changes


def wait_visible(conn: psycopg.Connection, xids: set[int], attempts: int = 200) -> None:
    """Wait until every transaction in `xids` is visible to a new snapshot. A commit is in the
    WAL (and decodable) a moment before other sessions see it; the changed rows are re-read in
    a snapshot taken after this returns, which must include them."""
    import time

    for _ in range(attempts):
        xmin, xmax, xip = conn.execute("select pg_snapshot_xmin(s)::text, "
                                       "pg_snapshot_xmax(s)::text, "
                                       "array(select pg_snapshot_xip(s)::text) "
                                       "from pg_current_snapshot() s").fetchone()
        del xmin
        pending = {int(x) & 0xFFFFFFFF for x in xip}
        top = int(xmax) & 0xFFFFFFFF
        if not any(x in pending or ((x - top) & 0xFFFFFFFF) < 1 << 31 for x in xids):
            return
        time.sleep(0.01)
    raise CrmError("cdc: decoded transactions did not become visible on the source")


def advance(conn: psycopg.Connection, slot: str, lsn: int) -> None:
    """Confirm everything up to `lsn` (call only after the warehouse committed it).

    Twice, for the slot's restart point (where a peek starts decoding, and the WAL the ERP
    keeps). The first call confirms `lsn` but moves the restart point only to the first
    record of running transactions after the position confirmed before: PostgreSQL keeps one
    candidate at a time while a position is unconfirmed
    (`LogicalIncreaseRestartDecodingForSlot`). The second, at the same position, decodes from
    there in fast-forward, where every such record up to `lsn` is accepted at once, so the
    restart point reaches the last one before `lsn`: the ERP keeps, and the next peek
    decodes, one sync interval of WAL instead of two."""
    try:
        for _ in range(2):
            conn.execute("select pg_replication_slot_advance(%s, %s::pg_lsn)",
                         [slot, lsn_text(lsn)])
    except psycopg.Error as exc:
        raise CrmError(f"cdc: advancing slot {slot} failed: {first_line(exc)}") from None


def describe(status: SlotStatus) -> list[str]:
    """`crm-analytics cdc status`: one line per fact."""
    lines = [f"publication {status.slot}: "
             + (f"{len(status.tables)} tables ({', '.join(status.tables)})"
                if status.publication else "absent")]
    if not status.exists:
        lines.append(f"replication slot {status.slot}: absent (the next CDC sync creates it "
                     "and copies every table in full)")
    elif status.lost:
        lines.append(f"replication slot {status.slot}: INVALIDATED (the next CDC sync drops "
                     "it, recreates it and copies every table in full)")
    else:
        retained = status.retained_bytes or 0
        lines.append(f"replication slot {status.slot}: confirmed up to "
                     f"{lsn_text(status.confirmed_lsn or 0)}, retains "
                     f"{retained / (1 << 20):,.1f} MiB of WAL"
                     + (", in use by a sync" if status.active else ""))
    return lines


def run_command(action: str, source_url: str, schema: str, slot: str, timeout_ms: int,
                tables: list[str]) -> list[str]:
    """`crm-analytics cdc setup|status|drop` on the source; returns the lines to print."""
    with cdc_connection(source_url, timeout_ms) as conn:
        if action == "setup":
            done = setup(conn, slot, schema, tables)
            return (done or [f"publication and replication slot {slot} already set up"]) \
                + describe(slot_status(conn, slot, schema))
        if action == "drop":
            return drop(conn, slot, schema) or [f"nothing to drop: no slot or publication "
                                                f"{slot}"]
        return describe(slot_status(conn, slot, schema))


def retained_wal(source_url: str, schema: str, slot: str, timeout_ms: int) -> int | None:
    """Bytes of WAL the slot keeps on the source, None when there is no usable slot."""
    with cdc_connection(source_url, timeout_ms) as conn:
        status = slot_status(conn, slot, schema)
    return status.retained_bytes if status.exists and not status.lost else None
