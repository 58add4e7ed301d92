"""Every dashboard page, run by Streamlit's own test harness over a warehouse the real
pipeline built. The numbers on the pages are checked against values computed here, in plain
Python, from the ERP's source rows and event files (through `tests/helpers/oracle.py`, which
shares no SQL with the models or the dashboards), for the whole warehouse and for one tenant,
with the filters and the sign-in cases that matter."""

from __future__ import annotations

import json
import math
import shutil
from collections.abc import Callable, Iterator
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import yaml
from streamlit.testing.v1 import AppTest

from crm_core.errors import CrmError
from crm_core.settings import Settings
from dashboards import data, mart_columns, ui
from dashboards.access import EVERYTHING, Scope
from dashboards.mart_columns import MartColumn
from tests.helpers import cockpit_truth, oracle
from tests.helpers.dashboard import (
    CONFIG_VARS,
    DashboardWarehouse,
    campaign_truth,
    in_tenant,
    lead_truth,
    metrics,
    pipeline_truth,
)
from tests.helpers.paths import REPO_ROOT

PAGES = ["overview", "pipeline", "forecast", "team", "leads", "campaigns", "customers"]


@pytest.mark.parametrize("page", PAGES)
def test_every_page_runs_in_demo_mode_with_its_parts(app: Callable[..., AppTest],
                                                     page: str) -> None:
    at = app(page)
    assert len(at.metric) >= 4
    assert "Data as of **2026-11-01**" in at.caption[0].value
    assert "last successful run" in at.caption[0].value
    assert "demo — not signed in" in at.sidebar.markdown[0].value  # the badge
    charts = at.get("plotly_chart")
    downloads = at.get("download_button")
    assert charts, "every page draws at least one chart"
    assert len(downloads) >= len(charts), "each chart has its CSV download"


def test_overview_kpis_match_the_source_rows(app: Callable[..., AppTest],
                                             truth: dict[str, Any]) -> None:
    shown = metrics(app("overview"))
    pipe, leads, camp = pipeline_truth(truth), lead_truth(truth), campaign_truth(truth)
    assert shown["Open pipeline"] == ui.money(pipe["open"])
    assert shown["Win rate"] == ui.pct(pipe["win_rate"])
    assert shown["Lead qualification rate"] == ui.pct(leads["qualification_rate"])
    assert shown["Leads"] == ui.count(leads["leads"])
    assert shown["Campaign revenue"] == ui.money(camp["revenue"])
    assert shown["Campaign spend"] == ui.money(camp["spend"])


def test_pipeline_win_rates_by_count_and_value(app: Callable[..., AppTest],
                                               truth: dict[str, Any]) -> None:
    at = app("pipeline")
    shown = metrics(at)
    pipe = pipeline_truth(truth)
    assert shown["Open pipeline"] == ui.money(pipe["open"])
    assert shown["Win rate (count)"] == ui.pct(pipe["win_rate"])
    assert shown["Win rate (value)"] == ui.pct(pipe["value_win_rate"])


def chart_bars(at: AppTest, file_name: str) -> dict[str, tuple[float, str]]:
    """Bar label -> (value, text on the bar) of the chart with that CSV file name."""
    [chart] = [c for c in at.get("plotly_chart") if c.proto.id.endswith(f"chart_{file_name}")]
    bar = json.loads(chart.proto.spec)["data"][0]
    labels, values = (bar["y"], bar["x"]) if bar.get("orientation") == "h" else \
        (bar["x"], bar["y"])
    return {label: (value, text) for label, value, text in
            zip(labels, values, bar["text"], strict=True)}


def open_pipeline_truth(truth: dict[str, Any], business: int | None = None,
                        owners: tuple[int, ...] = ()) -> tuple[dict, dict]:
    """Open deals from the source rows, summed by owner label and by close month label."""
    by_owner: dict[str, list[Decimal]] = {}
    by_month: dict[str, list[Decimal]] = {}
    for d in truth["deals"]:
        if d["state"] != "open" or not in_tenant(business)(d["business_id"]):
            continue
        if owners and d["owner_id"] not in owners:
            continue
        month = None if d["close_date"] is None else date.fromisoformat(
            str(d["close_date"])[:10]).replace(day=1)
        for table, key in ((by_owner, cockpit_truth.owner_label(truth["owners"],
                                                                d["owner_id"])),
                           (by_month, ui.month_label(month))):
            table.setdefault(key, []).append(oracle.money(d["amount"]))

    def bars(table: dict[str, list[Decimal]]) -> dict[str, tuple[float, str]]:
        return {k: (float(sum(v, Decimal(0))), ui.count(len(v))) for k, v in table.items()}
    return bars(by_owner), bars(by_month)


def test_open_pipeline_by_owner_and_close_month_match_the_source_deals(
        app: Callable[..., AppTest], truth: dict[str, Any]) -> None:
    owners, months = open_pipeline_truth(truth)
    assert "unassigned" in owners and "no close date" in months  # the fixture's edges
    at = app("pipeline")
    assert chart_bars(at, "open_pipeline_by_owner") == owners
    assert chart_bars(at, "open_pipeline_by_close_month") == months
    # summed, the two charts give the open pipeline KPI
    assert ui.money(sum(v for v, _ in months.values())) == metrics(at)["Open pipeline"]

    # a scoped user, whatever the URL asks for, and the owner filter on top
    mine_owners, mine_months = open_pipeline_truth(truth, business=1)
    assert mine_owners != owners
    at = app("pipeline", user="ana@example.com", query={"business": "2"})
    assert chart_bars(at, "open_pipeline_by_owner") == mine_owners
    assert chart_bars(at, "open_pipeline_by_close_month") == mine_months
    picked = at.multiselect(key="filter_owner").options[:2]
    by_label = {cockpit_truth.owner_label(truth["owners"], o): o for o in range(1, 100)}
    ids = tuple(by_label[label] for label in picked)
    at.multiselect(key="filter_owner").set_value(list(ids)).run()
    assert not at.exception
    assert at.query_params["owner"] == ",".join(map(str, ids))
    owners_two, months_two = open_pipeline_truth(truth, business=1, owners=ids)
    assert set(chart_bars(at, "open_pipeline_by_owner")) == set(picked)
    assert chart_bars(at, "open_pipeline_by_owner") == owners_two
    assert chart_bars(at, "open_pipeline_by_close_month") == months_two
    # the stage and tenant figures are not split by owner
    assert metrics(at)["Open pipeline"] == ui.money(pipeline_truth(truth, business=1)["open"])


def test_a_business_filter_narrows_and_rates_come_from_summed_parts(
        app: Callable[..., AppTest], truth: dict[str, Any]) -> None:
    at = app("leads")
    at.multiselect(key="filter_business").set_value([1]).run()
    assert not at.exception
    expected = lead_truth(truth, business=1)
    shown = metrics(at)
    assert shown["Leads"] == ui.count(expected["leads"])
    assert shown["Qualification rate"] == ui.pct(expected["qualification_rate"])
    # The check can fail: averaging the per-row rates would show another number.
    assert ui.pct(expected["mean_of_row_rates"]) != shown["Qualification rate"]
    assert at.query_params["business"] == "1"  # the URL now links to this view


def test_a_scoped_user_sees_only_their_tenant_whatever_the_url_says(
        app: Callable[..., AppTest], truth: dict[str, Any]) -> None:
    mine, everything = pipeline_truth(truth, business=1), pipeline_truth(truth)
    assert mine["open"] != everything["open"]
    for query in ({}, {"business": "2"}, {"business": "1,2,3", "branch": "5,6,7,8,9"}):
        at = app("overview", user="Ana@Example.com ", query=query)  # odd casing and spacing
        shown = metrics(at)
        assert shown["Open pipeline"] == ui.money(mine["open"]), query
        assert shown["Campaign revenue"] == ui.money(campaign_truth(truth, 1)["revenue"])
        assert at.multiselect(key="filter_business").options == ["Northwind Ltd"]
        assert "Signed in as **ana@example.com**" in [c.value for c in at.sidebar.caption]


def test_a_tenant_without_data_gets_empty_states_not_errors(
        app: Callable[..., AppTest]) -> None:
    shown = metrics(app("overview", user="nobody@example.com"))
    assert shown["Open pipeline"] == "0"
    for page, why in (("pipeline", "No deals"), ("leads", "No leads"),
                      ("campaigns", "No campaign rows"), ("customers", "No contacts")):
        at = app(page, user="nobody@example.com")
        assert any(why in info.value for info in at.info), page


def test_an_unknown_user_is_told_and_shown_nothing(app: Callable[..., AppTest]) -> None:
    at = app("overview", user="mallory@example.com")
    assert not at.metric
    assert "no access to any business or branch" in at.error[0].value


def test_a_zero_spend_campaign_has_no_roi(app: Callable[..., AppTest], truth: dict[str, Any],
                                          dashboard_warehouse: DashboardWarehouse) -> None:
    campaign = dashboard_warehouse.zero_spend_campaign
    expected = campaign_truth(truth, campaign=campaign)
    assert expected["spend"] == 0 and expected["roi"] is None
    at = app("campaigns")
    at.selectbox(key="drill_campaign").set_value(campaign).run()
    assert not at.exception
    drill = [m for m in at.metric][-5:]
    assert [m.label for m in drill] == ["Revenue", "Spend", "ROI", "CTR", "CVR"]
    assert drill[0].value == ui.money(expected["revenue"])
    assert drill[1].value == "0"
    assert drill[2].value == "n/a"


def test_customers_page_matches_the_contact_summary(app: Callable[..., AppTest],
                                                    truth: dict[str, Any]) -> None:
    contacts = truth["contacts"].values()
    shown = metrics(app("customers"))
    assert shown["Contacts"] == ui.count(len(contacts))
    assert shown["Won revenue"] == ui.money(sum(c["won_revenue"] for c in contacts))
    assert shown["Sales due"] == ui.money(sum(c["total_sale_due"] for c in contacts))


def test_customer_rollups_give_the_per_contact_numbers(
        dashboard_warehouse: DashboardWarehouse, truth: dict[str, Any]) -> None:
    """The Customers page reads small roll-ups of the contact summary: its top contacts,
    balances by contact type and customer groups equal those computed contact by contact,
    for everything, one business, and a scope plus a branch filter."""
    src = data.Source(Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work),
                      "", cached=False)
    cases = [(EVERYTHING, data.Filters(), lambda c: True),
             (Scope(business_ids=frozenset({1})), data.Filters(),
              lambda c: c["business_id"] == 1)]
    branch = next(c["branch_id"] for c in truth["contacts"].values()
                  if c["business_id"] == 1 and c["branch_id"] is not None)
    cases.append((Scope(business_ids=frozenset({1})), data.Filters(branch_ids=(branch,)),
                  lambda c: c["business_id"] == 1 and c["branch_id"] == branch))
    for scope, filters, keep in cases:
        contacts = {pk: c for pk, c in truth["contacts"].items() if keep(c)}
        ranked = sorted((c for c in contacts.items() if c[1]["won_revenue"] > 0),
                        key=lambda item: (-item[1]["won_revenue"], item[0]))[:20]
        top = data.top_contacts(src, scope, filters)
        assert [(r["contact_pk"], r["won_revenue"]) for r in top.iter_rows(named=True)] == \
            [(pk, c["won_revenue"]) for pk, c in ranked]
        balances = {r["contact_type"]: r for r in
                    data.balances_by_contact_type(src, scope, filters).iter_rows(named=True)}
        assert set(balances) == {c["contact_type"] or "unknown" for c in contacts.values()}
        for kind, row in balances.items():
            mine = [c for c in contacts.values() if (c["contact_type"] or "unknown") == kind]
            assert row["contacts"] == len(mine)
            for column in ("account_balance", "total_sale_due", "advance_balance"):
                assert row[column] == sum((c[column] for c in mine), Decimal(0)), column
        groups = {r["customer_group"]: r for r in
                  data.customer_groups(src, scope, filters).iter_rows(named=True)}
        for name, row in groups.items():
            mine = [c for c in contacts.values()
                    if (c["customer_group_name"] or "(no group)") == name]
            assert (row["contacts"], row["won_revenue"]) == \
                (len(mine), sum((c["won_revenue"] for c in mine), Decimal(0)))
        assert sum(r["contacts"] for r in groups.values()) == len(contacts)


def test_an_empty_warehouse_is_explained(tmp_path: Path,
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CRM_WAREHOUSE_URL", f"duckdb:///{tmp_path}/none.duckdb")
    for key in CONFIG_VARS:
        monkeypatch.delenv(key, raising=False)
    at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / "overview.py"))
    at.run()
    assert not at.exception
    assert "no published data" in at.warning[0].value


def test_the_campaign_table_shows_the_lifetime_columns_the_mart_marks(
        app: Callable[..., AppTest], dashboard_warehouse: DashboardWarehouse) -> None:
    """The campaign table adds the campaign_lifetime columns its .yml marks for the dashboards
    (the target audience and the share of it that converted), labelled and formatted as the
    .yml says, with the numbers computed from the source rows and the event files."""
    at = app("campaigns")
    element = at.dataframe[0]  # the first table on the page: CTR, CVR and ROI by campaign
    table = element.value
    config = json.loads(element.proto.columns)
    assert config["audience_size"]["label"] == "Audience size"
    assert config["audience_conversion_rate"]["label"] == "Audience conversion rate"
    assert config["audience_conversion_rate"]["type_config"]["format"].endswith("f%%")
    assert {"campaign_name", "ctr", "cvr", "roi"} <= set(table.columns)
    src = oracle.read_source(dashboard_warehouse.source_url)
    events = oracle.read_events(dashboard_warehouse.events_path, date(2026, 11, 1))
    want = oracle.campaign_audience(src, events, set(table["campaign_id"].astype(int)))
    assert any(r["audience_conversion_rate"] for r in want.values())  # the data has the case
    for row in table.to_dict("records"):
        expected = want[(int(row["campaign_id"]),)]
        assert row["audience_size"] == expected["audience_size"]
        rate, shown = expected["audience_conversion_rate"], row["audience_conversion_rate"]
        if rate is None:
            assert shown is None or math.isnan(shown)
        else:
            assert shown == pytest.approx(rate * 100)  # shown as a percentage


@pytest.fixture
def marts_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A copy of the marts' .yml files that a test may edit, read instead of the real ones."""
    copy = tmp_path / "marts"
    shutil.copytree(mart_columns.MARTS_DIR, copy, ignore=shutil.ignore_patterns("*.sql"))
    monkeypatch.setattr(mart_columns, "MARTS_DIR", copy)
    mart_columns.dashboard_columns.cache_clear()
    yield copy
    mart_columns.dashboard_columns.cache_clear()


def _mark(marts: Path, columns: dict[str, dict[str, str]]) -> None:
    """Mark (or add) campaign_lifetime columns for the dashboards in the copied .yml."""
    [path] = marts.rglob("campaign_lifetime.yml")
    doc = yaml.safe_load(path.read_text(encoding="utf-8"))
    [model] = [m for m in doc["models"] if m["name"] == "campaign_lifetime"]
    by_name = {c["name"]: c for c in model["columns"]}
    for name, meta in columns.items():
        if name not in by_name:
            by_name[name] = {"name": name}
            model["columns"].append(by_name[name])
        by_name[name]["config"] = {"meta": {"dashboard": meta}}
    path.write_text(yaml.safe_dump(doc, sort_keys=False), encoding="utf-8")


def test_a_column_marked_in_the_mart_yml_reaches_the_campaign_table_unedited(
        dashboard_warehouse: DashboardWarehouse, marts_dir: Path) -> None:
    """Marking another campaign_lifetime column in its .yml is all it takes: the campaign
    table selects it beside the others, in the .yml's order; a marked column the published
    warehouse does not have yet (declared, not built by the last run) is left out, and so is
    one the table already has over the date range."""
    _mark(marts_dir, {"budget": {"label": "Whole budget", "format": "money"},
                      "not_built_yet": {"label": "Later"}, "roi": {"label": "Lifetime ROI"}})
    src = data.Source(Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work),
                      "", cached=False)
    marked = data.lifetime_columns(src)
    assert marked[0] == MartColumn("budget", "Whole budget", "money")  # declared first
    # not built yet; the range's own ROI stays the table's only one
    assert not {"not_built_yet", "roi"} & {c.name for c in marked}
    table = data.campaigns_table(src, EVERYTHING, data.Filters())
    budgets = {c["id"]: c["budget"] for c in
               oracle.read_source(dashboard_warehouse.source_url)["crm_campaigns"]}
    assert table.columns[-len(marked):] == [c.name for c in marked]
    assert table.height and all(
        row["budget"] == (None if budgets.get(row["campaign_id"]) is None
                          else oracle.money(budgets[row["campaign_id"]]))
        for row in table.iter_rows(named=True))


def test_a_dashboard_format_the_tables_do_not_know_is_a_one_line_error(
        marts_dir: Path) -> None:
    _mark(marts_dir, {"budget": {"format": "currency"}})
    with pytest.raises(CrmError) as caught:
        mart_columns.dashboard_columns("campaign_lifetime")
    assert str(caught.value) == ("campaign_lifetime.yml: column budget: dashboard format "
                                 "'currency' is not one of money, count, percent, number")
