"""The dashboards stay up while the pipeline writes: DuckDB warehouses are read through a
serving copy the pipeline publishes atomically after each successful run, and a newly
published run shows on the next page run, without a restart."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.serving_copy import publish_serving_copy, serving_path
from crm_core.settings import Settings
from dashboards import data, ui
from dashboards.access import EVERYTHING
from ingestion.warehouse import open_warehouse
from orchestration.run_log import record_successful_run
from tests.helpers.dashboard import AS_OF, DashboardWarehouse
from tests.helpers.paths import REPO_ROOT

OVERVIEW = str(REPO_ROOT / "dashboards" / "pages" / "overview.py")


def _env(monkeypatch: pytest.MonkeyPatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE"):
        monkeypatch.delenv(key, raising=False)


def test_the_serving_copy_holds_the_marts_and_run_log_only(
        dashboard_warehouse: DashboardWarehouse) -> None:
    link = serving_path(dashboard_warehouse.warehouse_file)
    assert link.name == "wh.serving.duckdb" and link.is_symlink()
    copy = link.resolve()
    assert copy.name.startswith("wh.serving.") and copy.parent == link.parent
    con = duckdb.connect(str(copy), read_only=True)
    try:
        schemas = {r[0] for r in con.execute(
            "select distinct table_schema from information_schema.tables").fetchall()}
        marts = {r[0] for r in con.execute("select table_name from information_schema.tables "
                                           "where table_schema = 'marts'").fetchall()}
    finally:
        con.close()
    assert schemas == {"marts", "meta"}
    assert {"v_crm_contact_summary", "v_crm_pipeline_summary", "v_crm_campaign_performance",
            "v_crm_lead_conversion", "open_pipeline_by_owner_month", "pipeline_by_tenant",
            "contact_segment_summary", "top_contacts"} <= marts
    assert not [p for p in copy.parent.iterdir() if p.name.endswith(".tmp")]


def test_publishing_keeps_the_current_and_previous_copy(tmp_path: Path,
                                                        dashboard_warehouse: DashboardWarehouse
                                                        ) -> None:
    shutil.copy(dashboard_warehouse.warehouse_file, tmp_path / "wh.duckdb")
    target = Settings.from_env({"CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb"},
                               cwd=tmp_path).warehouse
    published = [publish_serving_copy(target) for _ in range(3)]
    assert [p.name for p in published] == [f"wh.serving.{n}.duckdb" for n in (1, 2, 3)]
    assert serving_path(tmp_path / "wh.duckdb").resolve() == published[-1]
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith("wh.serving")) == [
        "wh.serving.2.duckdb", "wh.serving.3.duckdb", "wh.serving.duckdb"]


def test_a_new_run_shows_without_a_restart(dashboard_warehouse: DashboardWarehouse,
                                           tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    shutil.copy(dashboard_warehouse.warehouse_file, tmp_path / "wh.duckdb")
    env = {**dashboard_warehouse.env, "CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb"}
    _env(monkeypatch, env)
    settings = Settings.from_env(env, cwd=tmp_path)
    publish_serving_copy(settings.warehouse)
    at = AppTest.from_file(OVERVIEW, default_timeout=120)
    at.run()
    assert "Data as of **2026-11-01**" in at.caption[0].value
    at.run()  # cached: same answer
    assert "Data as of **2026-11-01**" in at.caption[0].value

    wh = open_warehouse(settings.warehouse)
    try:
        record_successful_run(wh, as_of=date(2026, 11, 2), run_id="next")
    finally:
        wh.close()
    publish_serving_copy(settings.warehouse)
    at.run()
    assert not at.exception
    assert "Data as of **2026-11-02**" in at.caption[0].value


def _locked(path: Path) -> bool:
    """Whether some process holds a lock on the file (DuckDB's writer does, and then no other
    process can open it). Read from /proc/locks: probing by opening the file would take a
    lock of our own and could make the pipeline run fail."""
    inode = f":{path.stat().st_ino} "
    return inode in Path("/proc/locks").read_text()


def test_pages_keep_answering_while_a_run_rewrites_the_warehouse(
        dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch) -> None:
    _env(monkeypatch, dashboard_warehouse.env)
    settings = Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work)
    expected = ui.money(data.pipeline_totals(data.Source(settings, "", cached=False),
                                             EVERYTHING, data.Filters())["open_amount"])
    run = subprocess.Popen(
        [sys.executable, "-m", "crm_cli.cli", "run", "--date", AS_OF.isoformat()],
        cwd=dashboard_warehouse.work, env={**os.environ, **dashboard_warehouse.env},
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    page_runs = 0
    writer_held_the_file = False
    try:
        while run.poll() is None:
            data.CACHE.clear()  # every page run goes to the warehouse, not the cache
            at = AppTest.from_file(OVERVIEW, default_timeout=120)
            at.run()
            assert not at.exception, [e.message for e in at.exception]
            assert not at.warning, [w.value for w in at.warning]
            shown = {m.label: m.value for m in at.metric}
            assert shown["Open pipeline"] == expected
            page_runs += 1
            writer_held_the_file |= _locked(dashboard_warehouse.warehouse_file)
            time.sleep(0.2)
    finally:
        out, err = run.communicate(timeout=900)
    assert run.returncode == 0, err
    assert page_runs >= 3
    assert writer_held_the_file, "the run never locked the warehouse: the test proved nothing"
