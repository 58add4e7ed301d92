"""`crm-analytics run` through a Spark Thrift server (`CRM_WAREHOUSE_URL=spark://host:port`,
dbt-spark's `thrift` method over PyHive), the way Databricks SQL, EMR or Spark on Kubernetes are
reached: the loaders stage `raw` locally, the dbt step publishes it through the server, dbt
builds every model there, and the marts come back into the dashboards' serving copy as Parquet
the server writes into the lake; they equal DuckDB's.

dbt alone through a server (the deal history and the history marts, compared row for row) is
in `test_spark_pipeline.py`, which `make test` runs; this whole run is in `make test-spark`.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

from crm_core.serving_copy import serving_path
from tests.helpers.cli import CLI, clean_env, free_port
from tests.helpers.spark import (
    AS_OF,
    PII_KEY,
    SparkWorld,
    assert_marts_equal,
    require_spark,
    spark_models,
    thrift_server,
    thrift_sql,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.spark_full]

def test_the_pipeline_runs_through_a_thrift_server(spark_world: SparkWorld,
                                                   tmp_path: Path) -> None:
    require_spark(thrift=True)
    lake = tmp_path / "lake"
    port = free_port()
    env = {"CRM_SOURCE_URL": f"sqlite:///{spark_world.work}/erp.sqlite",
           "CRM_EVENTS_PATH": str(spark_world.work / "ev"), "CRM_PII_KEY": PII_KEY,
           "CRM_WAREHOUSE_URL": f"spark://crm@127.0.0.1:{port}", "CRM_LAKE_PATH": str(lake)}
    with thrift_server(str(lake), port, tmp_path / "thrift.log",
                       conf={"spark.sql.session.timeZone": "America/New_York"}):
        with thrift_sql(port):
            pass  # serving sessions
        proc = subprocess.run([*CLI, "run", "--date", AS_OF], cwd=tmp_path,
                              env=clean_env(**env), capture_output=True, text=True,
                              timeout=3600, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    assert f"marts are in spark://127.0.0.1:{port}" in proc.stdout, proc.stdout
    copy = serving_path(tmp_path / "data" / "spark_staging.duckdb").resolve()
    assert not list((lake / "serving").iterdir())  # the Parquet handed over is gone
    assert_marts_equal(copy, serving_path(spark_world.duckdb).resolve(),
                       spark_models(tmp_path))
