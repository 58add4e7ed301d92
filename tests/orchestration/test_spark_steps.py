"""The parts of the Spark steps that need no Spark: the marts the `spark` selector leaves out
are served empty with their contract's columns, and a child job's failure is one line.
(The steps themselves run in tests/spark/test_spark_pipeline.py.)"""

from __future__ import annotations

import json
import socket
from pathlib import Path

import duckdb
import pytest

from crm_core.errors import CrmError
from crm_core.settings import Settings
from crm_core.spark import SPARK_TOKEN_ENV
from orchestration.dbt_project import dbt_environment, ensure_manifest
from orchestration.spark_steps import add_unbuilt_marts, publish_lake_raw


def _contract_marts() -> dict[str, list[tuple[str, str]]]:
    nodes = json.loads(ensure_manifest().read_text())["nodes"].values()
    return {n["name"]: [(c["name"], c["data_type"]) for c in n["columns"].values()]
            for n in nodes
            if n["resource_type"] == "model" and n["config"].get("schema") == "marts"}


def test_marts_spark_did_not_build_are_served_empty_with_their_contract(tmp_path: Path) -> None:
    copy = tmp_path / "copy.duckdb"
    con = duckdb.connect(str(copy))
    con.execute("create schema marts")
    con.execute("create table marts.pipeline_by_tenant as select 1 as business_id")
    con.close()

    added = add_unbuilt_marts(copy)

    marts = _contract_marts()
    assert "deal_close_date_slippage" in added and "pipeline_by_tenant" not in added
    assert sorted(added) == sorted(set(marts) - {"pipeline_by_tenant"})
    con = duckdb.connect(str(copy), read_only=True)
    try:
        assert con.execute("select * from marts.pipeline_by_tenant").fetchall() == [(1,)]
        slippage = con.execute("describe marts.deal_close_date_slippage").fetchall()
        assert [r[0] for r in slippage] == [c for c, _ in marts["deal_close_date_slippage"]]
        assert dict((r[0], r[1]) for r in slippage)["first_close_date"] == "DATE"
        assert con.execute("select count(*) from marts.deal_close_date_slippage").fetchone() == (0,)
    finally:
        con.close()


def test_a_failed_child_job_is_one_line(tmp_path: Path) -> None:
    """A staging file that is not a DuckDB database: the publish job fails before Spark
    starts, and its error comes back as one line naming the step."""
    (tmp_path / "staging.duckdb").write_text("not a database")
    settings = Settings.from_env({"CRM_WAREHOUSE_URL": "spark+session://",
                                  "CRM_SPARK_STAGING_PATH": "staging.duckdb",
                                  "CRM_LAKE_PATH": "lake"}, cwd=tmp_path)
    with pytest.raises(CrmError) as raised:
        publish_lake_raw(settings)
    message = str(raised.value)
    assert message.startswith("Spark step `publish` failed: ") and "\n" not in message, message


def test_an_https_endpoint_gets_its_token_from_the_environment_never_in_an_error(
        tmp_path: Path) -> None:
    """dbt's profile gets a Databricks-style endpoint's organization, cluster and token (the
    token as a `DBT_ENV_SECRET_*`, which dbt scrubs); a Spark job gets the token in its
    environment, not its command line, and an endpoint it cannot reach fails in one line that
    names the endpoint and not the token. (A run through such an endpoint: tests/spark.)"""
    pytest.importorskip("pyhive", reason="the [spark] extra is not installed")
    with socket.socket() as probe:  # a port nothing listens on
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    url = f"spark+http://token:s3cret-tok@127.0.0.1:{port}/sql/protocolv1/o/5/0101-cl"
    settings = Settings.from_env({"CRM_WAREHOUSE_URL": url,
                                  "CRM_SPARK_STAGING_PATH": "staging.duckdb",
                                  "CRM_LAKE_PATH": "lake"}, cwd=tmp_path)
    env = dbt_environment(settings.warehouse, "UTC", settings.lake_path)
    assert (env["CRM_SPARK_METHOD"], env["CRM_SPARK_HOST"], env["CRM_SPARK_PORT"],
            env["CRM_SPARK_ORGANIZATION"], env["CRM_SPARK_CLUSTER"]) == (
        "http", "127.0.0.1", str(port), "5", "0101-cl")
    assert env[SPARK_TOKEN_ENV] == "s3cret-tok"
    assert not any("s3cret" in v for k, v in env.items() if k != SPARK_TOKEN_ENV)
    duckdb.connect(str(tmp_path / "staging.duckdb")).close()
    with pytest.raises(CrmError) as raised:
        publish_lake_raw(settings)
    message = str(raised.value)
    assert message.startswith("Spark step `publish` failed: cannot reach the Spark endpoint "
                              f"https://127.0.0.1:{port}/sql/protocolv1/o/5/0101-cl"), message
    assert "s3cret" not in message and "\n" not in message
