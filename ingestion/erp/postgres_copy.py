"""The wire-speed path from a PostgreSQL source into a PostgreSQL warehouse: each table's
`COPY (SELECT …) TO STDOUT (FORMAT binary)` is piped into `COPY … FROM STDIN (FORMAT binary)`,
chunk by chunk — memory bounded by one chunk. The target columns get the source's own types,
which binary COPY requires.

Where the source stream comes from:
- **whole tables** (full loads) are read by a `psql` child process when `psql` is on the PATH:
  it writes the COPY stream to a pipe in C, and this process forwards it to the warehouse in
  1 MiB chunks. Through psycopg, libpq hands a COPY stream over one row at a time, so every row
  would cost a Python call (BENCHMARKS.md has the difference at `large`).
  The child joins the sync's snapshot (`pg_export_snapshot` / `SET TRANSACTION SNAPSHOT`), so
  every table is still read from one consistent state; it connects read-only, named, with the
  statement timeout, and gets the password through its environment, never its arguments.
- **filtered reads** (the incremental deltas, a few key ranges), tables under 8 MiB (by the
  source's statistics) and hosts without `psql` go through the sync's own psycopg connection:
  there a child's start-up would cost more than it saves.

The binary format ends with a trailer, but PostgreSQL also accepts a stream cut at a row
boundary: the child's exit status is therefore checked *before* the warehouse's COPY is ended,
so a source lost mid-stream aborts the copy instead of committing a truncated table.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo

from crm_core.errors import CrmError, first_line, redacted_line
from ingestion.erp.postgres_scan import source_conninfo
from ingestion.erp.source import STATEMENT_TIMEOUT_MS
from ingestion.warehouse import PostgresWarehouse, pg_columns, qualified, quote_ident

#: Bytes forwarded per write from the `psql` child to the warehouse.
CHUNK_BYTES = 1 << 20
#: Tables smaller than this (as the source's statistics estimate) are read in-process: a
#: child costs more than it saves there. A table never analyzed estimates 0 bytes.
PSQL_MIN_BYTES = 8 << 20


@dataclass
class PgSource:
    """The sync's source session: one read-only REPEATABLE READ transaction (`conn`), and what a
    `psql` child needs to join it."""

    conn: psycopg.Connection
    #: libpq connection string without the password
    conninfo: str
    password: str | None
    _snapshot: str | None = field(default=None, repr=False)

    def snapshot_id(self) -> str:
        """The transaction's snapshot, exported once (valid while the transaction lives)."""
        if self._snapshot is None:
            self._snapshot = str(self.conn.execute("select pg_export_snapshot()").fetchone()[0])
        return self._snapshot


@contextmanager
def source_snapshot(source_url: str,
                    timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[PgSource]:
    """A read-only REPEATABLE READ transaction on the source: all tables from one snapshot."""
    conninfo = source_conninfo(source_url, timeout_ms)
    params = conninfo_to_dict(conninfo)
    password = params.pop("password", None)
    try:
        conn = psycopg.connect(conninfo, connect_timeout=10)
    except psycopg.Error as exc:
        raise CrmError(f"source is unreachable: {redacted_line(exc, password)}") from None
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # The first statement opens the snapshot; the transaction is never committed (it only
        # reads) and closing discards it, so a connection killed mid-copy raises only once.
        yield PgSource(conn, make_conninfo(**params), password)
    finally:
        conn.close()


def copy_table(source: PgSource, schema: str, table: str, wh: PostgresWarehouse,
               target_schema: str, target_table: str, columns: list[str] | None = None,
               where: str = "") -> int:
    """Fill `<target_schema>.<target_table>` (created, or emptied when it has the same shape)
    with `select <columns> from <schema>.<table> [where …]`, inside the warehouse's open
    transaction, by piping binary COPY. Returns rows copied."""
    try:
        source_columns = pg_columns(source.conn, schema, table)
        if columns is not None:
            source_columns = [c for c in source_columns if c[0] in columns]
        wh.create_table_typed(target_schema, target_table, source_columns)
        cols = ", ".join(quote_ident(name) for name, _ in source_columns)
        copy_out = (f"copy (select {cols} from {qualified(schema, table)} {where}) "
                    "to stdout (format binary)")
        psql = shutil.which("psql") if not where and _is_large(source, schema, table) else None
        with wh.conn.cursor() as in_cur:
            # FREEZE: `create_table_typed` has just created or truncated the table in this
            # transaction, so the rows can be written frozen; without it the first reader of
            # every page (dbt's staging, straight after) would set hint bits and write the
            # whole table out again.
            with in_cur.copy(f"copy {qualified(target_schema, target_table)} ({cols}) "
                             "from stdin (format binary, freeze)") as inp:
                if psql:
                    _pipe_from_psql(psql, source, copy_out, inp, table)
                else:
                    with source.conn.cursor() as out_cur, out_cur.copy(copy_out) as out:
                        for row in out:
                            inp.write(row)
            return in_cur.rowcount if in_cur.rowcount >= 0 else 0
    except psycopg.Error as exc:
        raise CrmError(f"source table {table}: copy failed: {first_line(exc)}") from None


def _is_large(source: PgSource, schema: str, table: str) -> bool:
    """Whether the table is big enough for a `psql` child to pay for its start-up, by
    the planner's page count (a catalog read: unlike `pg_relation_size`, it takes no lock on
    the table, so a table locked on the source makes the copy itself wait, not this)."""
    row = source.conn.execute("select c.relpages::bigint * current_setting('block_size')::int "
                              "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
                              "where n.nspname = %s and c.relname = %s",
                              [schema, table]).fetchone()
    return row is not None and int(row[0]) >= PSQL_MIN_BYTES


def _pipe_from_psql(psql: str, source: PgSource, copy_out: str, inp: psycopg.Copy,
                    table: str) -> None:
    """Forward `copy_out`, run by a `psql` child inside the sync's snapshot, into `inp`.
    Raises (so the caller's COPY is aborted) unless the child exited cleanly."""
    snapshot = source.snapshot_id()
    env = {**os.environ, "PGCONNECT_TIMEOUT": "10"}
    env.pop("PGPASSWORD", None)
    if source.password:
        env["PGPASSWORD"] = source.password
    command = [psql, "--no-psqlrc", "--quiet", "--set", "ON_ERROR_STOP=1",
               "--dbname", source.conninfo,
               "--command", "begin isolation level repeatable read read only",
               "--command", f"set transaction snapshot '{snapshot}'",
               "--command", copy_out]
    with tempfile.TemporaryFile() as errors:
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                                 stderr=errors, env=env, bufsize=0)
        try:
            assert child.stdout is not None
            while chunk := child.stdout.read(CHUNK_BYTES):
                inp.write(chunk)
            status = child.wait()
        finally:
            if child.poll() is None:
                child.kill()
                child.wait()
            if child.stdout is not None:
                child.stdout.close()
        if status != 0:
            errors.seek(0)
            message = errors.read().decode("utf-8", "replace").replace("psql:", "").strip()
            # psql prefixes its messages with the place in its command list: keep the reason.
            message = message.split("ERROR:", 1)[-1].split("FATAL:", 1)[-1].strip()
            reason = redacted_line(message or f"psql exited with {status}", source.password)
            raise CrmError(f"source table {table}: copy failed: {reason}")
