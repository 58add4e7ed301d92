"""The Spark warehouse's steps around dbt: publishing `raw` to the lake before the build, and
reading the built marts back into the dashboards' serving copy after it.

Why each runs in a child process: an in-process Spark (`spark+session://`) keeps its catalog in
an embedded Derby database that one process at a time may open, and the JVM a Python process
starts stays up (holding that catalog) until the process exits. So the pipeline never starts
Spark itself: it runs `python -m orchestration.spark_steps <job> ...`, then dbt's own process,
then the next job, one after the other; the run's write lock keeps other runs out meanwhile.
The child dies with the pipeline process (the launcher of `orchestration/dbt_child.py`).

Only `spark+session://` is driven this way; a Thrift server (`spark://`) is built by dbt only.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from crm_core.errors import CrmError, first_line
from crm_core.serving_copy import cluster_order, copy_schemas, publish_copy
from crm_core.settings import PROJECT_ROOT, Settings
from crm_core.sql import quote_ident

#: Where a child job writes its one-line failure, among Spark's own log lines on stderr.
ERROR_PREFIX = "error: "
#: The databases of Spark's catalog the dashboards read (the run log, `meta`, is local).
SPARK_SERVED = ("marts",)


def require_session(settings: Settings, what: str) -> None:
    """Refuse a Thrift Spark (`spark://`) with one line: only an in-process Spark is driven."""
    target = settings.warehouse
    if target.is_spark and target.spark_method != "session":
        raise CrmError(f"CRM_WAREHOUSE_URL {target.describe()}: {what} drives an in-process Spark "
                       "(spark+session://) only; on a Thrift server dbt builds, fed by "
                       "`ingestion.spark_lake.publish_raw` (docs/spark.md)")


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
    out = _run_job("publish", str(staging), settings.lake_path,
                   *(tables or lake_tables()))
    return int(out.strip().splitlines()[-1]) if out.strip() else 0


def publish_spark_serving_copy(settings: Settings) -> Path:
    """A new version of the dashboards' serving copy: Spark's `marts`, read out by a child
    job, and the staging file's `meta` (the run log). Call it after a successful build only:
    a failure leaves the previous copy in place."""
    staging = settings.warehouse.staging().duckdb_path
    assert staging is not None

    def fill(tmp: Path) -> None:
        _run_job("serve", settings.lake_path, str(tmp))
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


def _run_job(job: str, *args: str) -> str:
    """Run one job of this module in a child process; its stdout back, or `CrmError` with the
    child's one-line error."""
    from orchestration.dbt_project import DBT_LAUNCHER

    env = {**os.environ, "CRM_DBT_REAL_EXECUTABLE": sys.executable,
           "CRM_DBT_PARENT_PID": str(os.getpid())}
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


def _publish(staging: str, lake: str, *tables: str) -> None:
    """`ingestion.spark_lake.publish_raw`, with the Parquet written before Spark starts (a
    staging file that cannot be read fails in a second, not after a JVM's start-up)."""
    from ingestion.spark_lake import export_raw, prune_versions, register_raw, session_sql

    published = export_raw(Path(staging), lake, tables=tables or None)
    spark = spark_session(lake)
    try:
        register_raw(session_sql(spark), published)
    finally:
        spark.stop()
    prune_versions(lake, published)
    print(len(published))


def _serve(lake: str, dest: str) -> None:
    """Every table of `SPARK_SERVED` as a DuckDB table of `dest`, clustered by tenant: Arrow
    from Spark (`toArrow`), written by DuckDB, no Python object per row."""
    import duckdb

    spark = spark_session(lake)
    con = duckdb.connect(dest)
    try:
        for database in SPARK_SERVED:
            con.execute(f"create schema if not exists {quote_ident(database)}")
            names = [str(r[1]) for r in spark.sql(f"show tables in `{database}`").collect()
                     if not r[2]]  # (namespace, tableName, isTemporary)
            for name in sorted(names):
                table = spark.table(f"`{database}`.`{name}`").toArrow()
                order = cluster_order(set(table.column_names))
                con.register("__spark_table", table)
                try:
                    con.execute(f"create table {quote_ident(database)}.{quote_ident(name)} as "
                                f"select * from __spark_table{order}")
                finally:
                    con.unregister("__spark_table")
    finally:
        con.close()
        spark.stop()


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
