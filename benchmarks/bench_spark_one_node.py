"""The one-node parts of a Spark warehouse's run at a scale, timed apart. Not a test.

    .venv/bin/python benchmarks/bench_spark_one_node.py [--scale large]

On a Spark warehouse the dbt models run on Spark; three steps stay on the machine that runs
the pipeline (docs/spark.md): the ingestion of the day's data into the staging DuckDB file,
the lake publish of `raw` (Parquet version folders, then the catalog repointed), and the
dashboards' serving copy (Spark's marts read back into a DuckDB file). This script generates
the scale's ERP (SQLite) and event files, runs `crm-analytics run` once on an in-process Spark
(`spark+session://`, a lake folder), then times the two Spark-side one-node steps again on
their own after the run, as a day's run does them after its sync and load: `publish_lake_raw`
(every published `raw` table written again and repointed, in one child process with its own
Spark session; the event tables' loads are linked, the ERP tables rewritten) and
`publish_spark_serving_copy` (every mart read out of Spark, in another such process). Prints
their seconds, the rows of the staging file's `raw` and of the marts, and the lake folder's
size.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from crm_core.settings import Settings
from orchestration.spark_steps import lake_tables, publish_lake_raw, publish_spark_serving_copy

DAY = "2026-11-01"
CLI = Path(sys.executable).with_name("crm-analytics")  # the venv running this script


def folder_mb(path: Path) -> float:
    """MB of the files under `path`, a file linked into several versions counted once."""
    sizes = {(st.st_dev, st.st_ino): st.st_size
             for st in (p.stat() for p in path.rglob("*") if p.is_file())}
    return sum(sizes.values()) / 1e6


def rows(duckdb_file: Path, schema: str) -> tuple[int, int]:
    """(tables, rows) of `schema` in a DuckDB file."""
    con = duckdb.connect(str(duckdb_file), read_only=True)
    try:
        names = [r[0] for r in con.execute(
            "select table_name from information_schema.tables where table_schema = ?",
            [schema]).fetchall()]
        total = sum(con.execute(f'select count(*) from "{schema}"."{n}"').fetchone()[0]
                    for n in names)
        return len(names), total
    finally:
        con.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", default="large")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        os.environ.update({
            "CRM_SOURCE_URL": f"sqlite:///{work / 'erp.sqlite'}",
            "CRM_EVENTS_PATH": str(work / "events"),
            "CRM_WAREHOUSE_URL": "spark+session://",
            "CRM_LAKE_PATH": str(work / "lake"),
            "CRM_SPARK_STAGING_PATH": str(work / "staging.duckdb"),
        })
        subprocess.run([str(CLI), "generate", "--scale", args.scale, "--end-date", DAY,
                        "--quiet"], check=True, cwd=work)
        print(f"scale {args.scale}; load average {os.getloadavg()[0]:.1f}", flush=True)
        started = time.perf_counter()
        subprocess.run([str(CLI), "run", "--date", DAY, "--quiet"], check=True, cwd=work)
        print(f"crm-analytics run on spark+session:// {time.perf_counter() - started:8.1f} s"
              f"  (load average {os.getloadavg()[0]:.1f})", flush=True)

        settings = Settings.from_env(cwd=work)
        staging = work / "staging.duckdb"
        raw_tables, raw_rows = rows(staging, "raw")
        started = time.perf_counter()
        published = publish_lake_raw(settings)
        publish_s = time.perf_counter() - started
        print(f"publish_lake_raw: {published} of {len(lake_tables())} tables, "
              f"{raw_rows:,} rows in the staging file's {raw_tables} raw tables (the "
              f"published ones and the sync's own state); the lake folder "
              f"{folder_mb(work / 'lake'):,.0f} MB (raw's versions, a linked file counted "
              f"once; the models Spark built; its catalog): "
              f"{publish_s:.1f} s", flush=True)
        started = time.perf_counter()
        copy = publish_spark_serving_copy(settings)
        serve_s = time.perf_counter() - started
        mart_tables, mart_rows = rows(copy, "marts")
        print(f"publish_spark_serving_copy: {mart_tables} marts, {mart_rows:,} rows, "
              f"{copy.stat().st_size / 1e6:,.0f} MB: {serve_s:.1f} s "
              f"(load average {os.getloadavg()[0]:.1f})", flush=True)


if __name__ == "__main__":
    main()
