"""Publishing the `raw` tables of a DuckDB file to a Spark warehouse's lake as Parquet.

The loaders keep doing their work in DuckDB (validation, dedup bookkeeping, manifest, rejects,
exactly-once); this module copies the result into the lake, table by table: DuckDB's `COPY ...
TO (FORMAT parquet)` writes a new version folder `<lake>/raw/<table>/<version>/`, and only
then is the catalog's external table `raw.<table>` pointed at it (created, repointed, or
recreated when its columns changed). A reader sees the old version or the new one, never a
half-written folder. Superseded versions beyond the previous one are removed.

The files are written through a folder of this machine: the lake itself, or a mount of the
object storage the cluster reads (`crm_core.spark.Lake`); the catalog gets Spark's name of them.

The campaign events of a staging file that keeps them as Parquet parts
(ingestion/events/parts.py) are not written at all: the new version links the parts.

Another table with a `load_id` column (the rejected lines, the manifest) is written load by
load, one file each, so a day's publish writes only that day's load: the loader never changes
a load's rows in place (a replaced landing file deletes its rows, whole), so a load whose row
count is the same as in the previous version has the same rows, and the new
version links that file instead of writing it again.

Spark is reached through a `SparkSql` callable (a SparkSession's `sql`, or a Thrift cursor's
`execute`), so the same code serves `spark+session://` and `spark://`.
"""

from __future__ import annotations

import base64
import hashlib
import json
import os
import re
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
from crm_core.spark import Lake, event_parts_folder
from crm_core.sql import quote_ident, quote_literal
from ingestion.events.parts import EVENTS_VIEW, PARTS_TABLE

#: Runs one Spark SQL statement and returns its rows (as sequences).
SparkSql = Callable[[str], Sequence[Sequence[Any]]]

#: Versions of a table kept in the lake: the current one and the one before it (a query
#: that started before the switch may still be reading it).
KEEP_VERSIONS = 2


@dataclass(frozen=True)
class PublishedTable:
    """One table's new version: its name, location (Spark's name of the folder), row count,
    and the folder on this machine."""

    name: str
    location: str
    rows: int
    folder: Path


def new_version() -> str:
    """A folder name that sorts by creation time and never collides: a table's new version in
    the lake, or a scratch folder."""
    return f"v{datetime.now(UTC):%Y%m%dT%H%M%S%f}-{uuid.uuid4().hex[:8]}"


def export_raw(duckdb_path: Path, lake: str | Lake, schema: str = "raw",
               tables: Sequence[str] | None = None) -> list[PublishedTable]:
    """Write each table of `schema` (all of them by default) as a new Parquet version folder
    under `<lake>/raw/<table>/` (`lake`: a folder, or a `Lake` with its mount). Nothing in the
    catalog changes yet."""
    lake = Lake.of(lake)
    raw = lake.local() / "raw"
    con = duckdb.connect(str(duckdb_path), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ? "
            "order by table_name", [schema]).fetchall()]
        parts = PARTS_TABLE in names
        names = [n for n in names if n != PARTS_TABLE]
        if tables is not None:
            names = [n for n in names if n in set(tables)]
        published = []
        for name in names:
            relation = f"{quote_ident(schema)}.{quote_ident(name)}"
            folder = raw / name / new_version()
            folder.mkdir(parents=True)
            if parts and name == EVENTS_VIEW:
                rows = _export_parts(con, relation, event_parts_folder(duckdb_path),
                                     f"{quote_ident(schema)}.{PARTS_TABLE}", folder)
            else:
                columns = con.execute(f"describe {relation}").fetchall()
                if any(column[0] == LOAD_COLUMN for column in columns):
                    rows = _export_by_load(con, relation, folder,
                                           [(c[0], c[1]) for c in columns])
                else:
                    rows = con.execute(f"select count(*) from {relation}").fetchone()[0]
                    # one file per table: DuckDB writes it from a single thread, in table order
                    _copy(con, f"select * from {relation}", folder / "part-0.parquet")
            published.append(PublishedTable(name, lake.url_of(folder), int(rows), folder))
        return published
    finally:
        con.close()


#: The column naming the load that wrote a row: a table with it is published load by load.
LOAD_COLUMN = "load_id"
#: A version folder's column list (name, DuckDB type). Spark and DuckDB's `*.parquet` globs
#: skip it (Spark ignores files whose names start with `_` or `.`).
COLUMNS_FILE = "_columns.json"


def _export_by_load(con: duckdb.DuckDBPyConnection, relation: str, folder: Path,
                    columns: list[tuple[str, str]]) -> int:
    """One file per load, `load-<load>-<rows>.parquet`; a file of the previous version with
    the same name and the same columns is linked instead of written. Returns the table's row
    count."""
    loads = con.execute(f"select {LOAD_COLUMN}, count(*) from {relation} "
                        f"group by {LOAD_COLUMN}").fetchall()
    if not loads:  # Spark needs a file to read the columns from
        _copy(con, f"select * from {relation}", folder / "part-0.parquet")
        return 0
    previous = _previous_version(folder, columns)
    for load, rows in loads:
        file = f"load-{_load_token(load)}-{rows}.parquet"
        if previous is not None and (previous / file).is_file():
            _link(previous / file, folder / file)
        else:
            _copy(con, f"select * from {relation} where {LOAD_COLUMN} is not distinct from ?",
                  folder / file, [load])
    (folder / COLUMNS_FILE).write_text(json.dumps(columns))
    return sum(rows for _, rows in loads)


def _export_parts(con: duckdb.DuckDBPyConnection, relation: str, parts: Path, parts_table: str,
                  folder: Path) -> int:
    """The campaign events of a staging file that keeps them as Parquet parts in `parts`
    (ingestion/events/parts.py); an empty table still gets a file with its columns. Returns
    the rows.

    A part never changes once listed, so a file of the same name is the same part. Each part
    is linked from the previous version (the lake's own disk, so a day's publish writes only
    the day's parts even when the lake is another disk), else from the staging folder, else
    copied from there under a hidden name and renamed: a mounted bucket that refuses links
    gets the local file, not a download of the previous version's."""
    listed = con.execute(f"select part, rows from {parts_table} order by part").fetchall()
    if not listed:
        _copy(con, f"select * from {relation}", folder / "part-0.parquet")
        return 0
    previous = _previous_folder(folder)
    for part, _ in listed:
        if previous is not None and (previous / part).is_file():
            try:
                os.link(previous / part, folder / part)
                continue
            except OSError:
                pass
        _link(parts / part, folder / part)
    return sum(rows for _, rows in listed)


def _previous_folder(folder: Path) -> Path | None:
    """The table's newest version folder before `folder`, if any."""
    earlier = sorted((p for p in folder.parent.iterdir() if p.is_dir() and p.name < folder.name),
                     reverse=True)
    return earlier[0] if earlier else None


def _previous_version(folder: Path, columns: list[tuple[str, str]]) -> Path | None:
    """The table's newest version before `folder`, if it has the same columns."""
    previous = _previous_folder(folder)
    if previous is None:
        return None
    try:
        kept = json.loads((previous / COLUMNS_FILE).read_text())
    except (OSError, ValueError):
        return None  # written before load files existed, or not finished
    return previous if [tuple(c) for c in kept] == columns else None


def _load_token(load: Any) -> str:
    """A load id as a file name part: itself when it is plain (the loader's uuid hex), else a
    digest of it."""
    if load is None:
        return "null"
    text = str(load)
    if re.fullmatch(r"[0-9A-Za-z_]{1,64}", text):
        return text
    return "h" + hashlib.sha256(text.encode()).hexdigest()[:32]


def _copy(con: duckdb.DuckDBPyConnection, select: str, final: Path,
          params: Sequence[Any] = ()) -> None:
    """`select` as the file `final` (zstd Parquet), written under a hidden name and renamed
    when complete, so a file with its final name is whole."""
    partial = final.with_name(f".{final.name}.partial")
    con.execute(f"copy ({select}) to {quote_literal(str(partial))} "
                "(format parquet, compression zstd)", list(params))
    os.replace(partial, final)


def _link(source: Path, target: Path) -> None:
    """`target` as another name of `source`'s file; where hard links are refused, a copy
    written under a hidden name and renamed when whole (a file with its final name is
    complete)."""
    try:
        os.link(source, target)
    except OSError:
        partial = target.with_name(f".{target.name}.partial")
        shutil.copyfile(source, partial)
        os.replace(partial, target)


def spark_string(text: str) -> str:
    """`text` as a Spark SQL string literal (a backslash escapes in Spark's literals)."""
    return "'" + text.replace("\\", "\\\\").replace("'", "\\'") + "'"


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
        location = spark_string(table.location)
        if table.name in existing:
            new_cols = _columns(sql, f"parquet.`{table.location}`")
            if _columns(sql, relation) == new_cols:
                sql(f"alter table {relation} set location {location}")
                sql(f"refresh table {relation}")
                continue
            sql(f"drop table {relation}")
        sql(f"create table {relation} using parquet location {location}")


def prune_versions(published: Sequence[PublishedTable], keep: int = KEEP_VERSIONS) -> None:
    """Remove the versions older than the newest `keep` of each published table."""
    for table in published:
        versions = sorted((p for p in table.folder.parent.iterdir() if p.is_dir()), reverse=True)
        for old in versions[keep:]:
            shutil.rmtree(old, ignore_errors=True)


def publish_raw(duckdb_path: Path, lake: str | Lake, sql: SparkSql,
                tables: Sequence[str] | None = None) -> list[PublishedTable]:
    """Export, register, prune: the `raw` tables of `duckdb_path` become Spark's `raw`."""
    published = export_raw(duckdb_path, lake, tables=tables)
    register_raw(sql, published)
    prune_versions(published)
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
    with _pyhive_sql(connection) as run:
        yield run


@contextmanager
def http_sql(host: str, port: int, http_path: str, token: str) -> Iterator[SparkSql]:
    """A session on a Databricks cluster's HTTPS endpoint (`spark+http://`), connected as
    dbt-spark's `http` method connects: Thrift over HTTPS, the access token as HTTP basic
    authentication for the user `token`. The server's certificate is checked against the
    system's trusted authorities (`SSL_CERT_FILE` names others)."""
    from pyhive import hive
    from thrift.transport import THttpClient

    endpoint = f"{host}:{port}{http_path}"
    try:
        transport = THttpClient.THttpClient(f"https://{endpoint}")
        basic = base64.standard_b64encode(f"token:{token}".encode()).decode()
        transport.setCustomHeaders({"Authorization": f"Basic {basic}"})
        connection = hive.connect(thrift_transport=transport)
    except Exception as exc:  # thrift's and ssl's errors have no common base
        raise CrmError(f"cannot reach the Spark endpoint https://{endpoint}: "
                       f"{_without(first_line(exc), token)}") from None
    with _pyhive_sql(connection) as run:
        yield run


def _without(text: str, secret: str) -> str:
    """`text` with `secret` masked: an error of the HTTP client may quote what it sent."""
    return text.replace(secret, "***") if secret else text


@contextmanager
def _pyhive_sql(connection: Any) -> Iterator[SparkSql]:
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
