"""The cockpit pages (Forecast & risk, Team), the Overview's bookings and the names on every
page, run by Streamlit's AppTest over the warehouse the real pipeline built, against numbers
worked out in plain Python from the generated rows (`tests/helpers/cockpit_truth.py`)."""

from __future__ import annotations

from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import polars as pl
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.settings import Settings
from dashboards import data, ui
from dashboards.access import EVERYTHING
from dashboards.names import Names
from tests.helpers import cockpit_truth, oracle
from tests.helpers.dashboard import AS_OF, DashboardWarehouse
from tests.helpers.paths import REPO_ROOT

#: The default date range: 90 days up to the as-of date (months Aug..Nov overlap it).
RANGE = (date(2026, 8, 4), AS_OF)
ACCESS = """
users:
  ana@example.com:
    businesses: [1]
"""


@pytest.fixture(scope="module")
def truth(dashboard_warehouse: DashboardWarehouse) -> dict[str, Any]:
    src = oracle.read_source(dashboard_warehouse.source_url)
    events = oracle.read_events(dashboard_warehouse.events_path, AS_OF)
    return {"src": src, "deals": cockpit_truth.deals(src, events, AS_OF, "UTC")}


@pytest.fixture
def page(dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch,
         tmp_path: Path) -> Callable[..., AppTest]:
    for key, value in dashboard_warehouse.env.items():
        monkeypatch.setenv(key, value)
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE", "CRM_CURRENCY"):
        monkeypatch.delenv(key, raising=False)

    def _run(name: str, *, user: str | None = None) -> AppTest:
        at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / f"{name}.py"),
                               default_timeout=120)
        if user is not None:
            (tmp_path / "access.yml").write_text(ACCESS)
            monkeypatch.setenv("CRM_AUTH", "oidc")
            monkeypatch.setenv("CRM_ACCESS_FILE", str(tmp_path / "access.yml"))
            at.user = {"is_logged_in": True, "email": user}
        at.run()
        assert not at.exception, [e.message for e in at.exception]
        return at

    return _run


def shown(at: AppTest) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for m in at.metric:
        out.setdefault(m.label, m)
    return out


def test_names_come_from_the_source_with_fallbacks(dashboard_warehouse: DashboardWarehouse,
                                                   truth: dict[str, Any]) -> None:
    settings = Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work)
    names = data.names(data.Source(settings, "", cached=False), EVERYTHING)
    expected = cockpit_truth.owner_names(truth["src"])
    assert expected[5] == "eli.cohen"  # only a username: the username
    owners_seen = {d["owner_id"] for d in truth["deals"] if d["owner_id"] is not None}
    for owner in owners_seen:
        assert names.owner(owner) == expected.get(owner, f"Owner {owner}")
    assert 24 in owners_seen and names.owner(24) == "Owner 24"  # no user row
    assert names.owner(None) == "unassigned"
    for b in truth["src"]["businesses"]:
        assert names.business(b["id"]) == b["name"]
    for b in truth["src"]["branches"]:
        assert names.branch(b["id"]) == b["name"]


def test_overview_shows_bookings_and_new_pipeline_by_month(page: Callable[..., AppTest],
                                                           truth: dict[str, Any]) -> None:
    at = page("overview")
    cards = shown(at)
    expected = cockpit_truth.bookings(truth["deals"], RANGE[0].replace(day=1), RANGE[1])
    assert cards["Bookings"].value == ui.money(expected["won"])
    assert cards["New pipeline"].value == ui.money(expected["new"])
    assert f"**{ui.money_exact(expected['won'])}**" in cards["Bookings"].help
    # 45 days of data: the months before the range are not covered, so no delta but a reason
    first = min(d["created"] for d in truth["deals"]).replace(day=1)
    assert cards["Bookings"].delta == f"no data before {first.day} {first:%b}"
    chart = at.get("plotly_chart")[0].proto.spec
    assert "Bookings (won)" in chart and "New pipeline" in chart


def test_forecast_and_risk_page_matches_the_source_rows(page: Callable[..., AppTest],
                                                        truth: dict[str, Any]) -> None:
    at = page("forecast")
    cards = shown(at)
    risky = cockpit_truth.at_risk(truth["deals"], AS_OF)
    open_amount = sum((d["money"] for d in truth["deals"] if d["state"] == "open"), Decimal(0))
    assert cards["Best case"].value == ui.money(open_amount)
    assert cards["At risk"].value == ui.money(sum((d["money"] for d in risky), Decimal(0)))
    assert cards["Overdue deals"].value == ui.count(sum(d["is_overdue"] for d in risky))
    assert any(d["is_stale"] for d in risky) and any(d["is_overdue"] for d in risky)
    table = at.dataframe[0].value
    assert len(table) == len(risky)
    names = cockpit_truth.owner_names(truth["src"])
    by_deal = {d["id"]: d for d in risky}
    for row in table.head(50).to_dict("records"):
        deal = by_deal[row["deal_id"]]
        want = ("unassigned" if deal["owner_id"] is None
                else names.get(deal["owner_id"], f"Owner {deal['owner_id']}"))
        assert row["owner_name"] == want
        assert bool(row["is_overdue"]) == deal["is_overdue"]
    assert "owner_id" not in table.columns  # shown by name; the CSV keeps both


def test_the_risk_table_lists_the_most_overdue_first_and_the_csv_has_all(
        dashboard_warehouse: DashboardWarehouse, truth: dict[str, Any]) -> None:
    """The page's table stops at a readable number of rows; which rows, and that the full
    list behind the CSV is every deal at risk, is checked against the source rows."""
    settings = Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work)
    src = data.Source(settings, "", cached=False)
    risky = cockpit_truth.at_risk(truth["deals"], AS_OF)
    order = sorted(risky, key=lambda d: (-((AS_OF - d["close_date"]).days
                                           if d["is_overdue"] else 0),
                                         -(AS_OF - d["updated"]).days, d["id"]))
    top = data.deals_at_risk(src, EVERYTHING, data.Filters(), limit=7)
    assert top["deal_id"].to_list() == [d["id"] for d in order[:7]]
    every = data.deals_at_risk(src, EVERYTHING, data.Filters())
    assert sorted(every["deal_id"].to_list()) == sorted(d["id"] for d in risky)


def test_team_page_leaderboard_matches_the_source_rows(page: Callable[..., AppTest],
                                                       truth: dict[str, Any]) -> None:
    at = page("team")
    month = AS_OF.replace(day=1)
    board = cockpit_truth.leaderboard_month(truth["deals"], month)
    cards = shown(at)
    assert cards["Bookings"].value == ui.money(sum((r["won_amount"] for r in board.values()),
                                                   Decimal(0)))
    won = sum(r["won_deals"] for r in board.values())
    lost = sum(r["lost_deals"] for r in board.values())
    assert (cards["Deals won"].value, cards["Deals lost"].value) == (f"{won:,}", f"{lost:,}")
    table = at.dataframe[0].value
    names = cockpit_truth.owner_names(truth["src"])
    top = max(board.items(), key=lambda kv: (kv[1]["won_amount"], kv[1]["won_deals"]))
    assert table.iloc[0]["owner_name"] == names.get(top[0], f"Owner {top[0]}")
    assert Decimal(str(table.iloc[0]["won_amount"])).quantize(Decimal("0.01")) == \
        top[1]["won_amount"]


def test_a_scoped_user_sees_only_their_tenant_on_the_cockpit(
        page: Callable[..., AppTest], truth: dict[str, Any]) -> None:
    at = page("forecast", user="ana@example.com")
    risky = cockpit_truth.at_risk(truth["deals"], AS_OF, business=1)
    assert shown(at)["At risk"].value == ui.money(sum((d["money"] for d in risky),
                                                      Decimal(0)))
    assert len(at.dataframe[0].value) == len(risky)
    assert at.multiselect(key="filter_business").options == [
        next(b["name"] for b in truth["src"]["businesses"] if b["id"] == 1)]


def test_labels_fall_back_and_tables_keep_ids() -> None:
    names = Names({1: "Acme"}, {}, {7: "Ana Silva"})
    df = names.with_names(pl.DataFrame({"business_id": [1, 2, None], "owner_id": [7, 8, None]}))
    assert df.columns == ["business_id", "business_name", "owner_id", "owner_name"]
    assert df["business_name"].to_list() == ["Acme", "Business 2", "no business"]
    assert df["owner_name"].to_list() == ["Ana Silva", "Owner 8", "unassigned"]


def test_crm_currency_formats_money_on_cards(page: Callable[..., AppTest],
                                             truth: dict[str, Any],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_CURRENCY", "EUR")
    at = page("forecast")
    risky = cockpit_truth.at_risk(truth["deals"], AS_OF)
    amount = sum((d["money"] for d in risky), Decimal(0))
    card = shown(at)["At risk"]
    assert card.value == "€" + ui.formats.compact(amount)
    assert f"**€{amount:,.2f}**" in card.help
    assert shown(at)["Overdue deals"].value == ui.count(sum(d["is_overdue"] for d in risky))
