"""The dashboards' read-only serving copy of a DuckDB warehouse.

DuckDB lets one process write a database file and then no other process may open it, so
dashboards reading `warehouse.duckdb` would fail for the whole length of a pipeline run. After
each successful run the pipeline therefore copies the schemas the dashboards read (`marts`,
`meta`) into `<name>.serving.duckdb`: written under a temporary name, flushed to disk, then
swapped in with `os.replace` (atomic on POSIX). A reader sees the old complete copy or the new
complete copy, never a half-built one, and is never blocked by the writer.

PostgreSQL warehouses need none of this: dbt replaces each table inside a transaction.
"""

from __future__ import annotations

import os
from pathlib import Path

from ingestion.errors import CrmError, first_line
from ingestion.urls import WarehouseTarget

#: The schemas the dashboards (and the demo's headline) read.
SERVED_SCHEMAS = ("marts", "meta")


def serving_path(warehouse_file: Path) -> Path:
    """`data/warehouse.duckdb` -> `data/warehouse.serving.duckdb`."""
    return warehouse_file.with_name(warehouse_file.stem + ".serving.duckdb")


def publish_serving_copy(target: WarehouseTarget) -> Path | None:
    """Copy the served schemas of a DuckDB warehouse into its serving file, atomically.

    Call it while holding the warehouse write lock and with no other connection writing.
    Returns the serving file's path (None for PostgreSQL, which needs no copy)."""
    if not target.is_duckdb:
        return None
    import duckdb

    from ingestion.warehouse import qualified, quote_ident

    assert target.duckdb_path is not None
    final = serving_path(target.duckdb_path)
    tmp = final.with_name(f".{final.name}.{os.getpid()}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        con = duckdb.connect(str(target.duckdb_path))
        try:
            con.execute("set enable_progress_bar = false")
            tables = con.execute(
                "select table_schema, table_name from information_schema.tables "
                "where table_catalog = current_database() and table_schema in (?, ?) "
                "order by 1, 2", list(SERVED_SCHEMAS)).fetchall()
            # ATTACH takes no bound parameters: the path (from our own configuration, not user
            # input) goes in as a quoted SQL string literal.
            literal = "'" + str(tmp).replace("'", "''") + "'"
            con.execute(f"attach {literal} as serving_copy")
            for schema in SERVED_SCHEMAS:
                con.execute(f"create schema serving_copy.{quote_ident(schema)}")
            for schema, table in tables:
                # Views are materialised: the copy must not depend on the raw/staging schemas.
                con.execute(f"create table serving_copy.{qualified(schema, table)} as "
                            f"select * from {qualified(schema, table)}")
            con.execute("detach serving_copy")
        finally:
            con.close()
        _fsync(tmp)
        os.replace(tmp, final)
        _fsync(final.parent)
    except (duckdb.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise CrmError(f"publishing the dashboards' serving copy {final} failed: "
                       f"{first_line(exc)}") from None
    return final


def _fsync(path: Path) -> None:
    """Flush a file (or a directory entry) to disk so the swap survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
