"""The sales cockpit marts (docs/contract.md section 6, docs/metrics-cockpit.md) through the real
dbt CLI on generated rows (`tests/helpers/cockpit_fixture.py`), in DuckDB and in PostgreSQL, against
values computed independently in plain Python (`tests/helpers/cockpit_oracle.py`).

Three runs build the deal history the forecast and the slippage learn from: two history-only
builds on earlier as-of dates with the deals as they were then, then a full `dbt build` on the
as-of date. The reporting zone is America/New_York, so every date is a time-zone question.
"""

from __future__ import annotations

import json
import re
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest

from tests.helpers import cockpit_oracle as oracle
from tests.helpers.cockpit_fixture import AS_OF, TZ, CockpitWorld, generate
from tests.helpers.dbt import run_dbt, write_raw_fixture
from tests.helpers.oracle import campaign_performance, code
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import dbt_postgres_env, pg_conninfo

Row = dict[str, Any]
Marts = dict[str, list[Row]]

COLUMNS = {
    "sales_monthly": ["business_id", "branch_id", "owner_id", "month", "new_deals",
                      "new_pipeline", "won_deals", "won_amount", "lost_deals", "lost_amount",
                      "win_rate"],
    "deals_at_risk": ["deal_id", "business_id", "branch_id", "owner_id", "stage_id",
                      "stage_name", "amount", "close_date", "is_overdue", "days_overdue",
                      "is_stale", "days_since_update"],
    "campaign_attribution": ["campaign_id", "business_id", "branch_id", "campaign_name",
                             "campaign_type", "attributed_leads", "attributed_deals",
                             "won_deals", "won_amount", "spend", "cost_per_lead", "won_roi"],
    "stage_win_probability": ["business_id", "stage_id", "stage_name", "stage_order",
                              "observations", "won_observations", "history_rate",
                              "pooled_rate", "probability", "probability_source"],
    "sales_forecast": ["business_id", "branch_id", "owner_id", "month", "open_deals",
                       "best_case_amount", "weighted_amount", "won_deals", "won_amount"],
    "owner_leaderboard": ["business_id", "branch_id", "owner_id", "period_type",
                          "period_start", "new_deals", "new_pipeline", "won_deals",
                          "won_amount", "lost_deals", "lost_amount", "win_rate",
                          "avg_deal_size", "cycle_days_sum", "avg_cycle_days"],
    "sales_velocity": ["business_id", "branch_id", "owner_id", "open_deals", "open_amount",
                       "won_deals", "lost_deals", "won_amount", "cycle_days_sum", "win_rate",
                       "avg_deal_size", "avg_cycle_days", "velocity_per_day"],
    "deal_close_date_slippage": ["deal_id", "business_id", "branch_id", "owner_id",
                                 "first_close_date", "current_close_date", "slip_count",
                                 "slip_days_total", "max_slip_days"],
}
RATES = {"win_rate", "history_rate", "pooled_rate", "probability", "won_roi",
         "avg_cycle_days"}
#: money computed through a double (probability × amount, the velocity): within a cent
ROUNDED = {"weighted_amount", "velocity_per_day"}


# --- building -------------------------------------------------------------------------------


def _dbt(workdir: Path, env: dict[str, str], target: str, run_date: date,
         select: list[str]) -> None:
    env = {**env, "CRM_DBT_TARGET": target, "DBT_LOG_PATH": str(workdir / "logs")}
    variables = json.dumps({"as_of_date": run_date.isoformat(), "reporting_tz": TZ})
    result = run_dbt(["build", "--target", target, "--vars", variables, "--target-path",
                      str(workdir / "target"), *select], env)
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _build_history(world: CockpitWorld, workdir: Path, writer: Any, env: dict[str, str],
                   target: str) -> None:
    """The earlier runs record the deal history only; the last builds and tests everything."""
    for run_date, tables in world.runs[:-1]:
        writer(tables)
        _dbt(workdir, env, target, run_date,
             ["--select", "+crm_deal_versions", "--indirect-selection", "cautious"])
    run_date, tables = world.runs[-1]
    writer(tables)
    _dbt(workdir, env, target, run_date, [])


def _read(cursor: Any) -> Marts:
    marts: Marts = {}
    for name in COLUMNS:
        cursor.execute(f"select * from marts.{name}")
        names = [c[0] for c in cursor.description]
        marts[name] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    cursor.execute("select table_name, column_name, lower(data_type) as data_type, "
                   "numeric_precision, numeric_scale from information_schema.columns "
                   "where table_schema = 'marts' order by table_name, ordinal_position")
    names = [c[0] for c in cursor.description]
    marts["_columns"] = [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]
    marts["_guide"] = []
    for title, sql in _cockpit_questions():
        cursor.execute(sql)
        marts["_guide"].append({"title": title, "rows": len(cursor.fetchall())})
    return marts


def _cockpit_questions() -> list[tuple[str, str]]:
    """(title, sql) of the questions of docs/querying.md that read a cockpit mart."""
    text = (REPO_ROOT / "docs" / "querying.md").read_text()
    questions = re.findall(r"^### (.+?)\n.*?```sql\n(.*?)```", text, flags=re.S | re.M)
    return [(title, sql) for title, sql in questions
            if any(f"marts.{name}" in sql for name in COLUMNS)]


@pytest.fixture(scope="module")
def world() -> CockpitWorld:
    return generate()


@pytest.fixture(scope="module")
def duckdb_marts(world: CockpitWorld, tmp_path_factory: pytest.TempPathFactory) -> Marts:
    workdir = tmp_path_factory.mktemp("cockpit_duckdb")
    path = workdir / "warehouse.duckdb"
    _build_history(world, workdir, lambda tables: write_raw_fixture(path, data=tables),
                   {"CRM_DUCKDB_PATH": str(path)}, "duckdb")
    with duckdb.connect(str(path), read_only=True) as conn:
        return _read(conn.cursor())


@pytest.fixture(scope="module")
def postgres_marts(world: CockpitWorld, tmp_path_factory: pytest.TempPathFactory,
                   module_pg_database: str) -> Marts:
    conninfo = pg_conninfo(module_pg_database)
    workdir = tmp_path_factory.mktemp("cockpit_postgres")
    _build_history(world, workdir, lambda tables: write_raw_fixture(conninfo, data=tables),
                   dbt_postgres_env(module_pg_database), "postgres")
    with psycopg.connect(conninfo) as conn, conn.cursor() as cursor:
        return _read(cursor)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def marts(request: pytest.FixtureRequest) -> Marts:
    return request.getfixturevalue(f"{request.param}_marts")


# --- the oracle's values --------------------------------------------------------------------


@pytest.fixture(scope="module")
def expected(world: CockpitWorld) -> dict[str, dict]:
    final = world.final
    deals = oracle.deal_outcomes(final, AS_OF, TZ)
    versions = oracle.deal_versions(world.runs)
    events = [{"type": code(e["event_type"]), "time": e["event_time"],
               "campaign_id": e["campaign_id"], "revenue": e["revenue"]}
              for e in oracle.first_landed(final["campaign_events"])]
    days = campaign_performance(final, events, AS_OF, TZ)
    spend: dict[int, Decimal | None] = {}
    for (campaign_id, day), row in days.items():
        if day <= AS_OF and row["spend"] is not None:
            spend[campaign_id] = spend.get(campaign_id, Decimal(0)) + row["spend"]
    probabilities = oracle.stage_win_probability(final, deals, versions)
    return {
        "deals": {d["id"]: d for d in deals},
        "lead_campaigns": oracle.lead_campaigns(final, AS_OF, TZ),
        "sales_monthly": oracle.sales_monthly(deals),
        "deals_at_risk": oracle.deals_at_risk(final, deals, AS_OF),
        "campaign_attribution": oracle.campaign_attribution(final, deals, spend, AS_OF, TZ),
        "stage_win_probability": probabilities,
        "sales_forecast": oracle.sales_forecast(deals, probabilities, AS_OF),
        "owner_leaderboard": oracle.owner_leaderboard(deals),
        "sales_velocity": oracle.sales_velocity(deals, AS_OF),
        "deal_close_date_slippage": oracle.close_date_slippage(final, versions),
    }


KEYS = {
    "sales_monthly": ("business_id", "branch_id", "owner_id", "month"),
    "deals_at_risk": ("deal_id",),
    "campaign_attribution": ("campaign_id",),
    "stage_win_probability": ("business_id", "stage_id"),
    "sales_forecast": ("business_id", "branch_id", "owner_id", "month"),
    "owner_leaderboard": ("business_id", "branch_id", "owner_id", "period_type",
                          "period_start"),
    "sales_velocity": ("business_id", "branch_id", "owner_id"),
    "deal_close_date_slippage": ("deal_id",),
}


def _key(row: Row, names: tuple[str, ...]) -> Any:
    return row[names[0]] if len(names) == 1 else tuple(row[n] for n in names)


def _assert_mart(actual: list[Row], expected: dict, names: tuple[str, ...]) -> None:
    by_key = {_key(row, names): row for row in actual}
    assert len(by_key) == len(actual), "duplicate keys in the mart"
    assert sorted(by_key, key=repr) == sorted(expected, key=repr)
    for key, want in expected.items():
        got = by_key[key]
        for column, value in want.items():
            if column in ROUNDED and value is not None:
                assert got[column] is not None and abs(float(got[column]) - float(value)) \
                    <= 0.01, (key, column, got[column], value)
            elif column in RATES and value is not None:
                assert got[column] == pytest.approx(value, rel=1e-12), (key, column)
            else:
                assert got[column] == value, (key, column, got[column], value)


# --- the tests ------------------------------------------------------------------------------


@pytest.mark.parametrize("table", list(COLUMNS))
def test_columns_are_the_contract(marts: Marts, table: str) -> None:
    found = [c for c in marts["_columns"] if c["table_name"] == table]
    assert [c["column_name"] for c in found] == COLUMNS[table]
    for column in found:
        if column["column_name"] in RATES:
            assert column["data_type"] in ("double", "double precision"), column
        if column["column_name"].endswith(("_amount", "pipeline", "deal_size")) or \
                column["column_name"] in ("amount", "velocity_per_day"):
            assert (column["numeric_precision"], column["numeric_scale"]) == (18, 2), column


@pytest.mark.parametrize("table", list(KEYS))
def test_mart_matches_the_independent_values(marts: Marts, expected: dict[str, dict],
                                             table: str) -> None:
    assert expected[table], f"the generated rows leave {table} empty: the test would be void"
    _assert_mart(marts[table], expected[table], KEYS[table])


def test_the_generated_rows_reach_every_edge(expected: dict[str, dict]) -> None:
    """The hand-placed rows hit the edges section 6 names (so the comparisons above cover
    them), checked here against the definitions by hand."""
    deals, risk = expected["deals"], expected["deals_at_risk"]
    assert 9001 in deals and 9002 not in deals  # created 23:30 on A in, 00:30 after A out
    assert 9003 not in risk and risk[9004]["is_stale"]  # exactly 30 days vs 31
    assert risk[9004]["days_since_update"] == 31
    assert risk[9005]["days_overdue"] == 1 and risk[9005]["owner_id"] is None
    assert deals[9006]["won_date"] == date(2026, 2, 27)  # the event after A is ignored
    assert deals[9007]["won_date"] == date(2026, 3, 20)  # the first-landed copy's time
    assert deals[9008]["won_date"] == date(2026, 2, 28)  # 03:00 UTC 1 March, New York
    assert deals[9009]["lost_date"] == date(2026, 4, 2)  # not clamped to A
    leads = expected["lead_campaigns"]
    # exactly 720 h before counts, a tie goes to the smaller id, the first-landed copy wins,
    # a touch after A is none; the soft-deleted contact's lead and won deal count
    assert (leads[9001], leads[9002], leads[9003], leads[9005]) == (3, 2, 6, 5)
    assert 9004 not in leads
    attribution = expected["campaign_attribution"]
    assert attribution[6]["won_deals"] >= 1 and attribution[6]["won_amount"] >= Decimal("250")
    zero = attribution[7]
    assert (zero["attributed_leads"], zero["cost_per_lead"], zero["won_roi"]) == (0, None, -1.0)
    assert attribution[3]["spend"] is None and attribution[5]["won_roi"] is None  # no budget; 0
    forecast_months = {key[3] for key in expected["sales_forecast"]}
    assert min(forecast_months) == AS_OF.replace(day=1)
    assert any(r["slip_count"] > 1 for r in expected["deal_close_date_slippage"].values())
    assert {r["probability_source"] for r in expected["stage_win_probability"].values()} \
        == {"history", "pooled"}
    assert any(key[2] is None for key in expected["sales_monthly"])  # the NULL owner group


def test_month_rows_of_the_leaderboard_are_sales_monthly(marts: Marts) -> None:
    monthly = {_key(r, KEYS["sales_monthly"]): r for r in marts["sales_monthly"]}
    board = {(r["business_id"], r["branch_id"], r["owner_id"], r["period_start"]): r
             for r in marts["owner_leaderboard"] if r["period_type"] == "month"}
    assert monthly.keys() == board.keys()
    for key, row in monthly.items():
        assert all(board[key][c] == row[c] for c in ("new_deals", "won_amount", "lost_deals"))


def test_querying_guide_answers_the_cockpit_questions(marts: Marts) -> None:
    """docs/querying.md's bookings-by-month, forecast, at-risk and attribution questions run
    on this warehouse and answer with rows (every guide query also runs in
    tests/dbt/test_dbt_marts.py and tests/dbt/test_deal_history.py)."""
    read = {table for _, sql in _cockpit_questions() for table in COLUMNS
            if f"marts.{table}" in sql}
    assert {"sales_monthly", "sales_forecast", "deals_at_risk"} <= read
    assert [q for q in marts["_guide"] if not q["rows"]] == []
