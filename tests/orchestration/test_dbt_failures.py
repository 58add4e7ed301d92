"""dbt failures read as a person reads them, and dbt's per-run target folders stay bounded.

A source with duplicated primary keys fails the run with the test's name
(`unique_stg_erp__crm_deals_deal_id`, not dbt's hash) and what it means ("crm_deals has 5
duplicated ids"), on both warehouses; the meanings of the other generic tests come from the
project's real manifest."""

from __future__ import annotations

import json
import os
import re
import sqlite3
import time
from pathlib import Path

import pytest

from crm_core.settings import PROJECT_ROOT
from orchestration.dbt_failures import describe_failures, node_name
from orchestration.dbt_project import ensure_manifest
from orchestration.dbt_targets import KEEP_DBT_TARGETS, prune_target_folders
from tests.helpers.cli import assert_one_line_error, crm

DUPLICATED = 5


def duplicate_deals(sqlite_file: Path, n: int) -> None:
    """Copy `n` deals under ids that already exist (the ERP table loses its primary key, as a
    careless export would)."""
    con = sqlite3.connect(sqlite_file)
    with con:
        (ddl,) = con.execute("select sql from sqlite_master where name = 'crm_deals'").fetchone()
        loose = re.sub(r",\s*PRIMARY KEY \(id\)", "", ddl).replace("crm_deals", "crm_deals_loose")
        assert "PRIMARY KEY" not in loose
        con.execute(loose)
        con.execute("insert into crm_deals_loose select * from crm_deals")
        con.execute("drop table crm_deals")
        con.execute("alter table crm_deals_loose rename to crm_deals")
        con.execute(f"insert into crm_deals select * from crm_deals order by id limit {n}")
    con.close()


@pytest.mark.slow
def test_duplicated_source_ids_fail_with_the_tests_name_and_meaning(
        tmp_path: Path, warehouse_url: str) -> None:
    env = {"CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_EVENTS_PATH": str(tmp_path / "events"), "CRM_WAREHOUSE_URL": warehouse_url}
    proc = crm(["generate", "--days", "10", "--end-date", "2026-03-10", "--quiet"],
                   tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    duplicate_deals(tmp_path / "erp.sqlite", DUPLICATED)
    line = assert_one_line_error(crm(["run", "--date", "2026-03-10"], tmp_path, **env),
                          "test unique_stg_erp__crm_deals_deal_id",
                          f"crm_deals has {DUPLICATED} duplicated ids")
    assert "bb9a30d218" not in line and "Got " not in line  # no hash, no bare count
    runs = [p for p in (PROJECT_ROOT / "target").iterdir() if p.name.startswith("crm_dbt_models-")]
    assert len(runs) <= KEEP_DBT_TARGETS


def test_generic_tests_are_explained_from_the_real_manifest() -> None:
    manifest = json.loads(ensure_manifest().read_text())
    tests = {node["name"]: uid for uid, node in manifest["nodes"].items()
             if node["resource_type"] == "test"}
    wanted = {
        "unique_stg_erp__crm_deals_deal_id":
            "crm_deals has 3 duplicated ids (deal_id appears on more than one row)",
        "not_null_stg_erp__crm_deals_deal_id": "crm_deals has 3 rows without a deal_id",
    }
    results = [{"unique_id": tests[name], "status": "fail", "failures": 3,
                "message": "Got 3 results, configured to fail if != 0"} for name in wanted]
    results.append({"unique_id": "model.crm_analytics.v_x", "status": "error",
                    "message": "Runtime Error in model v_x (models/v_x.sql)\n  division by zero"})
    results.append({"unique_id": tests["unique_stg_erp__crm_deals_deal_id"], "status": "pass"})
    # an in-process Spark's error: py4j's call header, then the Java exception and its stack
    results.append({"unique_id": "test.crm_analytics.assert_x", "status": "error", "message": (
        "An error occurred while calling o4398.collectToPython.\n"
        ": org.apache.spark.SparkException: Not enough memory to build and broadcast the "
        "table to all worker nodes.\n"
        "\tat org.apache.spark.sql.errors.QueryExecutionErrors$.notEnoughMemory(X.scala:2079)")})
    # a Java exception whose message starts on the next line, and one without a message
    results.append({"unique_id": "model.crm_analytics.v_y", "status": "error", "message": (
        "An error occurred while calling z:org.apache.spark.api.python.PythonRDD.collect.\n"
        ": org.apache.spark.sql.catalyst.parser.ParseException: \n"
        "[PARSE_SYNTAX_ERROR] Syntax error at or near 'form'.\n\tat org.apache.X.y(X.scala:1)")})
    results.append({"unique_id": "model.crm_analytics.v_z", "status": "error",
                    "message": ": java.lang.NullPointerException\n\tat org.apache.X.y(X.scala:1)"})
    # DuckDB's own error classes stay as they are
    results.append({"unique_id": "model.crm_analytics.v_w", "status": "error", "message": (
        "Runtime Error in model v_w (models/v_w.sql)\n"
        "  Binder Error: Referenced column \"x\" not found in FROM clause!")})
    lines = describe_failures(results, manifest)
    assert lines[:2] == [f"test {name}: {meaning}" for name, meaning in wanted.items()]
    assert lines[2:] == [
        "model v_x: division by zero",
        "test assert_x: Not enough memory to build and broadcast the table to all worker nodes.",
        "model v_y: [PARSE_SYNTAX_ERROR] Syntax error at or near 'form'.",
        "model v_z: java.lang.NullPointerException",
        'model v_w: Binder Error: Referenced column "x" not found in FROM clause!',
    ]
    assert node_name("test.crm_analytics.unique_x_id.bb9a30d218") == "unique_x_id"


def test_only_the_newest_target_folders_are_kept(tmp_path: Path) -> None:
    target = tmp_path / "target"
    folders = []
    for i in range(9):
        folder = target / f"crm_dbt_models-run{i}-abc{i}"
        folder.mkdir(parents=True)
        (folder / "run_results.json").write_text("{}")
        stamp = time.time() - 1000 + i
        os.utime(folder, (stamp, stamp))
        folders.append(folder)
    other = target / "manifest.json"
    other.write_text("{}")
    keep_dir = target / "docs_build"
    keep_dir.mkdir()
    current = folders[4]  # the running one is kept even when it is not the newest
    removed = prune_target_folders(current, keep=3)
    left = sorted(p.name for p in target.iterdir())
    assert left == sorted([current.name, folders[8].name, folders[7].name, "docs_build",
                           "manifest.json"])
    assert len(removed) == 6
