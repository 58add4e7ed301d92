"""The dashboards over a PostgreSQL warehouse: the same pages and the same numbers as over
DuckDB (the data-access SQL is portable; PostgreSQL needs no serving copy)."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.settings import Settings
from dashboards import data
from dashboards.access import EVERYTHING, Scope
from tests.helpers.dashboard import AS_OF, DashboardWarehouse, run_cli
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import pg_url

pytestmark = pytest.mark.postgres


def _plain(row: dict[str, Any]) -> dict[str, Any]:
    """Numbers as floats: PostgreSQL sums integers into numeric, DuckDB into integers."""
    return {k: float(v) if isinstance(v, int | Decimal) and not isinstance(v, bool) else v
            for k, v in row.items()}


def test_every_page_over_postgres_matches_duckdb(dashboard_warehouse: DashboardWarehouse,
                                                 make_pg_database: Callable[[str], str],
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**dashboard_warehouse.env,
           "CRM_WAREHOUSE_URL": pg_url(make_pg_database("crm_dash"), driver="postgresql")}
    proc = run_cli(dashboard_warehouse.work, env, "run", "--date", AS_OF.isoformat())
    assert proc.returncode == 0, proc.stderr
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE"):
        monkeypatch.delenv(key, raising=False)

    pg = data.Source(Settings.from_env(env, cwd=dashboard_warehouse.work), "", cached=False)
    duck = data.Source(Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work),
                       "", cached=False)
    ana, f = Scope(business_ids=frozenset({1})), data.Filters(start=AS_OF.replace(day=1))
    for fn in (data.pipeline_totals, data.lead_totals, data.campaign_totals,
               data.contact_totals, data.sales_totals, data.risk_totals, data.velocity_totals,
               data.attribution_totals):
        for scope in (EVERYTHING, ana):
            assert _plain(fn(pg, scope, f)) == pytest.approx(_plain(fn(duck, scope, f)))
    for fn in (data.pipeline_stages, data.leads_by_source, data.campaigns_table,
               data.top_contacts, data.customer_groups, data.balances_by_contact_type,
               data.open_pipeline_by_owner, data.open_pipeline_by_close_month,
               data.sales_by_month, data.forecast_by_month, data.deals_at_risk,
               data.velocity_by_owner, data.slippage_by_owner, data.campaign_attribution):
        got, expected = fn(pg, ana, f).to_dicts(), fn(duck, ana, f).to_dicts()
        assert len(got) == len(expected) > 0, fn.__name__
        for row, want in zip(got, expected, strict=True):
            assert _plain(row) == pytest.approx(_plain(want)), fn.__name__

    assert data.names(pg, ana) == data.names(duck, ana)
    month = data.leaderboard_periods(duck, ana, "month")[0]
    assert data.leaderboard_periods(pg, ana, "month")[0] == month
    got = data.leaderboard(pg, ana, f, "month", month).to_dicts()
    want = data.leaderboard(duck, ana, f, "month", month).to_dicts()
    assert len(got) == len(want) > 0
    for row, expected in zip(got, want, strict=True):
        assert _plain(row) == pytest.approx(_plain(expected))

    # the digest reads the same numbers from either warehouse
    access = dashboard_warehouse.work / "access_pg.yml"
    access.write_text("users:\n  ana@example.com:\n    businesses: [1]\n    digest: true\n")
    printed = [run_cli(dashboard_warehouse.work, {**e, "CRM_ACCESS_FILE": str(access)},
                       "digest", "--dry-run") for e in (env, dashboard_warehouse.env)]
    assert all(p.returncode == 0 for p in printed), [p.stderr for p in printed]
    assert "Deals at risk (" in printed[0].stdout
    assert printed[0].stdout == printed[1].stdout

    for page in ("overview", "pipeline", "forecast", "team", "leads", "campaigns",
                 "customers"):
        at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / f"{page}.py"),
                               default_timeout=120)
        at.run()
        assert not at.exception, (page, [e.message for e in at.exception])
        assert len(at.metric) >= 4, page
        assert "Data as of **2026-11-01**" in at.caption[0].value
