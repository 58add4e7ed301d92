"""One warehouse the real pipeline built, shared by every dashboard test module (session
scope: generating and running costs about a minute).

The generated ERP gets deliberate edges before the run: the first campaign's budget is set
to 0, so there is a campaign with spend 0 and an undefined ROI; the first open deal loses its
owner and the second its expected close date, so the Pipeline page has an "unassigned" owner
and a "no close date" month to show.
"""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from tests.helpers import cockpit_truth, oracle
from tests.helpers.paths import REPO_ROOT

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


#: The default date range: 90 days up to the as-of date.
RANGE = (date(2026, 8, 4), AS_OF)


ACCESS = """
users:
  boss@example.com: all
  ana@example.com:
    businesses: [1]
  nobody@example.com:
    businesses: [999]
"""


CONFIG_VARS = ("CRM_AUTH", "CRM_ACCESS_FILE", "CRM_AUTH_HEADER")


@pytest.fixture(scope="module")
def truth(dashboard_warehouse: DashboardWarehouse) -> dict[str, Any]:
    """Source rows and the oracle's marts, computed once."""
    src = oracle.read_source(dashboard_warehouse.source_url)
    events = oracle.read_events(dashboard_warehouse.events_path, AS_OF)
    return {
        "deals": oracle.deal_states(src),
        "leads": oracle.lead_conversion(src, events, "UTC"),
        "campaigns": oracle.campaign_performance(src, events, AS_OF, "UTC"),
        "contacts": oracle.contact_summary(src),
        "owners": cockpit_truth.owner_names(src),
    }


@pytest.fixture
def app(dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> Callable[..., AppTest]:
    """`app("overview", user="ana@example.com")` -> a run AppTest of that page. With a user,
    sign-in is OIDC (`st.user`) and the access file above applies; without, demo mode."""
    for key, value in dashboard_warehouse.env.items():
        monkeypatch.setenv(key, value)
    for key in CONFIG_VARS:
        monkeypatch.delenv(key, raising=False)

    def _run(page: str, *, user: str | None = None,
             query: dict[str, str] | None = None) -> AppTest:
        at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / f"{page}.py"),
                               default_timeout=120)
        if user is not None:
            access = tmp_path / "access.yml"
            access.write_text(ACCESS)
            monkeypatch.setenv("CRM_AUTH", "oidc")
            monkeypatch.setenv("CRM_ACCESS_FILE", str(access))
            at.user = {"is_logged_in": True, "email": user}
        for key, value in (query or {}).items():
            at.query_params[key] = value
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return _run


def metrics(at: AppTest) -> dict[str, str]:
    """Label -> shown value of the first metric with each label."""
    out: dict[str, str] = {}
    for m in at.metric:
        out.setdefault(m.label, m.value)
    return out


def in_tenant(business: int | None) -> Callable[[Any], bool]:
    return lambda b: business is None or b == business


def pipeline_truth(truth: dict[str, Any], business: int | None = None) -> dict[str, Any]:
    deals = [d for d in truth["deals"] if in_tenant(business)(d["business_id"])]
    amount = {s: sum((oracle.money(d["amount"]) for d in deals if d["state"] == s), Decimal(0))
              for s in ("open", "won", "lost")}
    n = {s: sum(1 for d in deals if d["state"] == s) for s in ("open", "won", "lost")}
    return {"open": amount["open"], "won": amount["won"],
            "win_rate": n["won"] / (n["won"] + n["lost"]),
            "value_win_rate": float(amount["won"] / (amount["won"] + amount["lost"]))}


def lead_truth(truth: dict[str, Any], business: int | None = None,
               months: tuple[date, date] = (RANGE[0].replace(day=1), AS_OF)) -> dict[str, Any]:
    rows = [r for (b, _br, _s, month), r in truth["leads"].items()
            if in_tenant(business)(b) and months[0] <= month <= months[1]]
    leads = sum(r["leads"] for r in rows)
    return {"leads": leads,
            "qualification_rate": sum(r["reached_qualified"] for r in rows) / leads,
            "mean_of_row_rates": sum(r["reached_qualified"] / r["leads"] for r in rows)
            / len(rows)}


def campaign_truth(truth: dict[str, Any], business: int | None = None,
                   campaign: int | None = None) -> dict[str, Any]:
    rows = [r for (cid, day), r in truth["campaigns"].items()
            if in_tenant(business)(r["business_id"]) and RANGE[0] <= day <= RANGE[1]
            and campaign in (None, cid)]
    revenue = sum((r["revenue"] for r in rows), Decimal(0))
    spend = sum((r["spend"] for r in rows if r["spend"] is not None), Decimal(0))
    return {"revenue": revenue, "spend": spend,
            "roi": float((revenue - spend) / spend) if spend else None}


CHROMIUM = "/usr/bin/chromium"


def _require_browser() -> None:
    missing = []
    if not Path(CHROMIUM).exists() and not shutil.which("chromium"):
        missing.append("Debian's chromium (apt-get install chromium)")
    try:
        import playwright.sync_api  # noqa: F401
    except ImportError:
        missing.append("the playwright package (pip install -e '.[dev]')")
    if missing:
        reason = "browser test needs " + " and ".join(missing)
        if os.environ.get("CRM_REQUIRE_BROWSER") == "1":
            pytest.fail(f"CRM_REQUIRE_BROWSER=1 but {reason}")
        pytest.skip(reason)
