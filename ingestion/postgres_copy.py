"""The wire-speed path from a PostgreSQL source into a PostgreSQL warehouse: each table's
`COPY (SELECT …) TO STDOUT (FORMAT binary)` is piped into `COPY … FROM STDIN (FORMAT binary)`,
chunk by chunk — no Python object per row, memory bounded by one chunk. The target columns get
the source's own types, which binary COPY requires.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from ingestion.errors import CrmError, first_line
from ingestion.postgres_scan import source_conninfo
from ingestion.source import STATEMENT_TIMEOUT_MS
from ingestion.warehouse import PostgresWarehouse, pg_columns, qualified, quote_ident


@contextmanager
def source_snapshot(source_url: str,
                    timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[psycopg.Connection]:
    """A read-only REPEATABLE READ transaction on the source: all tables from one snapshot."""
    password = psycopg.conninfo.conninfo_to_dict(source_conninfo(source_url)).get("password")
    try:
        conn = psycopg.connect(source_conninfo(source_url, timeout_ms), connect_timeout=10)
    except psycopg.Error as exc:
        raise CrmError(f"source is unreachable: {_clean(exc, password)}") from None
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        # The first statement opens the snapshot; the transaction is never committed (it only
        # reads) and closing discards it, so a connection killed mid-copy raises only once.
        yield conn
    finally:
        conn.close()


def copy_table(source: psycopg.Connection, schema: str, table: str, wh: PostgresWarehouse,
               target_schema: str, target_table: str, columns: list[str] | None = None,
               where: str = "") -> int:
    """Fill `<target_schema>.<target_table>` (created, or emptied when it has the same shape)
    with `select <columns> from <schema>.<table> [where …]`, inside the warehouse's open
    transaction, by piping binary COPY. Returns rows copied."""
    try:
        source_columns = pg_columns(source, schema, table)
        if columns is not None:
            source_columns = [c for c in source_columns if c[0] in columns]
        wh.create_table_typed(target_schema, target_table, source_columns)
        cols = ", ".join(quote_ident(name) for name, _ in source_columns)
        with source.cursor() as out_cur, wh.conn.cursor() as in_cur:
            with out_cur.copy(f"copy (select {cols} from {qualified(schema, table)} {where}) "
                              "to stdout (format binary)") as out, \
                    in_cur.copy(f"copy {qualified(target_schema, target_table)} ({cols}) "
                                "from stdin (format binary)") as inp:
                for chunk in out:
                    inp.write(chunk)
            return in_cur.rowcount if in_cur.rowcount >= 0 else 0
    except psycopg.Error as exc:
        raise CrmError(f"source table {table}: copy failed: {first_line(exc)}") from None


def _clean(exc: BaseException, password: str | None) -> str:
    message = first_line(exc)
    return message.replace(password, "***") if password else message
