"""The dbt project on Spark (`spark+session://`): every model, unit test and data test builds
and passes, and every relation equals DuckDB's on the same inputs.

One world at `small` (`spark_world`: ERP and events generated for a fixed date, PII key set,
one `crm-analytics run` on DuckDB as the reference); its `raw` is published to the lake as
Parquet external tables (`ingestion.spark_lake`); dbt builds on Spark with the environment the
pipeline would give it (`dbt_environment`, `dbt_secret_environment`), then runs the deal
history `crm_deal_versions` once more for the same date: its incremental path (an `insert
into`, the only write Parquet without Delta allows) appends nothing, as on DuckDB. Rows are
compared as multisets, ignoring order; DOUBLE columns to a relative 1e-9, everything else
exactly.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.helpers.spark import (
    AS_OF,
    SparkWorld,
    dbt,
    normal_rows,
    same_rows,
    spark_dbt_env,
    spark_job,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.spark_full]

SCHEMAS = ("snapshots", "staging", "intermediate", "marts")
#: The deal history and the models that read it (the ones that need its incremental model).
DEAL_HISTORY_MODELS = {"crm_deal_versions", "int_crm_deal_versions", "fct_deal_stage_history",
                       "fct_open_pipeline_daily", "fct_stage_conversion",
                       "deal_close_date_slippage", "sales_forecast", "stage_win_probability"}


def _results(target: Path) -> list[dict[str, Any]]:
    return json.loads((target / "run_results.json").read_text())["results"]


def _failed(results: list[dict[str, Any]]) -> list[str]:
    # exposures (the dashboards) are reported as no-op: nothing to build
    return [r["unique_id"] for r in results if r["status"] not in ("success", "pass")
            and not r["unique_id"].startswith("exposure.")]


@pytest.fixture(scope="module")
def built(spark_world: SparkWorld, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    work = tmp_path_factory.mktemp("spark_build")
    lake = str(work / "lake")
    spark_job("publish", lake, str(spark_world.duckdb), env={})
    dbt_env = spark_dbt_env("spark+session://", lake, work)
    dbt_vars = json.dumps({"as_of_date": AS_OF, "reporting_tz": "UTC"})
    proc = dbt(["build", "--target-path", str(work / "target"), "--vars", dbt_vars], dbt_env)
    results = _results(work / "target")
    assert proc.returncode == 0 and not _failed(results), (_failed(results), proc.stdout[-4000:])

    rerun = dbt(["run", "--select", "crm_deal_versions", "--target-path", str(work / "rerun"),
                 "--vars", dbt_vars], dbt_env)
    assert rerun.returncode == 0 and not _failed(_results(work / "rerun")), rerun.stdout[-4000:]

    (work / "out").mkdir()
    spark_job("export", lake, str(work / "out"), *SCHEMAS, env={})
    return {"duckdb": spark_world.duckdb, "out": work / "out", "results": results,
            "rerun": work / "rerun"}


def test_every_model_and_test_builds_on_spark(built: dict[str, Any]) -> None:
    kinds = Counter(r["unique_id"].split(".")[0] for r in built["results"])
    assert kinds["model"] >= 48 and kinds["test"] >= 200 and kinds["unit_test"] >= 40, kinds
    built_models = {r["unique_id"].split(".")[-1] for r in built["results"]
                    if r["unique_id"].startswith("model.")}
    assert built_models >= DEAL_HISTORY_MODELS
    assert "int_campaign_event_days" in built_models


def test_the_deal_history_rerun_is_an_insert_into_the_table(built: dict[str, Any]) -> None:
    """The second run took the incremental path: Spark appended to the existing Parquet table
    (what it appended, nothing, is checked with the relations below)."""
    [statement] = list((built["rerun"] / "run").rglob("crm_deal_versions.sql"))
    sql = " ".join(statement.read_text().lower().split())
    assert "insert into table" in sql and "snapshots.crm_deal_versions" in sql, sql
    assert "overwrite" not in sql and "merge into" not in sql


def _select_list(columns: list[str], naive_utc: set[str]) -> str:
    """Columns by name; those in `naive_utc` (Spark's instant where DuckDB has a `timestamp`
    without zone) as the naive UTC time, which is what Spark wrote in its UTC session."""
    return ", ".join(f"timezone('UTC', \"{c}\")" if c in naive_utc else f'"{c}"'
                     for c in columns)


def test_every_relation_equals_duckdbs(built: dict[str, Any]) -> None:
    con = duckdb.connect(str(built["duckdb"]), read_only=True)
    try:
        expected = {f"{s}.{t}" for s, t in con.execute(
            "select table_schema, table_name from information_schema.tables "
            f"where table_schema in {SCHEMAS}").fetchall()}
        exported = {p.name.removesuffix(".parquet") for p in built["out"].glob("*.parquet")}
        assert exported == expected, sorted(exported ^ expected)
        assert "snapshots.crm_deal_versions" in exported
        differing = []
        for relation in sorted(exported):
            path = built["out"] / f"{relation}.parquet"
            spark_types = dict((d[0], d[1]) for d in con.execute(
                f"describe select * from read_parquet('{path}')").fetchall())
            duck = con.execute(f"describe {relation}").fetchall()
            assert sorted(spark_types) == sorted(d[0] for d in duck), relation
            columns = [d[0] for d in duck]
            floats = [d[1] in ("DOUBLE", "FLOAT") for d in duck]
            naive_utc = {d[0] for d in duck if d[1] == "TIMESTAMP"
                         and spark_types[d[0]] == "TIMESTAMP WITH TIME ZONE"}
            mine = normal_rows(con.execute(
                f"select {_select_list(columns, set())} from {relation}").fetchall(), floats)
            theirs = normal_rows(con.execute(
                f"select {_select_list(columns, naive_utc)} from read_parquet('{path}')"
            ).fetchall(), floats)
            if not same_rows(mine, theirs):
                differing.append(f"{relation} ({len(mine)} rows on DuckDB, {len(theirs)} on Spark)")
        assert not differing, differing
        counts = con.execute("select (select count(phone_hash) from staging.stg_erp__contacts), "
                             "(select count(*) from snapshots.crm_deal_versions)").fetchone()
        assert counts[0] > 0  # the keyed hashes were compared, not NULL on both sides
        assert counts[1] > 0  # and the deal history has versions
    finally:
        con.close()
