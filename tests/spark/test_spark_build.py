"""The dbt project on Spark (`spark+session://`): every model and test that does not depend on
the deal snapshot builds and passes, and every relation equals DuckDB's on the same inputs.

One world at `small` (ERP and events generated for a fixed date, PII key set): a `crm-analytics
run` on DuckDB is the reference; its `raw` is published to the lake as Parquet external tables
(`ingestion.spark_lake`); dbt builds on Spark with the environment the pipeline would give it
(`dbt_environment`, `dbt_secret_environment`). Rows are compared as multisets, ignoring order;
DOUBLE columns (rates and averages) to a relative 1e-9, since Spark and DuckDB may sum floats
in a different order; everything else exactly.

The deal versions model `crm_deal_versions` is not Spark-ready yet (contract types, unit-test
SQL): the selector `spark` (selectors.yml) leaves it and the models reading it out.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from crm_core.urls import parse_warehouse_url
from orchestration.dbt_project import dbt_environment
from orchestration.pii import dbt_secret_environment
from tests.helpers.spark import dbt, require_spark, row_counts_if_different, spark_job

pytestmark = [pytest.mark.slow, pytest.mark.spark]

AS_OF = "2026-03-31"
PII_KEY = "spark-test-key-0123456789"
SCHEMAS = ("staging", "intermediate", "marts")


def _cli(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "crm_cli.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=1800, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@pytest.fixture(scope="module")
def built(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    require_spark()
    work = tmp_path_factory.mktemp("spark")
    env = {"CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite", "CRM_EVENTS_PATH": str(work / "ev"),
           "CRM_WAREHOUSE_URL": f"duckdb:///{work}/wh.duckdb", "CRM_PII_KEY": PII_KEY}
    _cli(["generate", "--scale", "small", "--end-date", AS_OF, "--quiet"], work, env)
    _cli(["run", "--date", AS_OF], work, env)

    lake = str(work / "lake")
    spark_job("publish", str(work / "wh.duckdb"), lake, env={})
    target = parse_warehouse_url("spark+session://", work)
    dbt_env = {**dbt_environment(target, "UTC", lake),
               **dbt_secret_environment(PII_KEY, postgres=False, spark=True),
               "DBT_LOG_PATH": str(work / "logs")}
    proc = dbt(["build", "--selector", "spark", "--target-path", str(work / "target"),
                "--vars", json.dumps({"as_of_date": AS_OF, "reporting_tz": "UTC"})], dbt_env)
    results = json.loads((work / "target" / "run_results.json").read_text())["results"]
    # exposures (the dashboards) are reported as no-op: nothing to build
    failed = [r["unique_id"] for r in results if r["status"] not in ("success", "pass")
              and not r["unique_id"].startswith("exposure.")]
    assert proc.returncode == 0 and not failed, (failed, proc.stdout[-4000:])

    (work / "out").mkdir()
    spark_job("export", lake, str(work / "out"), *SCHEMAS, env={})
    return {"work": work, "duckdb": work / "wh.duckdb", "out": work / "out",
            "results": work / "target" / "run_results.json",
            "snapshot_dependants": _snapshot_dependants(work)}


def _snapshot_dependants(work: Path) -> set[str]:
    """The models the `spark` selector leaves out, as dbt itself lists them."""
    proc = dbt(["ls", "--select", "crm_deal_versions+", "--resource-type", "model",
                "--output", "name", "--quiet", "--target-path", str(work / "ls")],
               {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(work / "ls.duckdb")})
    assert proc.returncode == 0, proc.stdout
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def test_every_model_and_test_but_the_snapshots_builds_on_spark(built: dict[str, Any]) -> None:
    results = json.loads(built["results"].read_text())["results"]
    kinds = Counter(r["unique_id"].split(".")[0] for r in results)
    assert kinds["model"] >= 40 and kinds["test"] >= 200 and kinds["unit_test"] >= 30, kinds
    built_models = {r["unique_id"].split(".")[-1] for r in results
                    if r["unique_id"].startswith("model.")}
    assert built["snapshot_dependants"] and not built_models & built["snapshot_dependants"]
    assert "int_campaign_event_days" in built_models


def test_every_relation_equals_duckdbs(built: dict[str, Any]) -> None:
    con = duckdb.connect(str(built["duckdb"]), read_only=True)
    try:
        expected = {f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in {SCHEMAS}").fetchall()}
        skipped = {f"{s}.{name}" for s in SCHEMAS for name in built["snapshot_dependants"]}
        exported = {p.name.removesuffix(".parquet") for p in built["out"].glob("*.parquet")}
        assert exported == expected - skipped, sorted(exported ^ (expected - skipped))
        differing = []
        for relation in sorted(exported):
            path = built["out"] / f"{relation}.parquet"
            spark_cols = [d[0] for d in con.execute(
                f"describe select * from read_parquet('{path}')").fetchall()]
            duck = con.execute(f"describe {relation}").fetchall()
            assert sorted(spark_cols) == sorted(d[0] for d in duck), relation
            counts = row_counts_if_different(con, relation, f"read_parquet('{path}')")
            if counts:
                differing.append(f"{relation} ({counts[0]} rows on DuckDB, {counts[1]} on Spark)")
        assert not differing, differing
        hashes = con.execute("select count(phone_hash) from staging.stg_erp__contacts").fetchone()
        assert hashes[0] > 0  # the keyed hashes were compared, not NULL on both sides
    finally:
        con.close()
