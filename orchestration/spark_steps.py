"""The Spark warehouse's steps around dbt: publishing `raw` to the lake before the build, and
reading the built marts back into the dashboards' serving copy after it.

Why each runs in a child process: an in-process Spark (`spark+session://`) keeps its catalog in
an embedded Derby database that one process at a time may open, and the JVM a Python process
starts stays up (holding that catalog) until the process exits. So the pipeline never starts
Spark itself: it runs `python -m orchestration.spark_steps <job> ...`, then dbt's own process,
then the next job, one after the other; the run's write lock keeps other runs out meanwhile.
The child dies with the pipeline process (the launcher of `orchestration/dbt_child.py`).

A Thrift server (`spark://`) is driven by the same jobs, through a PyHive session instead of an
in-process Spark: the catalog is the server's, and the marts reach the serving copy as Parquet
files the server writes into the lake (PyHive hands rows over one Python tuple at a time).
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from urllib.parse import quote

from crm_core.errors import CrmError, first_line
from crm_core.serving_copy import cluster_order, copy_schemas, publish_copy
from crm_core.settings import PROJECT_ROOT, Settings
from crm_core.spark import SPARK_TOKEN_ENV
from crm_core.sql import quote_ident, quote_literal
from crm_core.urls import WarehouseTarget

#: Where a child job writes its one-line failure, among Spark's own log lines on stderr.
ERROR_PREFIX = "error: "
#: The databases of Spark's catalog the dashboards read (the run log, `meta`, is local).
SPARK_SERVED = ("marts",)


def spark_url(target: WarehouseTarget) -> str:
    """The warehouse URL a child job connects with: `spark+session://`, the Thrift server's
    `spark://[user@]host:port` (no password: PyHive's default authentication takes none), or
    the HTTPS endpoint's `spark+http://host:port/path`, its token left out (`_run_job` hands it
    over in the environment)."""
    if target.spark_method == "session":
        return "spark+session://"
    if target.spark_method == "http":
        return target.describe()
    user = f"{quote(target.user, safe='')}@" if target.user else ""
    return f"spark://{user}{target.host}:{target.port}"


def lake_tables() -> tuple[str, ...]:
    """The `raw` tables dbt reads: every ERP table and the event loader's (the staging file's
    bookkeeping, such as the sync's cursors, stays local)."""
    from ingestion.erp.schema import SOURCE_TABLES
    from ingestion.events.files import TABLES

    return (*SOURCE_TABLES, *TABLES)


def publish_lake_raw(settings: Settings, tables: Sequence[str] = ()) -> int:
    """Publish the staging file's `raw` tables (`tables`, else all of `lake_tables`) to the
    lake as new versions, every time (a table's version is rewritten even when its rows did
    not change: cheap next to the build), and repoint Spark's `raw.<table>` at them; returns
    how many were published."""
    staging = settings.warehouse.staging().duckdb_path
    out = _run_job(settings, "publish", spark_url(settings.warehouse), str(staging),
                   *_lake_args(settings), *(tables or lake_tables()))
    return int(out.strip().splitlines()[-1]) if out.strip() else 0


def publish_spark_serving_copy(settings: Settings) -> Path:
    """A new version of the dashboards' serving copy: Spark's `marts`, read out by a child
    job, and the staging file's `meta` (the run log). Call it after a successful build only:
    a failure leaves the previous copy in place."""
    staging = settings.warehouse.staging().duckdb_path
    assert staging is not None

    def fill(tmp: Path) -> None:
        _run_job(settings, "serve", spark_url(settings.warehouse), *_lake_args(settings),
                 str(tmp))
        add_unbuilt_marts(tmp)
        copy_schemas(staging, tmp, ("meta",))

    return publish_copy(staging, fill)


def add_unbuilt_marts(copy: Path) -> list[str]:
    """Create, empty, every mart of the project that Spark did not build (those the `spark`
    selector leaves out), with the columns and types of its contract; returns their names.

    Why: the pages and the digest join some of them (a deal's close-date slippage); served
    empty they answer with nothing to show instead of failing. The build succeeded, so every
    mart of the selector is there: only the left-out ones are added."""
    import json

    import duckdb

    from orchestration.dbt_project import ensure_manifest

    nodes = json.loads(ensure_manifest().read_text(encoding="utf-8"))["nodes"].values()
    con = duckdb.connect(str(copy))
    try:
        present = {r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = 'marts'"
        ).fetchall()}
        added = []
        for node in nodes:
            name = node.get("alias") or node["name"]
            if (node["resource_type"] != "model" or node["config"].get("schema") != "marts"
                    or name in present):
                continue
            columns = ", ".join(f"{quote_ident(c['name'])} {c['data_type']}"
                                for c in node["columns"].values())
            con.execute(f"create table marts.{quote_ident(name)} ({columns})")
            added.append(name)
        return added
    finally:
        con.close()


def _lake_args(settings: Settings) -> tuple[str, str]:
    """The lake as a child job's two arguments: Spark's name for it and its mount here."""
    return settings.lake_path, str(settings.lake_mount or "")


def _run_job(settings: Settings, job: str, *args: str) -> str:
    """Run one job of this module in a child process; its stdout back, or `CrmError` with the
    child's one-line error."""
    from orchestration.dbt_project import DBT_LAUNCHER

    env = {**os.environ, "CRM_DBT_REAL_EXECUTABLE": sys.executable,
           "CRM_DBT_PARENT_PID": str(os.getpid())}
    if settings.warehouse.spark_method == "http":
        env[SPARK_TOKEN_ENV] = settings.warehouse.password
    usable = sys.platform.startswith("linux") and shutil.which("python3") is not None
    launcher = ["python3", DBT_LAUNCHER] if usable else [sys.executable]
    proc = subprocess.run([*launcher, "-m", "orchestration.spark_steps", job, *args],
                          cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        said = [ln[len(ERROR_PREFIX):] for ln in proc.stderr.splitlines()
                if ln.startswith(ERROR_PREFIX)]
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        cause = said[-1] if said else (lines[-1] if lines else f"exit status {proc.returncode}")
        raise CrmError(f"Spark step `{job}` failed: {cause}")
    return proc.stdout


# --------------------------------------------------------------------------------------------
# The child side (pyspark is imported here only)


def spark_session(lake: str) -> Any:
    """An in-process Spark on `lake`, with the settings dbt's own session gets."""
    from crm_core.spark import session_submit_args

    os.environ["PYSPARK_SUBMIT_ARGS"] = session_submit_args(lake)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


@contextmanager
def _spark_sql(url: str, lake: str) -> Iterator[Any]:
    """A `SparkSql` (ingestion.spark_lake) on the warehouse of `url`: an in-process Spark on
    `lake`, or a session on the Thrift server or the HTTPS endpoint."""
    from crm_core.urls import parse_warehouse_url
    from ingestion.spark_lake import http_sql, session_sql, thrift_sql

    if url.startswith("spark+http://"):  # the token comes in the environment (`_run_job`)
        token = quote(os.environ.get(SPARK_TOKEN_ENV, ""), safe="")
        url = url.replace("spark+http://", f"spark+http://token:{token}@", 1)
    target = parse_warehouse_url(url, Path.cwd())
    if target.spark_method == "session":
        spark = spark_session(lake)
        try:
            yield session_sql(spark)
        finally:
            spark.stop()
    elif target.spark_method == "http":
        with http_sql(target.host, target.port, target.http_path, target.password) as sql:
            yield sql
    else:
        with thrift_sql(target.host, target.port, target.user) as sql:
            yield sql


def _publish(url: str, staging: str, lake: str, mount: str, *tables: str) -> None:
    """`ingestion.spark_lake.publish_raw`, with the Parquet written before Spark is reached (a
    staging file that cannot be read fails in a second, not after a JVM's start-up)."""
    from crm_core.spark import Lake
    from ingestion.spark_lake import export_raw, prune_versions, register_raw

    published = export_raw(Path(staging), Lake.of(lake, mount), tables=tables or None)
    with _spark_sql(url, lake) as sql:
        register_raw(sql, published)
    prune_versions(published)
    print(len(published))


def _served_tables(sql: Any, database: str) -> list[str]:
    """The tables and views of `database` (not the session's temporary views)."""
    return sorted(str(r[1]) for r in sql(f"show tables in `{database}`") if not r[2])


def _serve(url: str, lake: str, mount: str, dest: str) -> None:
    """Every table of `SPARK_SERVED` as a DuckDB table of `dest`, clustered by tenant, with no
    Python object per row: in-process, Arrow from Spark (`toArrow`); from a Thrift server,
    Parquet it writes into the lake (`insert overwrite directory`), read by DuckDB."""
    import duckdb

    con = duckdb.connect(dest)
    try:
        for database in SPARK_SERVED:
            con.execute(f"create schema if not exists {quote_ident(database)}")
        if url.startswith("spark+session:"):
            _serve_in_process(lake, con)
        else:
            _serve_through_lake(url, lake, mount, con)
    finally:
        con.close()


def _copy_into(con: Any, database: str, name: str, relation: str, columns: set[str]) -> None:
    con.execute(f"create table {quote_ident(database)}.{quote_ident(name)} as "
                f"select * from {relation}{cluster_order(columns)}")


def _serve_in_process(lake: str, con: Any) -> None:
    from ingestion.spark_lake import session_sql

    spark = spark_session(lake)
    try:
        for database in SPARK_SERVED:
            for name in _served_tables(session_sql(spark), database):
                table = spark.table(f"`{database}`.`{name}`").toArrow()
                con.register("__spark_table", table)
                try:
                    _copy_into(con, database, name, "__spark_table", set(table.column_names))
                finally:
                    con.unregister("__spark_table")
    finally:
        spark.stop()


def _serve_through_lake(url: str, lake: str, mount: str, con: Any) -> None:
    from crm_core.spark import Lake
    from ingestion.spark_lake import new_version, spark_string

    files_lake = Lake.of(lake, mount)
    folder = files_lake.local() / "serving" / new_version()
    try:
        with _spark_sql(url, lake) as sql:
            # timestamps as instants (the default, INT96, has no zone for DuckDB to read)
            sql("set spark.sql.parquet.outputTimestampType = TIMESTAMP_MICROS")
            for database in SPARK_SERVED:
                for name in _served_tables(sql, database):
                    files = folder / database / name
                    target = spark_string(files_lake.url_of(files))
                    sql(f"insert overwrite directory {target} using parquet "
                        f"select * from `{database}`.`{name}`")
                    parts = sorted(str(p) for p in files.glob("*.parquet"))
                    if not parts:
                        raise CrmError(f"Spark wrote no Parquet file for {database}.{name}")
                    relation = f"read_parquet([{', '.join(map(quote_literal, parts))}])"
                    columns = {r[0] for r in con.execute(
                        f"describe select * from {relation}").fetchall()}
                    _copy_into(con, database, name, relation, columns)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main(argv: Sequence[str]) -> int:
    job, *args = argv
    try:
        {"publish": _publish, "serve": _serve}[job](*args)
    except CrmError as exc:
        print(f"{ERROR_PREFIX}{exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # one line for the parent, whatever failed
        print(f"{ERROR_PREFIX}{type(exc).__name__}: {first_line(exc)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
