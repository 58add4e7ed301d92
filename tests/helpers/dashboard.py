"""One warehouse the real pipeline built, shared by every dashboard test module (session
scope: generating and running costs about a minute).

The generated ERP gets deliberate edges before the run: the first campaign's budget is set
to 0, so there is a campaign with spend 0 and an undefined ROI; the first open deal loses its
owner and the second its expected close date, so the Pipeline page has an "unassigned" owner
and a "no close date" month to show.
"""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import pytest

AS_OF = date(2026, 11, 1)


@dataclass(frozen=True)
class DashboardWarehouse:
    work: Path
    env: dict[str, str]
    zero_spend_campaign: int

    @property
    def source_url(self) -> str:
        return self.env["CRM_SOURCE_URL"]

    @property
    def events_path(self) -> Path:
        return Path(self.env["CRM_EVENTS_PATH"])

    @property
    def warehouse_file(self) -> Path:
        return Path(self.env["CRM_WAREHOUSE_URL"].removeprefix("duckdb:///"))


def run_cli(work: Path, env: dict[str, str], *args: str,
            timeout: int = 900) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "crm_cli.cli", *args], cwd=work,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=timeout, check=False)


@pytest.fixture(scope="session")
def dashboard_warehouse(tmp_path_factory: pytest.TempPathFactory) -> DashboardWarehouse:
    work = tmp_path_factory.mktemp("dashboards")
    env = {
        "CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite",
        "CRM_EVENTS_PATH": f"{work}/events",
        "CRM_WAREHOUSE_URL": f"duckdb:///{work}/wh.duckdb",
        "CRM_REPORTING_TZ": "UTC",
    }
    proc = run_cli(work, env, "generate", "--days", "45", "--seed", "7", "--end-date",
                   AS_OF.isoformat(), "--quiet")
    assert proc.returncode == 0, proc.stderr
    with sqlite3.connect(work / "erp.sqlite") as con:
        campaign = con.execute(
            "select min(id) from crm_campaigns "
            "where start_date is not null and end_date is not null").fetchone()[0]
        con.execute("update crm_campaigns set budget = 0 where id = ?", [campaign])
        open_deals = [row[0] for row in con.execute(
            "select d.id from crm_deals d join crm_pipeline_stages s on s.id = d.stage_id "
            "where not s.is_won and not s.is_lost order by d.id limit 2")]
        con.execute("update crm_deals set owner_id = null where id = ?", [open_deals[0]])
        con.execute("update crm_deals set close_date = null where id = ?", [open_deals[1]])
    proc = run_cli(work, env, "run", "--date", AS_OF.isoformat())
    assert proc.returncode == 0, proc.stderr
    return DashboardWarehouse(work, env, campaign)
