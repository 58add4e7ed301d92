"""Spark for the tests: whether it can run here, the two jobs that need their own process, dbt
as a command, and comparing what Spark built with what DuckDB built.

The in-process Spark of `spark+session://` keeps its catalog in an embedded Derby database that
admits one process at a time, and a JVM cannot be restarted inside a Python process; so
publishing `raw` and reading the built relations back each run as `python -m
tests.helpers.spark <job> ...`, one after the other, never beside dbt.
"""

from __future__ import annotations

import importlib.util
import math
import os
import shutil
import subprocess
import sys
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
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


def dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The project's dbt with `args`, in the repository, with `env` on top of this process's."""
    return subprocess.run([str(Path(sys.executable).with_name("dbt")), *args, "--profiles-dir",
                           str(REPO_ROOT)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=3600, check=False,
                          env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env})


def spark_models(work: Path) -> set[str]:
    """The models a Spark warehouse builds (the `spark` selector), as dbt itself lists them."""
    proc = dbt(["ls", "--selector", "spark", "--resource-type", "model", "--output", "name",
                "--quiet", "--target-path", str(work / "ls")],
               {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(work / "ls.duckdb")})
    assert proc.returncode == 0, proc.stdout
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


# --------------------------------------------------------------------------------------------
# Comparing relations: rows as multisets, ignoring order; DOUBLE columns (rates and averages)
# to a relative 1e-9, since Spark and DuckDB may sum floats in a different order; DECIMALs by
# value whatever their scale; everything else exactly.


def _normal(value: Any, is_float: bool) -> Any:
    if value is None:
        return None
    if is_float:
        return float(value)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def _rows(con: duckdb.DuckDBPyConnection, relation: str, columns: list[str],
          float_columns: set[str]) -> list[tuple]:
    select = ", ".join(f'"{c}"' for c in columns)
    return [tuple(_normal(v, c in float_columns) for c, v in zip(columns, row, strict=True))
            for row in con.execute(f"select {select} from {relation}").fetchall()]


def _same_floats(a: list[tuple], b: list[tuple]) -> bool:
    key = lambda row: tuple((x is None, str(type(x)), x if not isinstance(x, float)  # noqa: E731
                             else round(x, 6)) for x in row)
    for left, right in zip(sorted(a, key=key), sorted(b, key=key), strict=True):
        for x, y in zip(left, right, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif x != y:
                return False
    return True


def row_counts_if_different(con: duckdb.DuckDBPyConnection, expected: str,
                            actual: str) -> tuple[int, int] | None:
    """None when `actual` holds the same rows as `expected` (by `expected`'s columns, which
    `actual` must have), else the two row counts."""
    described = con.execute(f"describe select * from {expected}").fetchall()
    columns = [d[0] for d in described]
    floats = {d[0] for d in described if d[1] in ("DOUBLE", "FLOAT")}
    mine = _rows(con, expected, columns, floats)
    theirs = _rows(con, actual, columns, floats)
    if floats:
        same = len(mine) == len(theirs) and _same_floats(mine, theirs)
    else:
        same = Counter(mine) == Counter(theirs)
    return None if same else (len(mine), len(theirs))


def _session(lake: str):  # noqa: ANN202 - pyspark is imported only in the child
    from orchestration.spark_steps import spark_session

    return spark_session(lake)


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
