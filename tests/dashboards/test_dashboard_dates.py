"""No stored date can take a page down: date arithmetic is total. A campaign row dated in
year 1 and one in year 9999 sit in the serving copy; every dated page runs without an
exception, whatever range the URL asks for, and the period arithmetic holds at the calendar's
ends."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from datetime import date
from pathlib import Path

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.serving_copy import serving_path
from dashboards.data import Filters, previous_months, shift_days
from tests.helpers.dashboard import DashboardWarehouse
from tests.helpers.paths import REPO_ROOT

EXTREMES = (date(1, 1, 1), date(9999, 12, 31))


def test_shift_days_holds_at_the_calendars_ends() -> None:
    assert shift_days(date(2026, 3, 1), -1) == date(2026, 2, 28)
    assert shift_days(date(2026, 3, 1), 10) == date(2026, 3, 11)
    assert shift_days(date(1, 1, 5), -366) == date.min
    assert shift_days(date(9999, 12, 30), 5) == date.max
    assert shift_days(date.min, 0) == date.min


@pytest.mark.parametrize(("start", "end"), [
    (date(1, 1, 1), date(2026, 3, 1)), (date(1, 1, 1), date(1, 1, 1)),
    (date(1, 3, 1), date(1, 3, 31)), (date(2026, 1, 1), date(9999, 12, 31)),
    (date(9999, 12, 31), date(9999, 12, 31)),
])
def test_previous_periods_are_total(start: date, end: date) -> None:
    filters = Filters(start=start, end=end)
    before = filters.previous_period()
    days = (end - start).days + 1
    if (start - date.min).days >= days:
        assert (before.start, before.end) == (date.fromordinal(start.toordinal() - days),
                                              date.fromordinal(start.toordinal() - 1))
    else:  # nothing before the calendar's first day: an empty period
        assert before.start > before.end
    months = previous_months(filters)
    assert months.start > months.end or months.end < start


@pytest.fixture
def extreme_app(dashboard_warehouse: DashboardWarehouse, monkeypatch: pytest.MonkeyPatch,
                tmp_path: Path) -> Callable[..., AppTest]:
    """The shared warehouse's serving copy, copied, with campaign rows on year 1 and 9999."""
    copy = tmp_path / "wh.serving.1.duckdb"
    shutil.copy(serving_path(dashboard_warehouse.warehouse_file).resolve(), copy)
    con = duckdb.connect(str(copy))
    try:
        for day in EXTREMES:
            con.execute("insert into marts.v_crm_campaign_performance "
                        "select * replace (cast(? as date) as \"date\") "
                        "from marts.v_crm_campaign_performance limit 1", [day])
    finally:
        con.close()
    (tmp_path / "wh.serving.duckdb").symlink_to(copy.name)
    for key, value in dashboard_warehouse.env.items():
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CRM_WAREHOUSE_URL", f"duckdb:///{tmp_path}/wh.duckdb")
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE", "CRM_AUTH_HEADER"):
        monkeypatch.delenv(key, raising=False)

    def run(page: str, query: dict[str, str]) -> AppTest:
        at = AppTest.from_file(str(REPO_ROOT / "dashboards" / "pages" / f"{page}.py"),
                               default_timeout=120)
        for key, value in query.items():
            at.query_params[key] = value
        at.run()
        return at

    return run


@pytest.mark.parametrize("query", [{}, {"from": "0001-01-01", "to": "9999-12-31"},
                                   {"from": "0001-01-01", "to": "0001-01-01"},
                                   {"from": "9999-12-31"}, {"from": "2026-W40-1"}])
@pytest.mark.parametrize("page", ["overview", "campaigns", "leads"])
def test_dated_pages_survive_the_calendars_ends(extreme_app: Callable[..., AppTest],
                                                page: str, query: dict[str, str]) -> None:
    at = extreme_app(page, query)
    assert not at.exception, [e.message for e in at.exception]
    assert at.title and not at.error
