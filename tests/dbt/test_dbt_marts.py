"""The dbt project end to end: `dbt build` (models, data tests, unit tests) on the hand-written
fixture of `tests/helpers/dbt.py`, in DuckDB and in PostgreSQL, then every row of the four contract
marts (docs/contract.md section 5) against numbers worked out by hand from the fixture rows,
and the marts the dashboards read against those hand-worked rows rolled up in Python.

Each warehouse is built once per module; the PostgreSQL half is marked `postgres`.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from tests.helpers.dbt import AS_OF_DATE, REPORTING_TZ, STAGES, run_dbt, write_raw_fixture
from tests.helpers.postgres import dbt_postgres_env, pg_conninfo

Row = dict[str, Any]
Marts = dict[str, list[Row]]

MARTS = ("v_crm_contact_summary", "v_crm_pipeline_summary", "v_crm_campaign_performance",
         "v_crm_lead_conversion", "pipeline_by_tenant", "contact_segment_summary",
         "top_contacts")
DBT_VARS = json.dumps({"as_of_date": AS_OF_DATE, "reporting_tz": REPORTING_TZ})

#: Relationship tests (severity warn) the fixture trips on purpose: an account, a deal and a
#: lead of unknown contact 999, a deal in unknown stage 99, a contact in unknown group 99.
EXPECTED_WARNINGS = {
    "relationships_stg_erp__contact_accounts_contact_id__contact_id__ref_stg_erp__contacts_",
    "relationships_stg_erp__crm_deals_contact_id__contact_id__ref_stg_erp__contacts_",
    "relationships_stg_erp__crm_leads_contact_id__contact_id__ref_stg_erp__contacts_",
    "relationships_stg_erp__crm_deals_stage_id__stage_id__ref_stg_erp__crm_pipeline_stages_",
    "relationships_stg_erp__contacts_customer_group_id__customer_group_id__ref_stg_erp__customer_groups_",
}


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _m(text: str) -> Decimal:
    return Decimal(text)


def _ratio(numerator: float | Decimal, denominator: float | Decimal | None) -> float | None:
    return None if not denominator else float(numerator) / float(denominator)


# --- building -----------------------------------------------------------------------------


def _build(workdir: Path, env: dict[str, str], target: str) -> None:
    """`dbt build` into the warehouse `env` points at; fail with dbt's output otherwise."""
    env = {**env, "CRM_DBT_TARGET": target, "DBT_LOG_PATH": str(workdir / "logs")}
    result = run_dbt(["build", "--target", target, "--vars", DBT_VARS,
                      "--target-path", str(workdir / "target")], env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]
    results = json.loads((workdir / "target" / "run_results.json").read_text())["results"]
    statuses = {r["unique_id"]: r["status"] for r in results}
    # exposures (the dashboards) are reported as "no-op": there is nothing to run for them
    assert not [uid for uid, status in statuses.items()
                if status not in ("success", "pass", "warn")
                and not (uid.startswith("exposure.") and status == "no-op")]
    warned = {uid.split(".")[2] for uid, status in statuses.items() if status == "warn"}
    assert warned <= EXPECTED_WARNINGS
    # every unit test of the project ran and passed (the daily run leaves them out: this is
    # where they run on DuckDB and PostgreSQL)
    manifest = json.loads((workdir / "target" / "manifest.json").read_text())
    unit_tests = {uid for uid in manifest["unit_tests"] if uid.split(".")[1] == "crm_analytics"}
    assert len(unit_tests) >= 40 and {statuses.get(uid) for uid in unit_tests} == {"pass"}


def _fetch(cursor: Any, sql: str) -> list[Row]:
    cursor.execute(sql)
    names = [column[0] for column in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


_COLUMN_TYPES_SQL = """
    select table_name, column_name, lower(data_type) as data_type, numeric_precision,
        numeric_scale
    from information_schema.columns
    where table_schema = 'marts'
    order by table_name, ordinal_position
"""


def _read_marts(cursor: Any) -> Marts:
    marts = {name: _fetch(cursor, f"select * from marts.{name}") for name in MARTS}
    marts["campaign_lifetime"] = _fetch(cursor, "select * from marts.campaign_lifetime")
    marts["_columns"] = _fetch(cursor, _COLUMN_TYPES_SQL)
    marts["_guide"] = _run_guide_queries(cursor)
    return marts


def _run_guide_queries(cursor: Any) -> list[Row]:
    """Each question of docs/querying.md run on this warehouse: its title and the error it
    raised (None when it ran), so the guide's SQL is checked on DuckDB and PostgreSQL alike."""
    text = (Path(__file__).resolve().parents[2] / "docs" / "querying.md").read_text()
    outcomes = []
    for title, sql in re.findall(r"^### (.+?)\n.*?```sql\n(.*?)```", text, flags=re.S | re.M):
        try:
            cursor.execute(sql)
            cursor.fetchall()
            outcomes.append({"title": title, "error": None})
        except Exception as error:  # reported by the test, not raised here
            outcomes.append({"title": title, "error": str(error).splitlines()[0]})
            if hasattr(cursor, "connection") and hasattr(cursor.connection, "rollback"):
                cursor.connection.rollback()
    return outcomes


@pytest.fixture(scope="module")
def duckdb_marts(tmp_path_factory: pytest.TempPathFactory) -> Marts:
    workdir = tmp_path_factory.mktemp("dbt_duckdb")
    path = workdir / "warehouse.duckdb"
    write_raw_fixture(path)
    _build(workdir, {"CRM_DUCKDB_PATH": str(path)}, "duckdb")
    with duckdb.connect(str(path), read_only=True) as conn:
        return _read_marts(conn.cursor())


@pytest.fixture(scope="module")
def postgres_marts(tmp_path_factory: pytest.TempPathFactory, module_pg_database: str) -> Marts:
    conninfo = pg_conninfo(module_pg_database)
    workdir = tmp_path_factory.mktemp("dbt_postgres")
    write_raw_fixture(conninfo)
    _build(workdir, dbt_postgres_env(module_pg_database), "postgres")
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        return _read_marts(cursor)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def marts(request: pytest.FixtureRequest) -> Marts:
    return request.getfixturevalue(f"{request.param}_marts")


# --- comparing ----------------------------------------------------------------------------

RATE_COLUMNS = {"win_rate", "value_win_rate", "stage_reach_rate", "ctr", "cvr", "roi",
                "qualification_rate", "lead_win_rate"}


def _assert_rows(actual: list[Row], expected: list[Row], key: Callable[[Row], Any]) -> None:
    """Same rows (matched by `key`), same values: rates to 1e-12 relative, the rest exactly."""
    by_key = {key(row): row for row in actual}
    assert len(by_key) == len(actual), "duplicate keys in the mart"
    assert sorted(by_key, key=repr) == sorted((key(row) for row in expected), key=repr)
    for want in expected:
        got = by_key[key(want)]
        for column, value in want.items():
            if column in RATE_COLUMNS and value is not None:
                assert got[column] == pytest.approx(value, rel=1e-12), (key(want), column)
            else:
                assert got[column] == value, (key(want), column, got[column])


def _columns(marts: Marts, table: str) -> list[Row]:
    return [c for c in marts["_columns"] if c["table_name"] == table]


# --- the contract's columns and types -----------------------------------------------------

CONTACT_COLUMNS = [
    "contact_pk", "contact_code", "business_id", "branch_id", "contact_type", "account_type",
    "customer_group_id", "customer_group_name", "credit_limit", "added_on", "account_balance",
    "advance_balance", "total_sale_due", "total_sale_return_due", "lead_count", "deal_count",
    "open_deal_count", "won_deal_count", "lost_deal_count", "open_pipeline_value", "won_revenue",
]
PIPELINE_COLUMNS = [
    "business_id", "branch_id", "stage_id", "stage_name", "stage_order", "is_won", "is_lost",
    "deal_count", "pipeline_value", "total_deals", "open_deals", "open_amount", "won_deals",
    "won_amount", "lost_deals", "lost_amount", "win_rate", "value_win_rate",
    "stage_reach_count", "stage_reach_rate",
]
CAMPAIGN_COLUMNS = [
    "campaign_id", "date", "business_id", "branch_id", "campaign_name", "campaign_type",
    "status", "impressions", "clicks", "conversions", "revenue", "sends", "spend", "ctr", "cvr",
    "roi", "data_source",
]
LEAD_COLUMNS = [
    "business_id", "branch_id", "source", "cohort_month", "leads", "reached_contacted",
    "reached_qualified", "won_leads", "lost_leads", "lead_value", "won_value",
    "qualification_rate", "lead_win_rate",
]
MONEY_COLUMNS = {
    "v_crm_contact_summary": {"credit_limit", "account_balance", "advance_balance",
                              "total_sale_due", "total_sale_return_due",
                              "open_pipeline_value", "won_revenue"},
    "v_crm_pipeline_summary": {"pipeline_value", "open_amount", "won_amount", "lost_amount"},
    "v_crm_campaign_performance": {"revenue"},
    "v_crm_lead_conversion": {"lead_value", "won_value"},
}


@pytest.mark.parametrize(("table", "columns"), [
    ("v_crm_contact_summary", CONTACT_COLUMNS),
    ("v_crm_pipeline_summary", PIPELINE_COLUMNS),
    ("v_crm_campaign_performance", CAMPAIGN_COLUMNS),
    ("v_crm_lead_conversion", LEAD_COLUMNS),
])
def test_marts_have_the_contract_columns_and_types(marts: Marts, table: str,
                                                   columns: list[str]) -> None:
    found = _columns(marts, table)
    assert [c["column_name"] for c in found] == columns
    types = {c["column_name"]: c for c in found}
    for name in MONEY_COLUMNS[table]:
        assert (types[name]["numeric_precision"], types[name]["numeric_scale"]) == (18, 2), name
    for name in RATE_COLUMNS & set(columns):
        assert types[name]["data_type"] in ("double", "double precision"), name
    if table == "v_crm_campaign_performance":
        assert (types["spend"]["numeric_precision"], types["spend"]["numeric_scale"]) == (19, 6)


# --- v_crm_contact_summary ----------------------------------------------------------------

_CONTACT_KEYS = CONTACT_COLUMNS
# contact 5 is soft-deleted: absent. Contact 6 has is_deleted NULL: present.
EXPECTED_CONTACTS = [dict(zip(_CONTACT_KEYS, row, strict=True)) for row in [
    (1, "C-001", 1, 10, "customers", "individual", 1, "Retail", _m("1000.00"), _d("2025-01-05"),
     _m("300.50"), _m("10.00"), _m("75.25"), _m("5.00"), 5, 4, 3, 1, 0, _m("350.00"),
     _m("500.00")),
    (2, "C-002", 1, 10, "customers", "business", 2, "Wholesale", _m("5000.00"),
     _d("2025-02-10"), _m("-75.00"), _m("30.00"), _m("0.00"), _m("12.00"), 3, 4, 2, 1, 1,
     _m("370.00"), _m("1000.00")),
    (3, "C-003", 1, 11, "suppliers", "business", None, None, None, _d("2025-03-01"),
     _m("0"), _m("0"), _m("0"), _m("0"), 1, 2, 1, 0, 1, _m("0"), _m("0")),
    (4, "C-004", 2, 20, "customers & suppliers", "individual", 3, "VIP", _m("250.50"),
     _d("2025-04-15"), _m("0"), _m("5.00"), _m("0"), _m("0"), 1, 1, 1, 0, 0, _m("150.00"),
     _m("0")),
    (6, "C-006", 1, None, "customers", "individual", None, None, None, None,
     _m("0"), _m("0"), _m("0"), _m("0"), 0, 1, 0, 1, 0, _m("0"), _m("0")),
    (7, "C-007", 2, 20, "suppliers", "business", None, None, _m("0.00"), _d("2025-06-01"),
     _m("0"), _m("0"), _m("0"), _m("0"), 0, 0, 0, 0, 0, _m("0"), _m("0")),
    (8, "C-008", 2, 21, "customers", "individual", 99, None, _m("100.00"), _d("2025-07-01"),
     _m("0"), _m("0"), _m("0"), _m("0"), 0, 0, 0, 0, 0, _m("0"), _m("0")),
]]


def test_contact_summary(marts: Marts) -> None:
    _assert_rows(marts["v_crm_contact_summary"], EXPECTED_CONTACTS,
                 key=lambda row: row["contact_pk"])


# --- v_crm_pipeline_summary ---------------------------------------------------------------

# per pair: total, open, open_amount, won, won_amount, lost, lost_amount
# (deals 7 (no stage) and 8 (stage 99) are open deals of (1, 10) in its NULL-stage row;
# deal 11 of soft-deleted contact 5 counts; deals 13 (no contact) and 15 (unknown contact)
# form the (NULL, NULL) pair; deal 10 has no amount)
PAIR_TOTALS: dict[tuple[int | None, int | None], tuple[Any, ...]] = {
    (1, 10): (8, 5, _m("720.00"), 2, _m("1500.00"), 1, _m("400.00")),
    (1, 11): (2, 1, _m("0"), 0, _m("0"), 1, _m("600.00")),
    (2, 20): (2, 1, _m("150.00"), 1, _m("800.00"), 0, _m("0")),
    (None, None): (2, 2, _m("130.00"), 0, _m("0"), 0, _m("0")),
    (1, None): (1, 0, _m("0"), 1, _m("0.00"), 0, _m("0")),
}
# per pair and stage (1..5, then None): deal_count, pipeline_value, stage_reach_count
STAGE_ROWS: dict[tuple[int | None, int | None], list[tuple[Any, ...]]] = {
    (1, 10): [(1, 1, _m("100.00"), 5), (2, 1, _m("200.00"), 4), (3, 1, _m("300.00"), 3),
              (4, 2, _m("1500.00"), 2), (5, 1, _m("400.00"), 1), (None, 2, _m("120.00"), 0)],
    (1, 11): [(1, 0, _m("0"), 1), (2, 1, _m("0"), 1), (3, 0, _m("0"), 0), (4, 0, _m("0"), 0),
              (5, 1, _m("600.00"), 1)],
    (2, 20): [(1, 1, _m("150.00"), 2), (2, 0, _m("0"), 1), (3, 0, _m("0"), 1),
              (4, 1, _m("800.00"), 1), (5, 0, _m("0"), 0)],
    (None, None): [(1, 0, _m("0"), 2), (2, 1, _m("40.00"), 2), (3, 1, _m("90.00"), 1),
                   (4, 0, _m("0"), 0), (5, 0, _m("0"), 0)],
    (1, None): [(1, 0, _m("0"), 1), (2, 0, _m("0"), 1), (3, 0, _m("0"), 1),
                (4, 1, _m("0.00"), 1), (5, 0, _m("0"), 0)],
}


def _expected_pipeline() -> list[Row]:
    stages = {s["id"]: s for s in STAGES}
    rows = []
    for pair, stage_rows in STAGE_ROWS.items():
        total, open_, open_amount, won, won_amount, lost, lost_amount = PAIR_TOTALS[pair]
        for stage_id, deal_count, pipeline_value, reach in stage_rows:
            stage = stages.get(stage_id, {})
            rows.append({
                "business_id": pair[0], "branch_id": pair[1], "stage_id": stage_id,
                "stage_name": stage.get("name"), "stage_order": stage.get("order"),
                "is_won": None if stage_id is None else bool(stage["is_won"]),
                "is_lost": None if stage_id is None else bool(stage["is_lost"]),
                "deal_count": deal_count, "pipeline_value": pipeline_value,
                "total_deals": total, "open_deals": open_, "open_amount": open_amount,
                "won_deals": won, "won_amount": won_amount, "lost_deals": lost,
                "lost_amount": lost_amount,
                "win_rate": _ratio(won, won + lost),
                "value_win_rate": _ratio(won_amount, won_amount + lost_amount),
                "stage_reach_count": reach, "stage_reach_rate": _ratio(reach, total),
            })
    return rows


def test_pipeline_summary(marts: Marts) -> None:
    _assert_rows(marts["v_crm_pipeline_summary"], _expected_pipeline(),
                 key=lambda row: (row["business_id"], row["branch_id"], row["stage_id"]))


def test_pipeline_by_tenant(marts: Marts) -> None:
    """One row per pair, with the hand-worked pair totals; NULL rates where nothing is won or
    lost, or the won and lost amounts are 0."""
    expected = []
    for (business_id, branch_id), totals in PAIR_TOTALS.items():
        total, open_, open_amount, won, won_amount, lost, lost_amount = totals
        expected.append({
            "business_id": business_id, "branch_id": branch_id, "total_deals": total,
            "open_deals": open_, "open_amount": open_amount, "won_deals": won,
            "won_amount": won_amount, "lost_deals": lost, "lost_amount": lost_amount,
            "win_rate": _ratio(won, won + lost),
            "value_win_rate": _ratio(won_amount, won_amount + lost_amount)})
    _assert_rows(marts["pipeline_by_tenant"], expected,
                 key=lambda row: (row["business_id"], row["branch_id"]))
    assert [c["column_name"] for c in _columns(marts, "pipeline_by_tenant")] == [
        "business_id", "branch_id", "total_deals", "open_deals", "open_amount", "won_deals",
        "won_amount", "lost_deals", "lost_amount", "win_rate", "value_win_rate"]


def test_pipeline_zero_denominators_give_null_rates(marts: Marts) -> None:
    rows = marts["v_crm_pipeline_summary"]
    nothing_closed = [r for r in rows if (r["business_id"], r["branch_id"]) == (None, None)]
    assert {r["win_rate"] for r in nothing_closed} == {None}
    zero_value = [r for r in rows if (r["business_id"], r["branch_id"]) == (1, None)]
    assert {(r["win_rate"], r["value_win_rate"]) for r in zero_value} == {(1.0, None)}


# --- the Customers page's roll-ups of the contact summary -----------------------------------

SEGMENT_SUMS = ("won_revenue", "won_deal_count", "open_pipeline_value", "account_balance",
                "advance_balance", "total_sale_due", "total_sale_return_due")


def test_contact_segment_summary(marts: Marts) -> None:
    """The hand-worked contacts summed per (pair, type, group name): contact 5 (soft-deleted)
    is left out, contact 8's unknown group joins the NULL-name row of its pair, a segment
    whose contacts have no credit limit sums to NULL."""
    expected: dict[tuple[Any, ...], Row] = {}
    for c in EXPECTED_CONTACTS:
        key = (c["business_id"], c["branch_id"], c["contact_type"], c["customer_group_name"])
        row = expected.setdefault(key, {
            "business_id": key[0], "branch_id": key[1], "contact_type": key[2],
            "customer_group_name": key[3], "contacts": 0, "credit_limit": None,
            **{k: 0 for k in SEGMENT_SUMS}})
        row["contacts"] += 1
        for k in SEGMENT_SUMS:
            row[k] += c[k]
        if c["credit_limit"] is not None:
            row["credit_limit"] = (row["credit_limit"] or 0) + c["credit_limit"]
    assert {None} < {r["credit_limit"] for r in expected.values()}
    _assert_rows(marts["contact_segment_summary"], list(expected.values()),
                 key=lambda row: (row["business_id"], row["branch_id"], row["contact_type"],
                                  row["customer_group_name"]))
    types = {c["column_name"]: c for c in _columns(marts, "contact_segment_summary")}
    for name in ("won_revenue", "account_balance", "credit_limit"):
        assert (types[name]["numeric_precision"], types[name]["numeric_scale"]) == (18, 2)


def test_top_contacts(marts: Marts) -> None:
    """Contacts with won revenue only (contact 6 won a deal of amount 0: left out), ranked
    within their pair."""
    expected = [{"contact_pk": 1, "business_id": 1, "branch_id": 10, "won_revenue": _m("500.00"),
                 "tenant_rank": 2, "contact_code": "C-001", "account_balance": _m("300.50")},
                {"contact_pk": 2, "business_id": 1, "branch_id": 10, "won_revenue": _m("1000.00"),
                 "tenant_rank": 1, "contact_code": "C-002", "total_sale_due": _m("0.00")}]
    by_pk = {c["contact_pk"]: c for c in EXPECTED_CONTACTS}
    assert [pk for pk, c in by_pk.items() if c["won_revenue"] > 0] == [1, 2]
    _assert_rows(marts["top_contacts"], expected, key=lambda row: row["contact_pk"])


# --- v_crm_campaign_performance -------------------------------------------------------------

CAMPAIGNS = {  # id: business_id, branch_id, name, type, status
    1: (1, 10, "Spring Email", "email", "active"),  # branch 10's business, not seller 7's (2)
    2: (2, None, "Banner Q1", "banner", "completed"),  # no branch: seller 7's business
    3: (1, 11, "No budget", "sms", "draft"),
    4: (1, 77, "Unknown branch", "social", "paused"),  # unknown branch: seller 3's business
    5: (2, 20, "Future", "email", "active"),
    6: (2, 20, "Zero budget", "loyalty", "active"),
    7: (1, 11, "Odd budget", "promotional", "active"),
    8: (2, 20, "Backwards", "seasonal", "cancelled"),
    42: (None, None, None, None, None),  # events only: unknown to the ERP
}
SPEND_1, SPEND_2 = _m("100.000000"), _m("33.333333")  # 1000.00 / 10 days, 100.00 / 3 days
ZERO = _m("0")
# campaign_id, date, impressions, clicks, conversions, revenue, sends, spend, data_source
EXPECTED_CAMPAIGN_DAYS: list[tuple[Any, ...]] = [
    # flight 24 Mar (22:00 New York start) .. 2 Apr; rows to the as-of date 31 Mar, + 1 Apr
    (1, "2026-03-24", 0, 0, 0, ZERO, 0, SPEND_1, "none"),
    (1, "2026-03-25", 0, 1, 0, ZERO, 0, SPEND_1, "events"),  # the late click
    # 3 impressions (erp/e1, erp/e2 in odd case, web/e1), the click at 23:30 local, the
    # conversion's first copy (150.00, not the later 999.00); the ERP's row loses
    (1, "2026-03-26", 3, 1, 1, _m("150.00"), 0, SPEND_1, "events"),
    (1, "2026-03-27", 50, 5, 1, _m("25.00"), 0, SPEND_1, "erp"),  # two ERP rows summed
    (1, "2026-03-28", 0, 0, 0, ZERO, 1, SPEND_1, "events"),  # one send beats the ERP row
    (1, "2026-03-29", 0, 0, 0, ZERO, 0, SPEND_1, "none"),
    (1, "2026-03-30", 0, 0, 0, ZERO, 0, SPEND_1, "none"),
    (1, "2026-03-31", 0, 0, 0, ZERO, 1, SPEND_1, "events"),  # 22:00 local on the 31st
    (1, "2026-04-01", 1, 0, 0, ZERO, 0, SPEND_1, "events"),  # after the as-of date
    (2, "2026-03-01", 500, 50, 5, _m("150.00"), 0, SPEND_2, "erp"),
    (2, "2026-03-02", 0, 0, 0, ZERO, 0, SPEND_2, "none"),
    (2, "2026-03-03", 0, 0, 0, ZERO, 0, SPEND_2, "none"),
    (2, "2026-03-05", 20, 2, 0, ZERO, 0, ZERO, "erp"),  # outside the flight
    (3, "2026-03-28", 0, 0, 0, ZERO, 0, None, "erp"),  # no budget
    (3, "2026-03-29", 0, 0, 0, ZERO, 0, None, "none"),
    (4, "2026-03-15", 100, 0, 0, ZERO, 0, None, "erp"),  # no flight
    (5, "2026-04-12", 10, 2, 1, _m("20.00"), 0, _m("20.000000"), "erp"),  # 220.00 / 11
    (6, "2026-03-30", 50, 5, 1, _m("10.00"), 0, ZERO, "erp"),  # zero budget
    (6, "2026-03-31", 0, 0, 1, ZERO, 0, ZERO, "events"),  # conversion without revenue
    (7, "2026-05-10", 1000, 10, 1, _m("100.00"), 0, _m("31.250313"), "erp"),  # 1000.01 / 32
    (8, "2026-03-19", 5, 1, 0, ZERO, 0, ZERO, "erp"),  # ends before it starts
    (42, "2026-03-20", 1, 0, 0, ZERO, 0, None, "events"),
]


def _expected_campaign_days() -> list[Row]:
    rows = []
    for (campaign_id, day, impressions, clicks, conversions, revenue, sends, spend,
         source) in EXPECTED_CAMPAIGN_DAYS:
        business_id, branch_id, name, campaign_type, status = CAMPAIGNS[campaign_id]
        rows.append({
            "campaign_id": campaign_id, "date": _d(day), "business_id": business_id,
            "branch_id": branch_id, "campaign_name": name, "campaign_type": campaign_type,
            "status": status, "impressions": impressions, "clicks": clicks,
            "conversions": conversions, "revenue": revenue, "sends": sends, "spend": spend,
            "ctr": _ratio(clicks, impressions), "cvr": _ratio(conversions, clicks),
            "roi": None if spend is None else _ratio(revenue - spend, spend),
            "data_source": source,
        })
    return rows


def test_campaign_performance(marts: Marts) -> None:
    _assert_rows(marts["v_crm_campaign_performance"], _expected_campaign_days(),
                 key=lambda row: (row["campaign_id"], row["date"]))


def test_campaign_audience(marts: Marts) -> None:
    """Campaign 1 targets contacts 1 and 2; the fixture's conversion events name no contact, so
    none of them converted (the unit tests of campaign_lifetime cover conversions). Every other
    campaign has no audience: size 0 and no rate."""
    audience = {r["campaign_id"]: (r["audience_size"], r["audience_converted"],
                                   r["audience_conversion_rate"])
                for r in marts["campaign_lifetime"]}
    assert audience.pop(1) == (2, 0, 0.0)
    assert audience and set(audience.values()) == {(0, 0, None)}


def test_campaign_spend_is_exact(marts: Marts) -> None:
    spend = {(r["campaign_id"], r["date"]): r["spend"]
             for r in marts["v_crm_campaign_performance"]}
    assert isinstance(spend[(7, _d("2026-05-10"))], Decimal)
    assert str(spend[(7, _d("2026-05-10"))]) == "31.250313"
    assert str(spend[(2, _d("2026-03-01"))]) == "33.333333"


# --- v_crm_lead_conversion ------------------------------------------------------------------

# business_id, branch_id, source, cohort_month, leads, reached_contacted, reached_qualified,
# won_leads, lost_leads, lead_value, won_value
EXPECTED_COHORTS: list[tuple[Any, ...]] = [
    # leads 1-4; lead 4 was created 23:30 on 31 January in New York (1 February in UTC)
    (1, 10, "website", "2026-01-01", 4, 3, 2, 1, 0, _m("1000.00"), _m("400.00")),
    # lead 5 is lost, but a qualified event names it
    (1, 10, "website", "2026-02-01", 1, 1, 1, 0, 1, _m("50.00"), _m("0")),
    (1, 10, "unknown", "2026-02-01", 2, 0, 0, 0, 0, _m("30.00"), _m("0")),  # NULL and blank
    (1, 10, "referral", "2026-02-01", 1, 1, 1, 0, 0, _m("500.00"), _m("0")),  # by event
    (1, 11, "website", "2026-02-01", 1, 1, 0, 0, 0, _m("60.00"), _m("0")),  # 28 Feb local
    # lead 9 of soft-deleted contact 5 counts; lead 10 has no value
    (2, 20, "referral", "2026-03-01", 2, 1, 1, 1, 1, _m("700.00"), _m("700.00")),
    (None, None, "ads", "2026-03-01", 2, 1, 0, 0, 0, _m("25.00"), _m("0")),
]


def _expected_cohorts() -> list[Row]:
    rows = []
    for (business_id, branch_id, source, month, leads, contacted, qualified, won, lost, value,
         won_value) in EXPECTED_COHORTS:
        rows.append({
            "business_id": business_id, "branch_id": branch_id, "source": source,
            "cohort_month": _d(month), "leads": leads, "reached_contacted": contacted,
            "reached_qualified": qualified, "won_leads": won, "lost_leads": lost,
            "lead_value": value, "won_value": won_value,
            "qualification_rate": _ratio(qualified, leads), "lead_win_rate": _ratio(won, leads),
        })
    return rows


def test_lead_conversion(marts: Marts) -> None:
    _assert_rows(marts["v_crm_lead_conversion"], _expected_cohorts(),
                 key=lambda row: (row["business_id"], row["branch_id"], row["source"],
                                  row["cohort_month"]))


# --- an ERP without branches and a warehouse without events --------------------------------


def test_build_without_branches_or_events(tmp_path: Path) -> None:
    """Empty `branches`, `businesses` and `campaign_events` still build green: campaign
    businesses fall back to the seller contact's, and every day's data is ERP or none."""
    path = tmp_path / "warehouse.duckdb"
    write_raw_fixture(path, empty=("branches", "businesses", "campaign_events"))
    _build(tmp_path, {"CRM_DUCKDB_PATH": str(path)}, "duckdb")
    with duckdb.connect(str(path), read_only=True) as conn:
        rows = _fetch(conn.cursor(), "select * from marts.v_crm_campaign_performance")
        cohorts = _fetch(conn.cursor(), "select * from marts.v_crm_lead_conversion")
    assert {r["data_source"] for r in rows} == {"erp", "none"}
    business = {r["campaign_id"]: r["business_id"] for r in rows}
    assert business == {1: 2, 2: 2, 3: None, 4: 1, 5: None, 6: None, 7: None, 8: None}
    day = {(r["campaign_id"], r["date"]): r for r in rows}
    assert day[(1, _d("2026-03-26"))]["impressions"] == 1000  # no events: the ERP's row
    assert sum(r["reached_qualified"] for r in cohorts) == 3  # statuses only (leads 3, 4, 9)


def test_querying_guide_sql_runs_on_both_warehouses(marts: Marts) -> None:
    """docs/querying.md promises SQL that DuckDB and PostgreSQL both accept."""
    assert len(marts["_guide"]) >= 10
    assert [q for q in marts["_guide"] if q["error"]] == []
