"""dbt and the pipeline through a Spark Thrift server (`CRM_WAREHOUSE_URL=spark://host:port`,
dbt-spark's `thrift` method over PyHive), the way Databricks SQL, EMR or Spark on Kubernetes are
reached.

A local server (pyspark's own HiveThriftServer2, on a free port, in a zone other than UTC)
gets the reference world's `raw` published through a Thrift connection
(`ingestion.spark_lake.publish_raw`, the same code as in-process); dbt runs the deal history
and the history marts through it (the incremental `crm_deal_versions`, views, tables, a date
series, the keyed PII hashes of the contacts); the marts and the contacts, read back through
the server, equal DuckDB's row for row. The server is stopped after.

Then `crm-analytics run` through a server: the loaders stage `raw` locally, the dbt step
publishes it through the server, dbt builds every model there, and the marts come back into the
dashboards' serving copy as Parquet the server writes into the lake; they equal DuckDB's.
"""

from __future__ import annotations

import json
import subprocess
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from crm_core.serving_copy import serving_path
from crm_core.urls import parse_warehouse_url
from ingestion.spark_lake import publish_raw
from orchestration.dbt_project import dbt_environment
from orchestration.pii import dbt_secret_environment
from tests.helpers.cli import CLI, clean_env, free_port, listening_addresses
from tests.helpers.spark import (
    AS_OF,
    PII_KEY,
    SparkWorld,
    assert_marts_equal,
    dbt,
    normal_rows,
    require_spark,
    same_rows,
    spark_models,
    thrift_server,
    thrift_sql,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.spark_full]

SELECT = ["+fct_deal_stage_history", "+fct_open_pipeline_daily", "stg_erp__contacts"]
#: what is read back and compared: two tables and a view with the keyed hashes
COMPARED = ("marts.fct_deal_stage_history", "marts.fct_open_pipeline_daily",
            "staging.stg_erp__contacts")


def _coerce(value: object, duck_type: str) -> object:
    """A value as the Thrift protocol hands it (dates, decimals and timestamps may come as
    text; a timestamp is the session's UTC time without zone) in the Python type DuckDB gives
    the same column."""
    if value is None:
        return None
    if duck_type.startswith("DECIMAL"):
        return Decimal(str(value))
    if duck_type == "DATE":
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if duck_type.startswith("TIMESTAMP"):
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if duck_type.endswith("TIME ZONE") else moment
    return value


def test_dbt_runs_through_a_thrift_server(spark_world: SparkWorld, tmp_path: Path) -> None:
    require_spark(thrift=True)
    lake = str(tmp_path / "lake")
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    # the server's own zone is not UTC: the session settings dbt hands it (profiles.yml's
    # server_side_parameters: UTC, the PII key's pads) must reach the session it runs in
    with thrift_server(lake, port, tmp_path / "thrift.log",
                       conf={"spark.sql.session.timeZone": "America/New_York"}):
        with thrift_sql(port) as sql:
            publish_raw(spark_world.duckdb, lake, sql)
        env = {**dbt_environment(parse_warehouse_url(url, tmp_path), "UTC", lake),
               **dbt_secret_environment(PII_KEY, postgres=False, spark=True),
               "DBT_LOG_PATH": str(tmp_path / "logs")}
        assert env["CRM_SPARK_METHOD"] == "thrift" and "PYSPARK_SUBMIT_ARGS" not in env
        proc = dbt(["run", "--select", *SELECT, "--target-path", str(tmp_path / "target"),
                    "--vars", json.dumps({"as_of_date": AS_OF, "reporting_tz": "UTC"})], env)
        assert proc.returncode == 0, proc.stdout[-4000:]
        results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
        assert {r["status"] for r in results} == {"success"}
        assert "model.crm_analytics.crm_deal_versions" in {r["unique_id"] for r in results}
        with thrift_sql(port) as sql:
            spark_rows = {relation: sql(f"select * from {relation}") for relation in COMPARED}
            spark_columns = {relation: [str(r[0]) for r in sql(f"describe {relation}")]
                             for relation in COMPARED}
    assert "127.0.0.1" not in listening_addresses(port)  # the server is gone

    con = duckdb.connect(str(spark_world.duckdb), read_only=True)
    try:
        for relation in COMPARED:
            duck = con.execute(f"describe {relation}").fetchall()
            columns = [d[0] for d in duck]
            assert spark_columns[relation][:len(columns)] == columns, relation
            floats = [d[1] in ("DOUBLE", "FLOAT") for d in duck]
            mine = normal_rows(con.execute(f"select * from {relation}").fetchall(), floats)
            theirs = normal_rows([tuple(_coerce(v, d[1]) for v, d in zip(row, duck, strict=True))
                                  for row in spark_rows[relation]], floats)
            assert mine, relation
            assert same_rows(mine, theirs), (relation, len(mine), len(theirs))
        hashed = con.execute("select count(phone_hash) from staging.stg_erp__contacts").fetchone()
        assert hashed[0] > 0  # the keyed hashes were compared, not NULL on both sides
    finally:
        con.close()


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
