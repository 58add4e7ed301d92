"""Spark for the tests: whether it can run here, and the two jobs that need their own process.

The in-process Spark of `spark+session://` keeps its catalog in an embedded Derby database that
admits one process at a time, and a JVM cannot be restarted inside a Python process; so
publishing `raw` and reading the built relations back each run as `python -m
tests.helpers.spark <job> ...`, one after the other, never beside dbt.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.paths import REPO_ROOT


def require_spark() -> None:
    """Skip (fail under CRM_REQUIRE_SPARK=1) without pyspark and dbt-spark, or without Java."""
    reason = ""
    if not (_installed("pyspark") and _installed("dbt.adapters.spark")):
        reason = "pyspark or dbt-spark is not installed (pip install -e '.[spark]')"
    elif shutil.which("java") is None:
        reason = "no Java runtime (`java`) for pyspark (apt-get install openjdk-17-jre-headless)"
    if reason:
        if os.environ.get("CRM_REQUIRE_SPARK") == "1":
            pytest.fail(f"CRM_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


def spark_job(*args: str, env: dict[str, str]) -> None:
    """Run one job of this module in a child process; assert it succeeded."""
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.spark", *args], cwd=REPO_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


def _session(lake: str):  # noqa: ANN202 - pyspark is imported only in the child
    from crm_core.spark import session_submit_args

    os.environ["PYSPARK_SUBMIT_ARGS"] = session_submit_args(lake)
    from pyspark.sql import SparkSession

    spark = SparkSession.builder.enableHiveSupport().getOrCreate()
    spark.sparkContext.setLogLevel("ERROR")
    return spark


def _publish(duckdb_path: str, lake: str) -> None:
    from ingestion.spark_lake import publish_raw, session_sql

    spark = _session(lake)
    try:
        publish_raw(Path(duckdb_path), lake, session_sql(spark))
    finally:
        spark.stop()


def _export(lake: str, out: str, *databases: str) -> None:
    """Every table and view of `databases`, as `<out>/<database>.<name>.parquet`."""
    import pyarrow.parquet as pq

    spark = _session(lake)
    try:
        for database in databases:
            for row in spark.sql(f"show tables in {database}").collect():
                table = spark.table(f"{database}.{row.tableName}").toArrow()
                pq.write_table(table, f"{out}/{database}.{row.tableName}.parquet")
    finally:
        spark.stop()


if __name__ == "__main__":
    job, *rest = sys.argv[1:]
    {"publish": _publish, "export": _export}[job](*rest)
