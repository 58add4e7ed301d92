"""Source rows at the edges (RELIABILITY.md): a real ERP built here, then a real
`crm-analytics run` with `CRM_REPORTING_TZ=Europe/Berlin`, then every contract mart compared with
`tests/helpers/oracle.py` and the edge points checked one by one against Python `Decimal` and
`zoneinfo`.
Twice: SQLite into DuckDB, and PostgreSQL into a PostgreSQL warehouse. The edges:

- NULL in every nullable column (a contact, an account, a lead, a deal, a stage, a campaign);
- the largest DECIMAL(15,2) (9999999999999.99) and DECIMAL(14,2) values, several per sum, so
  a sum only fits in a wider type;
- unicode and right-to-left text in names, sources and codes;
- timestamps on both of Berlin's 2026 daylight-saving changes and on local month ends;
- pipeline stages with equal `order`;
- statuses outside the ERD's lists: counted in the marts, and flagged by dbt warn tests that the
  run reports while still succeeding.
"""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ingestion.erp.schema import build_metadata
from tests.helpers.cli import crm
from tests.helpers.pipeline import AS_OF, check_all_marts, read_mart
from tests.helpers.postgres import pg_url

TZ = "Europe/Berlin"
MAX15 = Decimal("9999999999999.99")  # DECIMAL(15,2): deal amounts, lead values, revenue, budget
MAX14 = Decimal("999999999999.99")  # DECIMAL(14,2): balances, credit limits
RTL = "شركة الأمل ש.ב.ע"

# Berlin's 2026 changes: 29 March 01:00 UTC (02:00 CET → 03:00 CEST) and 25 October 01:00 UTC.
SPRING_BEFORE = datetime(2026, 3, 29, 0, 59, 59, tzinfo=UTC)  # 01:59:59 CET, 29 March
SPRING_AFTER = datetime(2026, 3, 29, 1, 0, 0, tzinfo=UTC)  # 03:00:00 CEST, 29 March
LOCAL_MIDNIGHT = datetime(2026, 3, 28, 23, 0, 0, tzinfo=UTC)  # 00:00 CET, 29 March
BEFORE_MIDNIGHT = datetime(2026, 3, 28, 22, 59, 59, tzinfo=UTC)  # 23:59:59 CET, 28 March
MONTH_END = datetime(2026, 2, 28, 23, 30, tzinfo=UTC)  # 00:30 CET, 1 March
AUTUMN_FIRST = datetime(2025, 10, 26, 0, 30, tzinfo=UTC)  # 02:30 CEST, 26 Oct 2025
AUTUMN_SECOND = datetime(2025, 10, 26, 1, 30, tzinfo=UTC)  # 02:30 CET (the repeated hour)
QUARTER_END = datetime(2026, 3, 31, 22, 30, tzinfo=UTC)  # 00:30 CEST, 1 April (after as-of)


def nulls(table: str, **given: Any) -> dict[str, Any]:
    """A row with NULL in every column the ERD lets be NULL, plus `given`."""
    columns = build_metadata().tables[table].columns
    return {c.name: given.get(c.name) for c in columns}


ROWS: dict[str, list[dict[str, Any]]] = {
    "businesses": [{"id": 1, "name": RTL}],
    "branches": [{"id": 10, "business_id": 1, "name": "فرع ١"}, {"id": 11, "business_id": 1,
                                                                 "name": "Zweigstelle Süd"}],
    "customer_groups": [{"id": 1, "group_name": "VIP ⭐ עברית", "dicount_calculation": "Percentage",
                         "amount": MAX14}, nulls("customer_groups", id=2)],
    "contacts": [
        {"id": 1, "contact_id": "C-١", "contact_type": " Customer ", "business_id": 1,
         "branch_id": 10, "customer_group_id": 1, "business_name": RTL,
         "credit_limit": MAX14, "added_on": date(2026, 3, 29), "is_deleted": False},
        nulls("contacts", id=2, contact_id="C-2"),  # every nullable column NULL
        {"id": 3, "contact_id": "\u202eC-3", "business_id": 1, "branch_id": 11,
         "is_deleted": False},
    ],
    "contact_accounts": [
        {"id": 1, "contact_id": 1, "account_balance": MAX14, "advance_balance": -MAX14,
         "total_sale_due": MAX14, "total_sale_return_due": MAX14},
        {"id": 2, "contact_id": 1, "account_balance": MAX14, "advance_balance": -MAX14,
         "total_sale_due": MAX14, "total_sale_return_due": Decimal("0.01")},
        {"id": 3, "contact_id": 1, "account_balance": MAX14, "advance_balance": None,
         "total_sale_due": None, "total_sale_return_due": None},
        nulls("contact_accounts", id=4),  # no contact, no money
        nulls("contact_accounts", id=5, contact_id=2),
    ],
    "crm_pipeline_stages": [
        {"id": 1, "name": "New", "order": 1, "is_won": False, "is_lost": False},
        {"id": 2, "name": "Proposal", "order": 2, "is_won": False, "is_lost": False},
        {"id": 3, "name": "עסקה", "order": 2, "is_won": False, "is_lost": False},  # equal order
        {"id": 4, "name": "Won", "order": 3, "is_won": True, "is_lost": False},
        {"id": 5, "name": "Lost", "order": 3, "is_won": False, "is_lost": True},
        nulls("crm_pipeline_stages", id=6, name="Unsortiert"),  # NULL order and flags
    ],
    "crm_deals": [
        *({"id": i, "title": f"Max {i}", "contact_id": 1, "stage_id": stage, "amount": MAX15,
           "close_date": date(2026, 3, 29), "created_at": SPRING_AFTER, "updated_at": SPRING_AFTER}
          for i, stage in ((1, 4), (2, 4), (3, 4), (4, 2), (5, 3), (6, 3), (7, 1), (8, 5),
                           (9, 5), (10, 6))),
        {"id": 11, "title": "ש", "contact_id": 3, "stage_id": 2, "amount": Decimal("0.01"),
         "created_at": AUTUMN_SECOND, "updated_at": AUTUMN_SECOND},
        nulls("crm_deals", id=12, title="nothing known"),  # no contact, stage, amount or dates
    ],
    "crm_leads": [
        *({"id": i, "contact_id": 1, "source": source, "status": status, "value": MAX15,
           "created_at": when, "updated_at": when}
          for i, (source, status, when) in enumerate([
              (" Webinar ", "new", SPRING_BEFORE), ("webinar", " WON", SPRING_AFTER),
              ("WEBINAR", "escalated", LOCAL_MIDNIGHT),  # a status outside the ERD's list
              ("webinar", "Qualifiziert", BEFORE_MIDNIGHT),  # outside the list too
              ("webinar", "lost", MONTH_END), ("معرض", "contacted", AUTUMN_FIRST),
              ("معرض", "qualified", AUTUMN_SECOND), ("webinar", "won", QUARTER_END)], 1)),
        nulls("crm_leads", id=20),  # no contact, source, status, value or time
    ],
    "crm_campaigns": [
        {"id": 1, "name": "Frühling ☀", "campaign_type": "email", "status": "archived",
         "branch_id": 10, "budget": MAX15, "start_date": datetime(2026, 3, 27, 12, tzinfo=UTC),
         "end_date": datetime(2026, 3, 30, 12, tzinfo=UTC)},
        {"id": 2, "name": "حملة", "campaign_type": "Hologram", "status": " Active ",
         "branch_id": 11, "budget": Decimal("3.00"), "start_date": LOCAL_MIDNIGHT,
         "end_date": SPRING_AFTER},
        nulls("crm_campaigns", id=3, name="nothing known"),
    ],
    "crm_campaign_performance": [
        {"id": 1, "campaign_id": 2, "date": date(2026, 3, 29), "impressions": 2**31 - 1,
         "clicks": 2**31 - 1, "conversions": 2**31 - 1, "revenue": MAX15},
        {"id": 2, "campaign_id": 2, "date": date(2026, 3, 29), "impressions": 2**31 - 1,
         "clicks": 1, "conversions": 1, "revenue": MAX15},
        nulls("crm_campaign_performance", id=3),
        nulls("crm_campaign_performance", id=4, campaign_id=3, date=date(2026, 3, 30)),
    ],
}

EVENTS = [
    # campaign 1's conversions around Berlin's spring change: which local date each lands on
    ("c1", "erp.campaign.conversion", BEFORE_MIDNIGHT, {"campaign_id": 1, "revenue": str(MAX15)}),
    ("c2", "erp.campaign.conversion", LOCAL_MIDNIGHT, {"campaign_id": 1, "revenue": str(MAX15)}),
    ("c3", "erp.campaign.conversion", SPRING_BEFORE, {"campaign_id": 1, "revenue": MAX15}),
    ("c4", "erp.campaign.click", SPRING_AFTER, {"campaign_id": 1}),
    ("c5", "erp.campaign.impression", SPRING_AFTER, {"campaign_id": 1}),
    ("q1", "erp.lead.qualified", SPRING_AFTER, {"lead_id": 3}),  # the 'escalated' lead
]


def build_erp(url: str) -> None:
    engine = sa.create_engine(url)
    md = build_metadata()
    with engine.begin() as conn:
        md.create_all(conn)
        for name, rows in ROWS.items():
            conn.execute(md.tables[name].insert(), [nulls(name, **r) for r in rows])
    engine.dispose()


def write_events(events: Path) -> None:
    folder = events / AS_OF.isoformat()
    folder.mkdir(parents=True)
    with (folder / "edge.jsonl").open("w", encoding="utf-8") as out:
        for eid, etype, when, data in EVENTS:
            # each time written with Berlin's own offset, as a producer there would
            text = when.astimezone(ZoneInfo(TZ)).isoformat()
            out.write(json.dumps({"specversion": "1.0", "id": eid, "source": "erp/ש",
                                  "type": etype, "time": text, "data": data},
                                 ensure_ascii=False, default=str) + "\n")


def berlin(when: datetime) -> date:
    return when.astimezone(ZoneInfo(TZ)).date()


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def erp_and_warehouse(request: pytest.FixtureRequest, tmp_path: Path) -> tuple[str, str]:
    """(source URL, warehouse URL): SQLite into DuckDB (the generic path), and PostgreSQL into
    PostgreSQL (binary COPY, numeric sums and time zones on the production warehouse)."""
    if request.param == "duckdb":
        return f"sqlite:///{tmp_path}/erp.sqlite", f"duckdb:///{tmp_path}/wh.duckdb"
    make_pg_database = request.getfixturevalue("make_pg_database")
    return (pg_url(make_pg_database("crm_edges_src")),
            pg_url(make_pg_database("crm_edges_wh"), driver="postgresql"))


@pytest.mark.slow
def test_edge_rows_through_a_real_run(tmp_path: Path,
                                      erp_and_warehouse: tuple[str, str]) -> None:
    source, wh = erp_and_warehouse
    build_erp(source)
    write_events(tmp_path / "events")
    env = {"CRM_SOURCE_URL": source, "CRM_EVENTS_PATH": str(tmp_path / "events"),
           "CRM_WAREHOUSE_URL": wh, "CRM_REPORTING_TZ": TZ}
    proc = crm(["run", "--date", AS_OF.isoformat()], tmp_path, **env)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr

    # Statuses outside the ERD's lists: the run succeeds, and says which warn tests flagged them.
    warnings = [ln for ln in proc.stdout.splitlines() if ln.startswith("warning: ")]
    assert any("stg_erp__crm_leads" in w and "lead_status" in w for w in warnings), proc.stdout
    assert any("stg_erp__crm_campaigns" in w and "campaign_status" in w for w in warnings)
    assert any("stg_erp__crm_campaigns" in w and "campaign_type" in w for w in warnings)

    # Every contract mart, row for row, against the independent oracle.
    check_all_marts(source, None, tmp_path / "events", wh, TZ)

    # Contact summary: sums of the largest DECIMAL(14,2) need a wider type; NULL-only rows.
    contacts = {r["contact_pk"]: r for r in read_mart(wh, "v_crm_contact_summary")}
    assert set(contacts) == {1, 2, 3}
    one = contacts[1]
    assert one["account_balance"] == 3 * MAX14
    assert one["advance_balance"] == -2 * MAX14
    assert one["total_sale_due"] == 2 * MAX14
    assert one["total_sale_return_due"] == MAX14 + Decimal("0.01")
    assert one["won_revenue"] == 3 * MAX15 and one["open_pipeline_value"] == 5 * MAX15
    assert one["customer_group_name"] == "VIP ⭐ עברית" and one["contact_code"] == "C-١"
    two = contacts[2]
    assert (two["business_id"], two["account_balance"], two["deal_count"], two["lead_count"]) \
        == (None, 0, 0, 0)

    # Pipeline: equal `order` stages reach the same deals; totals are exact.
    pipeline = {r["stage_id"]: r for r in read_mart(wh, "v_crm_pipeline_summary")
                if (r["business_id"], r["branch_id"]) == (1, 10)}
    assert set(pipeline) == {1, 2, 3, 4, 5, 6}  # every stage, the NULL-order one too
    assert pipeline[4]["won_amount"] == 3 * MAX15 and pipeline[4]["lost_amount"] == 2 * MAX15
    assert pipeline[4]["open_amount"] == 5 * MAX15  # stages 1, 2, 3, 3 and the NULL-flag 6
    assert pipeline[2]["stage_reach_count"] == pipeline[3]["stage_reach_count"] == 3 + 3
    assert pipeline[1]["stage_reach_count"] == 4 + 3  # stage 6 has no order: reaches only 1
    assert pipeline[2]["stage_order"] == pipeline[3]["stage_order"] == 2

    # Leads: an unknown status is counted as a lead (neither contacted, qualified, won nor
    # lost), and a qualifying event still lifts it. Cohorts in Berlin time.
    leads = {(r["source"], r["cohort_month"]): r for r in read_mart(wh, "v_crm_lead_conversion")
             if r["business_id"] == 1}
    march = leads[("webinar", date(2026, 3, 1))]
    src = [r for r in ROWS["crm_leads"] if r["contact_id"] == 1 and
           (r["source"] or "").strip().lower() == "webinar" and r["created_at"] and
           berlin(r["created_at"]).replace(day=1) == date(2026, 3, 1)]
    assert len(src) == 5  # SPRING_BEFORE/AFTER, LOCAL_MIDNIGHT, BEFORE_MIDNIGHT, MONTH_END
    assert march["leads"] == 5 and march["lead_value"] == 5 * MAX15
    assert (march["won_leads"], march["lost_leads"]) == (1, 1)
    assert march["reached_qualified"] == 2  # the won one, and 'escalated' by its event
    assert leads[("webinar", date(2026, 4, 1))]["leads"] == 1  # 00:30 CEST on 1 April
    assert leads[("معرض", date(2025, 10, 1))]["leads"] == 2
    unknown = [r for r in read_mart(wh, "v_crm_lead_conversion") if r["business_id"] is None]
    assert sum(r["leads"] for r in unknown) == 1 and unknown[0]["source"] == "unknown"

    # Campaigns: an unknown status keeps its rows; event dates follow Berlin's calendar.
    days = {(r["campaign_id"], r["date"]): r for r in read_mart(wh, "v_crm_campaign_performance")}
    assert days[(1, date(2026, 3, 29))]["status"] == "archived"
    by_day: dict[date, list[Decimal]] = {}
    for _, _etype, when, data in EVENTS[:3]:
        by_day.setdefault(berlin(when), []).append(Decimal(str(data["revenue"])))
    assert by_day == {date(2026, 3, 28): [MAX15], date(2026, 3, 29): [MAX15, MAX15]}
    for day, amounts in by_day.items():
        assert days[(1, day)]["revenue"] == sum(amounts, Decimal(0))
        assert days[(1, day)]["conversions"] == len(amounts)
    assert days[(1, date(2026, 3, 29))]["clicks"] == 1
    erp_day = days[(2, date(2026, 3, 29))]
    assert erp_day["revenue"] == 2 * MAX15 and erp_day["impressions"] == 2 * (2**31 - 1)
    assert erp_day["status"] == "active" and erp_day["campaign_type"] == "hologram"
    assert days[(3, date(2026, 3, 30))]["data_source"] == "erp"
