"""The overview dashboard, run by Streamlit's own test harness over a warehouse the real
pipeline built; its KPIs are checked against numbers computed here from the source rows."""

import os
import sqlite3
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from tests.conftest import REPO_ROOT

END = "2026-11-01"


@pytest.fixture(scope="module")
def demo_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    work = tmp_path_factory.mktemp("dash")
    env = {
        "CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite",
        "CRM_EVENTS_PATH": f"{work}/events",
        "CRM_WAREHOUSE_URL": f"duckdb:///{work}/wh.duckdb",
        "CRM_REPORTING_TZ": "UTC",
    }
    full = {**os.environ, **env}
    cli = [sys.executable, "-m", "orchestration.cli"]
    for args in (["generate", "--days", "45", "--seed", "7", "--end-date", END, "--quiet"],
                 ["run", "--date", END]):
        proc = subprocess.run(cli + args, cwd=work, env=full, capture_output=True, text=True,
                              timeout=600, check=False)
        assert proc.returncode == 0, proc.stderr
    return env


def _source_truth(source_url: str) -> dict[str, Decimal]:
    """Open pipeline and won revenue straight from the ERP rows (stage flags decide)."""
    con = sqlite3.connect(source_url.removeprefix("sqlite:///"))
    won_stages = {r[0] for r in con.execute("select id from crm_pipeline_stages where is_won")}
    lost_stages = {r[0] for r in con.execute("select id from crm_pipeline_stages where is_lost")}
    open_total = won_total = Decimal(0)
    for stage_id, amount in con.execute("select stage_id, cast(amount as text) from crm_deals"):
        value = Decimal(amount or 0)
        if stage_id in won_stages:
            won_total += value
        elif stage_id not in lost_stages:
            open_total += value
    return {"open": open_total, "won": won_total}


def test_overview_shows_the_headline_kpis(demo_env: dict[str, str],
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for key, value in demo_env.items():
        monkeypatch.setenv(key, value)
    at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / "overview.py"),
                           default_timeout=60)
    at.run()
    assert not at.exception
    metrics = {m.label: m.value for m in at.metric}
    truth = _source_truth(demo_env["CRM_SOURCE_URL"])
    assert metrics["Open pipeline"] == f"{float(truth['open']):,.0f}"
    assert metrics["Won revenue"] == f"{float(truth['won']):,.0f}"
    assert set(metrics) >= {"Win rate", "Lead qualification rate", "Campaign ROI"}
    assert "Data as of 2026-11-01" in " ".join(c.value for c in at.caption)
    assert len(at.get("plotly_chart")) == 2


def test_overview_explains_an_empty_warehouse(tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_WAREHOUSE_URL", f"duckdb:///{tmp_path}/none.duckdb")
    at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / "overview.py"))
    at.run()
    assert not at.exception
    assert "does not exist yet" in at.warning[0].value
