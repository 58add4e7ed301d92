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
from ingestion.warehouse import PostgresWarehouse, pg_columns, qualified


@contextmanager
def source_snapshot(source_url: str) -> Iterator[psycopg.Connection]:
    """A read-only REPEATABLE READ transaction on the source: all tables from one snapshot."""
    password = psycopg.conninfo.conninfo_to_dict(source_conninfo(source_url)).get("password")
    try:
        conn = psycopg.connect(source_conninfo(source_url), connect_timeout=10)
    except psycopg.Error as exc:
        raise CrmError(f"source is unreachable: {_clean(exc, password)}") from None
    try:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        with conn.transaction():
            yield conn
    finally:
        conn.close()


def copy_tables(source: psycopg.Connection, schema: str, tables: list[str],
                wh: PostgresWarehouse, target_schema: str) -> dict[str, int]:
    """Replace `<target_schema>.<t>` with the source's rows for each table, inside the
    warehouse's open transaction. Returns rows per table."""
    counts = {}
    for table in tables:
        try:
            columns = pg_columns(source, schema, table)
            wh.create_table_typed(target_schema, table, columns)
            with source.cursor() as out_cur, wh.conn.cursor() as in_cur:
                with out_cur.copy(f"copy (select * from {qualified(schema, table)}) "
                                  "to stdout (format binary)") as out, \
                        in_cur.copy(f"copy {qualified(target_schema, table)} "
                                    "from stdin (format binary)") as inp:
                    for chunk in out:
                        inp.write(chunk)
                counts[table] = in_cur.rowcount if in_cur.rowcount >= 0 else 0
        except psycopg.Error as exc:
            raise CrmError(f"source table {table}: copy failed: {first_line(exc)}") from None
    return counts


def _clean(exc: BaseException, password: str | None) -> str:
    message = first_line(exc)
    return message.replace(password, "***") if password else message
