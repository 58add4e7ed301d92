"""End to end through the real command line: generate an ERP, run the pipeline, and compare every
row and column of every contract mart, and of the marts the dashboards read, with
`tests/helpers/oracle.py`, computed from the generated rows and files in plain Python. Then: a
second run changes nothing."""

import hashlib
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path

import pytest
import sqlalchemy as sa

from tests.helpers import oracle
from tests.helpers.pipeline import (
    AS_OF,
    MARTS,
    check_all_marts,
    crm,
    read_mart,
)
from tests.helpers.postgres import pg_url

pytestmark = pytest.mark.slow


def add_edge_cases(source_url: str, schema: str | None, tz: str) -> None:
    """Rows the generator may not make, inserted into the source before the run: a lead at
    23:30 local on a month's last day, a deal on an unknown stage, a zero-spend campaign with no
    clicks, a contact with no accounts and one with two."""
    engine = sa.create_engine(source_url)
    md = sa.MetaData(schema=schema)
    with engine.begin() as conn:
        t = {n: sa.Table(n, md, autoload_with=conn)
             for n in ("crm_leads", "crm_deals", "crm_campaigns", "contact_accounts",
                       "contacts", "crm_campaign_performance")}
        from zoneinfo import ZoneInfo

        late = datetime(2026, 1, 31, 23, 30, tzinfo=ZoneInfo(tz)).astimezone(UTC)
        conn.execute(t["crm_leads"].insert(), [
            {"id": 900001, "contact_id": 1, "source": "  Webinar ", "status": " QUALIFIED",
             "value": Decimal("10.05"), "created_at": late, "updated_at": late}])
        conn.execute(t["crm_deals"].insert(), [
            {"id": 900001, "title": "Ghost stage", "contact_id": 2, "stage_id": 999,
             "amount": Decimal("123.45")}])
        conn.execute(t["crm_campaigns"].insert(), [
            {"id": 900001, "name": "Free flyer", "campaign_type": " SMS", "status": "Active",
             "branch_id": 1, "budget": Decimal("0.00"),
             "start_date": datetime(2026, 3, 28, 12, tzinfo=UTC),
             "end_date": datetime(2026, 4, 2, 12, tzinfo=UTC)}])
        conn.execute(t["crm_campaign_performance"].insert(), [
            {"id": 900001, "campaign_id": 900001, "date": date(2026, 3, 29), "impressions": 0,
             "clicks": 0, "conversions": 0, "revenue": Decimal("0.00")}])
        conn.execute(t["contact_accounts"].delete().where(t["contact_accounts"].c.contact_id == 3))
        conn.execute(t["contact_accounts"].insert(), [
            {"id": 900001 + i, "contact_id": 4, "account_balance": Decimal("1.10"),
             "advance_balance": Decimal("0.00"), "total_sale_due": Decimal("2.20"),
             "total_sale_return_due": Decimal("0.00")} for i in range(2)])
    engine.dispose()


def digest(wh_url: str) -> dict[str, str]:
    out = {}
    for mart in MARTS:
        rows = sorted(repr(sorted(r.items())) for r in read_mart(wh_url, mart))
        out[mart] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def scenario(tmp: Path, source_url: str, schema: str | None, wh_url: str, tz: str) -> None:
    env = {"CRM_SOURCE_URL": source_url, "CRM_SOURCE_SCHEMA": schema or "public",
           "CRM_EVENTS_PATH": str(tmp / "events"), "CRM_WAREHOUSE_URL": wh_url,
           "CRM_REPORTING_TZ": tz}
    crm(["generate", "--days", "75", "--seed", "11", "--end-date", AS_OF.isoformat(),
         "--quiet"], tmp, env)
    add_edge_cases(source_url, schema, tz)
    crm(["run", "--date", AS_OF.isoformat()], tmp, env)
    check_all_marts(source_url, schema, tmp / "events", wh_url, tz)
    first = digest(wh_url)
    crm(["run", "--date", AS_OF.isoformat()], tmp, env)
    assert digest(wh_url) == first, "a second run with the same inputs changed a mart"

    # The edge cases really are in the data, and came out as the contract says.
    summary = {r["contact_pk"]: r for r in read_mart(wh_url, "v_crm_contact_summary")}
    deleted = oracle.read_source(source_url, schema)["contacts"]
    assert any(c["is_deleted"] for c in deleted)
    assert all(c["id"] not in summary for c in deleted if c["is_deleted"])
    assert summary.get(3, {"account_balance": 0})["account_balance"] == 0
    pipeline = read_mart(wh_url, "v_crm_pipeline_summary")
    assert any(r["stage_id"] is None and r["deal_count"] > 0 for r in pipeline)
    leads = read_mart(wh_url, "v_crm_lead_conversion")
    webinar = [r for r in leads if r["source"] == "webinar"]
    assert [r["cohort_month"] for r in webinar] == [date(2026, 1, 1)]
    assert any(r["source"] == "unknown" for r in leads)
    campaigns = read_mart(wh_url, "v_crm_campaign_performance")
    free = {r["date"]: r for r in campaigns if r["campaign_id"] == 900001}
    assert free[date(2026, 3, 29)]["roi"] is None and free[date(2026, 3, 29)]["ctr"] is None
    assert max(free) == AS_OF  # flight dates stop at the as-of date
    assert {r["data_source"] for r in campaigns} == {"events", "erp", "none"}


def test_sqlite_source_duckdb_warehouse_west_of_utc(tmp_path: Path) -> None:
    scenario(tmp_path, f"sqlite:///{tmp_path}/erp.sqlite", None,
             f"duckdb:///{tmp_path}/wh.duckdb", "America/Los_Angeles")


@pytest.mark.postgres
def test_postgres_source_postgres_warehouse(tmp_path: Path, make_pg_database) -> None:
    source_db, wh_db = make_pg_database("crm_e2e_src"), make_pg_database("crm_e2e_wh")
    scenario(tmp_path, pg_url(source_db), "erp", pg_url(wh_db, driver="postgresql"),
             "Europe/Berlin")
