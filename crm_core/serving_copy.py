"""The dashboards' read-only serving copy of a DuckDB warehouse.

DuckDB lets one process write a database file and then no other process may open it, so
dashboards reading `warehouse.duckdb` would fail for the whole length of a pipeline run. After
each successful run the pipeline therefore copies the schemas the dashboards read (`marts`,
`meta`) into a new, versioned file `<name>.serving.<n>.duckdb`, flushes it to disk, and then
points the symlink `<name>.serving.duckdb` at it with `os.replace` (atomic on POSIX). A reader
resolves the link once and sees the old complete copy or the new complete copy, never a
half-built one, and is never blocked by the writer.

Why a new file name per version rather than replacing one file: DuckDB caches open databases
by path within a process, so a dashboard process that reopened the same path after a swap
would be handed the old database. Older versions are deleted, except the previous one, which
a reader may just have resolved.

A Spark warehouse is served the same way: after a successful build its `marts` are read out of
Spark into a new version of the copy beside its local staging file (`publish_copy`, filled by
`orchestration.spark_steps`), with `meta` from the staging file. PostgreSQL warehouses need
none of this: dbt replaces each table inside a transaction.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path

from crm_core.errors import CrmError, first_line
from crm_core.sql import qualified, quote_ident, quote_literal
from crm_core.urls import WarehouseTarget

#: The schemas the dashboards (and the demo's headline) read.
SERVED_SCHEMAS = ("marts", "meta")


def serving_path(warehouse_file: Path) -> Path:
    """`data/warehouse.duckdb` -> `data/warehouse.serving.duckdb` (the symlink readers use)."""
    return warehouse_file.with_name(warehouse_file.stem + ".serving.duckdb")


def _versions(link: Path) -> list[Path]:
    """The versioned copies beside the link, oldest first."""
    prefix = link.name.removesuffix(".duckdb") + "."
    found = [p for p in link.parent.glob(prefix + "*.duckdb") if p.name[len(prefix):-7].isdigit()]
    return sorted(found, key=lambda p: int(p.name[len(prefix):-7]))


def publish_serving_copy(target: WarehouseTarget) -> Path | None:
    """Copy the served schemas of a DuckDB warehouse into its serving file, atomically.

    Call it while holding the warehouse write lock and with no other connection writing.
    Returns the serving file's path (None for PostgreSQL, which needs no copy; a Spark
    warehouse's copy is built by `publish_copy` from Spark's marts, `orchestration.spark_steps`)."""
    if not target.is_duckdb:
        return None
    assert target.duckdb_path is not None
    source = target.duckdb_path
    return publish_copy(source, lambda tmp: copy_schemas(source, tmp, SERVED_SCHEMAS))


def publish_copy(base: Path, fill: Callable[[Path], None]) -> Path:
    """Publish a new version of `serving_path(base)`: `fill(tmp)` writes the new DuckDB file
    `tmp`, which is then flushed, renamed to the next version and pointed at by the link. When
    `fill` fails the link is left as it was (readers keep the last good copy)."""
    import duckdb

    link = serving_path(base)
    existing = _versions(link)
    number = int(existing[-1].name.split(".")[-2]) + 1 if existing else 1
    final = link.with_name(link.name.removesuffix(".duckdb") + f".{number}.duckdb")
    tmp = final.with_name(f".{final.name}.tmp")
    tmp.unlink(missing_ok=True)
    try:
        fill(tmp)
        _fsync(tmp)
        os.replace(tmp, final)
        new_link = link.with_name(f".{link.name}.link.tmp")
        new_link.unlink(missing_ok=True)
        new_link.symlink_to(final.name)
        os.replace(new_link, link)
        _fsync(final.parent)
    except (duckdb.Error, OSError) as exc:
        tmp.unlink(missing_ok=True)
        raise CrmError(f"publishing the dashboards' serving copy {final} failed: "
                       f"{first_line(exc)}") from None
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    for old in _versions(link)[:-2]:
        old.unlink(missing_ok=True)
    return final


def cluster_order(columns: set[str]) -> str:
    """` order by business_id, branch_id` for a tenant-keyed table, else nothing: rows are
    clustered by tenant, so DuckDB's per-row-group min/max statistics skip most of a large
    table when a page filters on a business or branch."""
    return " order by business_id, branch_id" if {"business_id", "branch_id"} <= columns else ""


def copy_schemas(source: Path, dest: Path, schemas: Sequence[str]) -> None:
    """Copy every table and view of `schemas` in the DuckDB file `source` into the DuckDB file
    `dest` (created if absent) as tables. No other connection may be writing `source`."""
    import duckdb

    con = duckdb.connect(str(source))
    try:
        con.execute("set enable_progress_bar = false")
        placeholders = ", ".join("?" for _ in schemas)
        tables = con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_catalog = current_database() and table_schema in ({placeholders}) "
            "order by 1, 2", list(schemas)).fetchall()
        # ATTACH takes no bound parameters: the path (from our own configuration, not user
        # input) goes in as a quoted SQL string literal.
        con.execute(f"attach {quote_literal(str(dest))} as serving_copy")
        for schema in schemas:
            con.execute(f"create schema if not exists serving_copy.{quote_ident(schema)}")
        for schema, table in tables:
            # Views are materialised: the copy must not depend on the raw/staging schemas.
            columns = {r[0] for r in con.execute(
                "select column_name from information_schema.columns "
                "where table_catalog = current_database() and table_schema = ? "
                "and table_name = ?", [schema, table]).fetchall()}
            con.execute(f"create table serving_copy.{qualified(schema, table)} as "
                        f"select * from {qualified(schema, table)}{cluster_order(columns)}")
        con.execute("detach serving_copy")
    finally:
        con.close()


def _fsync(path: Path) -> None:
    """Flush a file (or a directory entry) to disk so the swap survives a crash."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
