"""The wire-speed path from a PostgreSQL source into a DuckDB warehouse: DuckDB's postgres
extension reads each table with binary COPY straight into a DuckDB table — no Python object per
row. The extension comes from the pinned `duckdb-extension-postgres` wheel (DuckDB's own INSTALL
would download it from a host these machines cannot reach), with autoinstall off.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import duckdb
import sqlalchemy as sa

from crm_core.errors import CrmError, redacted_line
from crm_core.sql import quote_literal
from ingestion.erp.source import APPLICATION_NAME, STATEMENT_TIMEOUT_MS, session_options
from ingestion.warehouse import qualified, quote_ident

ATTACHED = "erp_source"


def load_postgres_extension(con: duckdb.DuckDBPyConnection) -> None:
    import duckdb_extension_postgres

    path = (Path(duckdb_extension_postgres.__file__).parent / "extensions"
            / f"v{duckdb.__version__}" / "postgres.duckdb_extension")
    if not path.is_file():
        raise CrmError(f"the DuckDB postgres extension for DuckDB {duckdb.__version__} is not "
                       "installed (pip install duckdb-extension-postgres of the same version)")
    con.execute(f"install '{path}'")
    con.execute("load postgres")


def _libpq(value: str) -> str:
    return "'" + value.replace("\\", "\\\\").replace("'", "\\'") + "'"


def source_conninfo(source_url: str, timeout_ms: int = STATEMENT_TIMEOUT_MS) -> str:
    """libpq connection string of the source: read-only, named, with a statement timeout."""
    url = sa.make_url(source_url)
    parts = {
        "host": url.host or "127.0.0.1", "port": str(url.port or 5432),
        "user": url.username or "postgres", "dbname": url.database or "postgres",
        "application_name": APPLICATION_NAME,
        "options": session_options(timeout_ms),
    }
    if url.password:
        parts["password"] = url.password
    return " ".join(f"{k}={_libpq(v)}" for k, v in parts.items())


@contextmanager
def attached_source(con: duckdb.DuckDBPyConnection, source_url: str,
                    timeout_ms: int = STATEMENT_TIMEOUT_MS) -> Iterator[str]:
    """Attach the source read-only as `erp_source` for the duration of the block (detached
    after the caller's transaction has ended)."""
    password = sa.make_url(source_url).password or ""
    load_postgres_extension(con)
    try:
        conninfo = quote_literal(source_conninfo(source_url, timeout_ms))
        con.execute(f"attach {conninfo} as {ATTACHED} "
                    "(type postgres, read_only)")
    except duckdb.Error as exc:
        raise CrmError(f"source is unreachable: {redacted_line(exc, password)}") from None
    try:
        yield ATTACHED
    finally:
        con.execute(f"detach database if exists {ATTACHED}")


def copy_table(con: duckdb.DuckDBPyConnection, source_url: str, schema: str, table: str,
               target_schema: str, target_table: str, columns: list[str] | None = None,
               where: str = "") -> int:
    """`create or replace table <target> as select <columns> from <source>.<schema>.<table>
    [where …]` inside `attached_source` and the caller's transaction; returns rows copied.
    `target_schema` "temp" makes a temporary table. The extension pushes the column list down
    to the source; a `where` (PostgreSQL SQL) is sent verbatim through `postgres_query`, so the
    source filters and only the delta crosses the wire."""
    password = sa.make_url(source_url).password or ""
    cols = ", ".join(quote_ident(c) for c in columns) if columns else "*"
    target = qualified(target_schema, target_table)
    create = (f"create or replace temp table {quote_ident(target_table)}"
              if target_schema == "temp" else f"create or replace table {target}")
    source = f"{ATTACHED}.{quote_ident(schema)}.{quote_ident(table)}"
    if where:
        query = f"select {cols} from {quote_ident(schema)}.{quote_ident(table)} {where}"
        source = f"postgres_query('{ATTACHED}', {quote_literal(query)})"
    try:
        con.execute(f"{create} as select {cols} from {source}")
        return con.execute(f"select count(*) from {target}").fetchone()[0]
    except duckdb.Error as exc:
        raise CrmError(f"source table {table}: copy failed: {redacted_line(exc, password)}") \
            from None


def source_query(con: duckdb.DuckDBPyConnection, source_url: str, table: str,
                 query: str) -> list[tuple]:
    """Rows of a small query (PostgreSQL SQL) the source answers, through the attached
    source's own connection and transaction (`postgres_query`); `table` names it in errors."""
    password = sa.make_url(source_url).password or ""
    try:
        return con.execute(f"select * from postgres_query('{ATTACHED}', "
                           f"{quote_literal(query)})").fetchall()
    except duckdb.Error as exc:
        raise CrmError(f"source table {table}: read failed: "
                       f"{redacted_line(exc, password)}") from None


