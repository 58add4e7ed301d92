"""Publishing the `raw` tables of a DuckDB file to a Spark warehouse's lake as Parquet.

The loaders keep doing their work in DuckDB (validation, dedup bookkeeping, manifest, rejects,
exactly-once); this module copies the result into the lake, table by table: DuckDB's `COPY ...
TO (FORMAT parquet)` writes a new version folder `<lake>/raw/<table>/<version>/`, and only
then is the catalog's external table `raw.<table>` pointed at it (created, repointed, or
recreated when its columns changed). A reader sees the old version or the new one, never a
half-written folder. Superseded versions beyond the previous one are removed from a local lake.

Spark is reached through a `SparkSql` callable (a SparkSession's `sql`, or a Thrift cursor's
`execute`), so the same code serves `spark+session://` and `spark://`.
"""

from __future__ import annotations

import shutil
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb

from crm_core.errors import CrmError, first_line
from crm_core.spark import is_local_lake, local_folder, raw_location
from crm_core.sql import quote_ident

#: Runs one Spark SQL statement and returns its rows (as sequences).
SparkSql = Callable[[str], Sequence[Sequence[Any]]]

#: Versions of a table kept in a local lake: the current one and the one before it (a query
#: that started before the switch may still be reading it).
KEEP_VERSIONS = 2


@dataclass(frozen=True)
class PublishedTable:
    """One table's new version: its name, folder and row count."""

    name: str
    location: str
    rows: int


def new_version() -> str:
    """A folder name that sorts by creation time and never collides: a table's new version in
    the lake, or a scratch folder."""
    return f"v{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def export_raw(duckdb_path: Path, lake: str, schema: str = "raw",
               tables: Sequence[str] | None = None) -> list[PublishedTable]:
    """Write each table of `schema` (all of them by default) as a new Parquet version folder
    under `<lake>/raw/<table>/`. Nothing in the catalog changes yet."""
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "order by table_name", [schema]).fetchall()]
        if tables is not None:
            names = [n for n in names if n in set(tables)]
        published = []
        for name in names:
            location = f"{raw_location(lake)}/{name}/{new_version()}"
            if is_local_lake(lake):
                local_folder(location).mkdir(parents=True)
            rows = con.execute(f"select count(*) from {quote_ident(schema)}.{quote_ident(name)}"
                               ).fetchone()[0]
            # one file per table: DuckDB writes it from a single thread, in the table's order
            con.execute(f"copy (select * from {quote_ident(schema)}.{quote_ident(name)}) to "
                        f"'{location}/part-0.parquet' (format parquet, compression zstd)")
            published.append(PublishedTable(name, location, int(rows)))
        return published
    finally:
        con.close()


def _spark_ident(name: str) -> str:
    return "`" + name.replace("`", "``") + "`"


def _columns(sql: SparkSql, relation: str) -> list[tuple[str, str]]:
    """(name, type) of a table or of `parquet.\\`<folder>\\``, as Spark describes them.
    `describe query`, because a plain `describe` resolves its argument in the catalog only and
    does not find a folder of files."""
    out = []
    for row in sql(f"describe query select * from {relation}"):
        name, data_type = str(row[0]), str(row[1])
        if not name or name.startswith("#"):
            break  # partition information follows the columns
        out.append((name, data_type))
    return out


def register_raw(sql: SparkSql, published: Sequence[PublishedTable],
                 database: str = "raw") -> None:
    """Point `raw.<table>` at each new version: create it, repoint it (same columns), or drop
    and recreate it (the columns changed, e.g. a new ERP column)."""
    sql(f"create database if not exists {_spark_ident(database)}")
    existing = {str(r[1]) for r in sql(f"show tables in {_spark_ident(database)}")}
    for table in published:
        relation = f"{_spark_ident(database)}.{_spark_ident(table.name)}"
        location = table.location.replace("'", "\\'")
        if table.name in existing:
            new_cols = _columns(sql, f"parquet.`{table.location}`")
            if _columns(sql, relation) == new_cols:
                sql(f"alter table {relation} set location '{location}'")
                sql(f"refresh table {relation}")
                continue
            sql(f"drop table {relation}")
        sql(f"create table {relation} using parquet location '{location}'")


def prune_versions(lake: str, published: Sequence[PublishedTable],
                   keep: int = KEEP_VERSIONS) -> None:
    """Remove a local lake's versions older than the newest `keep` of each published table."""
    if not is_local_lake(lake):
        return
    for table in published:
        folder = local_folder(f"{raw_location(lake)}/{table.name}")
        versions = sorted((p for p in folder.iterdir() if p.is_dir()), reverse=True)
        for old in versions[keep:]:
            shutil.rmtree(old, ignore_errors=True)


def publish_raw(duckdb_path: Path, lake: str, sql: SparkSql,
                tables: Sequence[str] | None = None) -> list[PublishedTable]:
    """Export, register, prune: the `raw` tables of `duckdb_path` become Spark's `raw`."""
    published = export_raw(duckdb_path, lake, tables=tables)
    register_raw(sql, published)
    prune_versions(lake, published)
    return published


def session_sql(spark: Any) -> SparkSql:
    """A SparkSession as a `SparkSql`."""
    return lambda statement: [tuple(r) for r in spark.sql(statement).collect()]


@contextmanager
def thrift_sql(host: str, port: int, user: str = "") -> Iterator[SparkSql]:
    """A session on a Spark Thrift server (PyHive, as dbt-spark's `thrift` method) as a
    `SparkSql`, its timestamps shown in UTC whatever the server's own zone."""
    from pyhive import hive

    try:
        connection = hive.connect(host=host, port=port, username=user or None)
    except Exception as exc:  # thrift's transport errors have no common base
        raise CrmError(f"cannot reach the Spark Thrift server at {host}:{port}: "
                       f"{first_line(exc)}") from None
    cursor = connection.cursor()

    def run(statement: str) -> list[tuple]:
        cursor.execute(statement)
        return [tuple(r) for r in cursor.fetchall()] if cursor.description else []

    try:
        run("set spark.sql.session.timeZone = UTC")
        yield run
    finally:
        cursor.close()
        connection.close()
