"""Who may see what: the access file, the sign-in modes, and the scope applied in the SQL
(no filter can widen it). Pure parts run without a warehouse; the SQL checks use the shared,
pipeline-built one."""

from __future__ import annotations

import hashlib
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from streamlit.testing.v1 import AppTest

from crm_core.errors import CrmError
from crm_core.settings import Settings
from dashboards import data, ui
from dashboards.access import EVERYTHING, NOTHING, Scope, load_access_file, resolve_viewer
from tests.helpers.dashboard import (
    ACCESS,
    RANGE,
    DashboardWarehouse,
    campaign_truth,
    metrics,
    pipeline_truth,
)
from tests.helpers.paths import REPO_ROOT


def settings(tmp_path: Path, **env: str) -> Settings:
    return Settings.from_env(env, cwd=tmp_path)


def test_the_access_file_maps_users_to_scopes(tmp_path: Path) -> None:
    path = tmp_path / "access.yml"
    path.write_text("users:\n  Boss@Example.com: all\n  ana@example.com:\n"
                    "    businesses: [1]\n    branches: [7, 8]\n  empty@example.com: {}\n")
    scopes = load_access_file(path)
    assert scopes["boss@example.com"] == EVERYTHING
    assert scopes["ana@example.com"] == Scope(business_ids=frozenset({1}),
                                              branch_ids=frozenset({7, 8}))
    assert scopes["empty@example.com"].is_empty


@pytest.mark.parametrize("text, message", [
    ("users: [", "is not valid YAML (line 1)"),
    ("who: {}", "needs a top-level `users:` mapping"),
    ("users:\n  ana: some", "must map to `all` or to `businesses:`"),
    ("users:\n  ana:\n    businesses: ['1']", "must be a list of whole-number ids"),
    ("users:\n  ana:\n    tenants: [1]", "must map to `all` or to `businesses:`"),
])
def test_a_bad_access_file_is_one_line_naming_the_problem(tmp_path: Path, text: str,
                                                          message: str) -> None:
    path = tmp_path / "access.yml"
    path.write_text(text)
    with pytest.raises(CrmError, match=re.escape(message)) as err:
        load_access_file(path)
    assert "\n" not in str(err.value)


def test_an_access_file_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    path = tmp_path / "access.yml"
    path.write_bytes(b"users:\n  ana\xe9@example.com: all\n")  # Latin-1, as some editors save
    with pytest.raises(CrmError, match=re.escape(f"CRM_ACCESS_FILE {path} is not UTF-8 text "
                                                 "(byte 0xe9 at offset 12)")):
        load_access_file(path)


def test_sign_in_modes(tmp_path: Path) -> None:
    access = tmp_path / "access.yml"
    access.write_text("users:\n  ana@example.com:\n    businesses: [1]\n")
    demo = resolve_viewer(settings(tmp_path), header_user=None, oidc_user=None,
                          oidc_configured=False)
    assert (demo.mode, demo.scope) == ("demo", EVERYTHING)

    header = settings(tmp_path, CRM_AUTH="header", CRM_ACCESS_FILE=str(access))
    ana = resolve_viewer(header, header_user=" ANA@example.com", oidc_user=None,
                         oidc_configured=False)
    assert (ana.mode, ana.user, ana.scope.business_ids) == ("user", "ana@example.com",
                                                            frozenset({1}))
    # The header is the identity in header mode: an OIDC user is ignored, and vice versa.
    assert not resolve_viewer(header, header_user=None, oidc_user="ana@example.com",
                              oidc_configured=True).allowed
    stranger = resolve_viewer(header, header_user="eve@example.com", oidc_user=None,
                              oidc_configured=False)
    assert (stranger.mode, stranger.scope) == ("denied", NOTHING)
    assert "no access to any business or branch" in stranger.message

    auto = settings(tmp_path, CRM_ACCESS_FILE=str(access))
    assert resolve_viewer(auto, header_user=None, oidc_user="ana@example.com",
                          oidc_configured=True).mode == "user"
    # Half-configured setups fail closed.
    assert not resolve_viewer(auto, header_user="ana@example.com", oidc_user=None,
                              oidc_configured=False).allowed
    no_file = settings(tmp_path, CRM_AUTH="header")
    assert "CRM_ACCESS_FILE is not" in resolve_viewer(
        no_file, header_user="ana@example.com", oidc_user=None,
        oidc_configured=False).message


def test_auth_settings_are_validated(tmp_path: Path) -> None:
    with pytest.raises(CrmError, match="CRM_AUTH must be one of"):
        settings(tmp_path, CRM_AUTH="ldap")
    custom = settings(tmp_path, CRM_AUTH="HEADER", CRM_AUTH_HEADER="X-Auth-Request-Email")
    assert (custom.auth, custom.auth_header) == ("header", "X-Auth-Request-Email")


def test_filters_cannot_widen_the_scope_in_sql(dashboard_warehouse: DashboardWarehouse) -> None:
    src = data.Source(Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work),
                      "", cached=False)
    ana = Scope(business_ids=frozenset({1}))
    everything = data.pipeline_totals(src, EVERYTHING, data.Filters())
    mine = data.pipeline_totals(src, ana, data.Filters())
    assert 0 < mine["open_amount"] < everything["open_amount"]
    other = data.Filters(business_ids=(2,))
    assert data.pipeline_totals(src, EVERYTHING, other)["open_amount"] > 0
    assert data.pipeline_totals(src, ana, other)["total_deals"] == 0
    assert data.campaigns_table(src, ana, other).height == 0
    assert data.top_contacts(src, ana, other).height == 0
    assert data.tenants(src, ana)["business_id"].unique().to_list() == [1]
    # An SQL-looking filter value is only ever a bound parameter.
    assert data.lead_sources(src, ana) and data.leads_by_source(
        src, ana, data.Filters(sources=("x') or ('1'='1",))).height == 0
    assert data.pipeline_totals(src, NOTHING, data.Filters())["total_deals"] == 0


def test_previous_periods_have_equal_length() -> None:
    days = data.Filters(business_ids=(1,), start=date(2026, 10, 5), end=date(2026, 11, 1))
    before = days.previous_period()
    assert (before.start, before.end, before.business_ids) == (date(2026, 9, 7),
                                                               date(2026, 10, 4), (1,))
    # Lead cohorts are months: Oct 5 – Nov 1 overlaps two months, so compare Aug and Sep.
    months = data.previous_months(days)
    assert (months.start, months.end) == (date(2026, 8, 1), date(2026, 9, 30))
    across_year = data.previous_months(data.Filters(start=date(2026, 1, 1),
                                                    end=date(2026, 2, 28)))
    assert (across_year.start, across_year.end) == (date(2025, 11, 1), date(2025, 12, 31))
    open_ended = data.Filters(start=date(2026, 10, 5)).previous_period()
    assert open_ended.start > open_ended.end  # an empty period: nothing to compare with


# --------------------------------------------------------------------------------------------
# Tenant scope against hostile input (RELIABILITY.md, "Dashboards: tenant scope"). The
# viewer is ana (business 1). Whatever the URL, the widget state or a filter value says, the
# numbers are business 1's as the oracle computes them, nothing of another tenant appears, and
# the warehouse is unchanged afterwards.

INJECTIONS = ["1 OR 1=1", "1) or (1=1", "'; drop table marts.v_crm_pipeline_summary; --",
              "x') or ('1'='1", "2 union select * from marts.v_crm_pipeline_summary",
              "١", "２", "1\u00a0", "1\x00", "%", "*", ""]
HUGE = [2**63 - 1, 2**63, 10**30, -(2**63), -1, 0]
ANA = Scope(business_ids=frozenset({1}))


def file_digests(dashboard_warehouse: DashboardWarehouse) -> dict[str, str]:
    """SHA-256 of the warehouse file and every serving copy: "unchanged" means byte for byte."""
    folder = dashboard_warehouse.warehouse_file.parent
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.glob("wh*.duckdb")) if not p.is_symlink()}


def source_for(dashboard_warehouse: DashboardWarehouse) -> data.Source:
    return data.Source(Settings.from_env(dashboard_warehouse.env, cwd=dashboard_warehouse.work),
                       "", cached=False)


def assert_only_business_1(src: data.Source, scope: Scope, filters: data.Filters,
                           truth: dict[str, Any], *, expect_rows: bool) -> None:
    """Every data-access function: only business 1's rows, and business 1's oracle totals
    (or nothing at all when the filter excludes business 1)."""
    pipe = pipeline_truth(truth, business=1)
    deals = [d for d in truth["deals"] if d["business_id"] == 1]
    totals = data.pipeline_totals(src, scope, filters)
    if expect_rows:
        assert (totals["open_amount"], totals["won_amount"], totals["total_deals"]) == \
            (pipe["open"], pipe["won"], len(deals)), filters
    else:
        assert totals["total_deals"] == 0 and totals["open_amount"] == 0, filters
    frames = {
        "tenants": data.tenants(src, scope),
        "pipeline_by_tenant": data.pipeline_by_tenant(src, scope, filters),
        "campaigns_table": data.campaigns_table(src, scope, filters),
        "top_contacts": data.top_contacts(src, scope, filters),
    }
    for name, frame in frames.items():
        assert set(frame["business_id"].to_list()) <= {1}, (name, filters)
    if expect_rows:
        assert all(frames[n].height for n in ("pipeline_by_tenant", "top_contacts"))
    contacts = [c for c in truth["contacts"].values() if c["business_id"] == 1]
    shown = data.contact_totals(src, scope, filters)
    assert shown["contacts"] == (len(contacts) if expect_rows else 0), filters
    for function in (data.open_pipeline_by_owner, data.open_pipeline_by_close_month):
        frame = function(src, scope, filters)
        assert sum(frame["open_amount"].to_list(), Decimal(0)) == \
            (pipe["open"] if expect_rows else 0), (function.__name__, filters)


def test_hostile_filter_values_never_widen_the_scope_in_sql(
        dashboard_warehouse: DashboardWarehouse, truth: dict[str, Any]) -> None:
    before = file_digests(dashboard_warehouse)
    src = source_for(dashboard_warehouse)
    other_branches = tuple(sorted({d["branch_id"] for d in truth["deals"]
                                   if d["business_id"] not in (None, 1) and d["branch_id"]}))
    assert other_branches
    narrowing_to_1 = [data.Filters(), data.Filters(business_ids=(1, 1, 2, 3, 4, 5, 6)),
                      data.Filters(business_ids=(1, *HUGE))]
    excluding_1 = [data.Filters(business_ids=(2,)), data.Filters(branch_ids=other_branches),
                   *(data.Filters(business_ids=(n,)) for n in HUGE),
                   *(data.Filters(branch_ids=(n,)) for n in HUGE)]
    for filters in narrowing_to_1:
        assert_only_business_1(src, ANA, filters, truth, expect_rows=True)
    for filters in excluding_1:
        assert_only_business_1(src, ANA, filters, truth, expect_rows=False)
    # A scope that names a huge or negative id sees nothing, and never everything.
    for n in HUGE:
        odd = Scope(business_ids=frozenset({n}), branch_ids=frozenset({n}))
        assert data.pipeline_totals(src, odd, data.Filters())["total_deals"] == 0
    # Strings travel as bound parameters: they match nothing and execute nothing.
    for text in INJECTIONS:
        hostile = data.Filters(sources=(text,), campaign_types=(text,))
        assert data.leads_by_source(src, ANA, hostile).height == 0, text
        assert data.campaigns_table(src, ANA, hostile).height == 0, text
        assert data.lead_totals(src, EVERYTHING, hostile)["leads"] is None, text
    with_owner = data.Filters(owner_ids=(-1, 2**63 - 1))
    assert data.open_pipeline_by_owner(src, ANA, with_owner).height == 0
    assert data.pipeline_totals(src, NOTHING, data.Filters(business_ids=(1,)))["total_deals"] \
        == 0
    assert file_digests(dashboard_warehouse) == before


#: Crafted URLs: SQL fragments, unicode digits, huge and negative ids, another tenant's ids,
#: malformed and extreme dates. Repeated parameters are lists (the last value wins in
#: Streamlit; each must be harmless).
HOSTILE_URLS: list[dict[str, Any]] = [
    {"business": "1 OR 1=1"}, {"business": "1) or (1=1"},
    {"business": "2'; drop table marts.v_crm_pipeline_summary; --", "branch": "1 or 1=1"},
    {"business": "٢,２,2\u200b"}, {"business": str(10**30), "branch": "-1,0"},
    {"business": ["1", "2"]}, {"business": ["2", "1"], "branch": ["5", "6", "7"]},
    {"business": "2,3,4,5,6", "owner": "1 or 1=1", "source": "x') or ('1'='1"},
    {"from": "0001-01-01", "to": "9999-12-31"}, {"from": "2026-13-45", "to": "' or 1=1"},
]


@pytest.mark.parametrize("query", HOSTILE_URLS, ids=lambda q: repr(q)[:40])
def test_a_crafted_url_shows_only_the_viewers_tenant(
        app: Callable[..., AppTest], truth: dict[str, Any], query: dict[str, Any]) -> None:
    at = app("overview", user="ana@example.com", query=query)
    shown = metrics(at)
    assert shown["Open pipeline"] == ui.money(pipeline_truth(truth, business=1)["open"])
    assert at.multiselect(key="filter_business").options == ["Northwind Ltd"]
    assert at.multiselect(key="filter_business").value in ([], [1])


def test_crafted_widget_values_are_dropped(app: Callable[..., AppTest],
                                           truth: dict[str, Any],
                                           dashboard_warehouse: DashboardWarehouse,
                                           monkeypatch: pytest.MonkeyPatch,
                                           tmp_path: Path) -> None:
    """Session state set to another tenant's ids (as a forged widget message would) narrows
    nothing beyond the scope; a forged campaign id of another tenant is not drilled into."""
    before = file_digests(dashboard_warehouse)
    at = app("pipeline", user="ana@example.com")
    branches_of_2 = sorted({d["branch_id"] for d in truth["deals"] if d["business_id"] == 2})
    at.session_state["filter_business"] = [2, "1 OR 1=1", 10**30]
    at.session_state["filter_branch"] = branches_of_2
    at.run()
    assert not at.exception
    assert at.multiselect(key="filter_business").value == []
    assert metrics(at)["Open pipeline"] == ui.money(pipeline_truth(truth, business=1)["open"])

    # A forged drill-down pick (another tenant's campaign) before the page ever ran: the
    # page falls back to the viewer's first campaign (largest revenue in the default range).
    for key, value in dashboard_warehouse.env.items():
        monkeypatch.setenv(key, value)
    access = tmp_path / "access.yml"
    access.write_text(ACCESS)
    monkeypatch.setenv("CRM_AUTH", "oidc")
    monkeypatch.setenv("CRM_ACCESS_FILE", str(access))
    at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / "campaigns.py"),
                           default_timeout=120)
    at.user = {"is_logged_in": True, "email": "ana@example.com"}
    theirs = next(cid for (cid, _day), row in truth["campaigns"].items()
                  if row["business_id"] == 2)
    at.session_state["drill_campaign"] = theirs
    at.run()
    assert not at.exception
    revenue: dict[int, Decimal] = {}
    for (cid, day), row in truth["campaigns"].items():
        if row["business_id"] == 1 and RANGE[0] <= day <= RANGE[1]:
            revenue[cid] = revenue.get(cid, Decimal(0)) + row["revenue"]
    first = min(revenue, key=lambda cid: (-revenue[cid], cid))
    drill = {m.label: m.value for m in list(at.metric)[-5:]}
    assert drill["Revenue"] == ui.money(campaign_truth(truth, 1, campaign=first)["revenue"])
    assert not any(f"(#{theirs})" in m.value for m in at.markdown)
    assert file_digests(dashboard_warehouse) == before


@pytest.mark.parametrize("page", ["overview", "pipeline", "leads", "campaigns", "customers"])
def test_a_user_missing_from_the_access_file_sees_nothing_on_any_page(
        app: Callable[..., AppTest], page: str) -> None:
    at = app(page, user="mallory@example.com", query={"business": "1,2,3", "owner": "1"})
    assert "no access to any business or branch" in at.error[0].value
    assert not at.metric and not at.get("plotly_chart") and not at.get("download_button")
    assert not at.get("arrow_data_frame") and not at.sidebar.multiselect


def test_a_joined_or_padded_identity_is_not_an_access_file_entry(tmp_path: Path) -> None:
    """A proxy header carrying two addresses (a client's own header appended to the proxy's)
    or an address with junk around it is nobody."""
    access = tmp_path / "access.yml"
    access.write_text("users:\n  boss@example.com: all\n  ana@example.com:\n"
                      "    businesses: [1]\n")
    header = settings(tmp_path, CRM_AUTH="header", CRM_ACCESS_FILE=str(access))
    for user in ("boss@example.com, ana@example.com", "ana@example.com,boss@example.com",
                 "boss@example.com\x00", "' or '1'='1", "*", "all"):
        viewer = resolve_viewer(header, header_user=user, oidc_user=None,
                                oidc_configured=False)
        assert (viewer.mode, viewer.scope) == ("denied", NOTHING), user
