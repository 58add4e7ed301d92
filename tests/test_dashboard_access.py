"""Who may see what: the access file, the sign-in modes, and the scope applied in the SQL
(no filter can widen it). Pure parts run without a warehouse; the SQL checks use the shared,
pipeline-built one."""

from __future__ import annotations

import re
from datetime import date
from pathlib import Path

import pytest

from dashboards import data
from dashboards.access import EVERYTHING, NOTHING, Scope, load_access_file, resolve_viewer
from ingestion.errors import CrmError
from orchestration.settings import Settings
from tests.dashboard_fixture import DashboardWarehouse


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
