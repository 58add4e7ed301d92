"""Deal history through the real pipeline: generate an ERP, run `crm-analytics run` on several
successive as-of dates with stage changes made in the source between them (forward moves, a
win, a loss, a move back, an amount change, a stage cleared, a new deal, a same-date rerun that
sees another change), then check that the history marts answer "what did the pipeline look like
on day X" with the states this test recorded itself, in plain Python, from the source rows it
read before each run. The queries of docs/querying.md run against the same warehouse.

One module-scoped pipeline history (four runs) per warehouse, DuckDB and PostgreSQL, is shared
by every test here: the history marts (the append-only deal history, incremental models) and
the guide's queries are checked on both.
"""

from __future__ import annotations

import os
import re
import sqlite3
import subprocess
import sys
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from tests.helpers.paths import REPO_ROOT
from tests.helpers.pipeline import crm, query_warehouse
from tests.helpers.postgres import dbt_postgres_env, pg_url

pytestmark = pytest.mark.slow

D1, D2, D3 = date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 5)
TZ = "America/Los_Angeles"

#: deal id -> (stage_id, amount, contact_id) as the source held it
DealStates = dict[int, tuple[int | None, Decimal | None, int | None]]


@dataclass
class History:
    """What the test did and saw: the warehouse, and the deal states each run recorded."""

    warehouse: str  # CRM_WAREHOUSE_URL
    #: the variables that point dbt's profile at that warehouse
    dbt_env: dict[str, str]
    recorded: list[tuple[date, DealStates]]  # in run order
    stages: dict[int, dict[str, Any]]
    contacts: dict[int, tuple[int | None, int | None]]
    picked: dict[str, int]  # role -> deal id
    summary_at_d1: dict[tuple, tuple[int, Decimal]]


def _read_deals(db: Path) -> DealStates:
    with sqlite3.connect(db) as conn:
        rows = conn.execute("select id, stage_id, amount, contact_id from crm_deals").fetchall()
    return {i: (s, None if a is None else Decimal(str(a)).quantize(Decimal("0.01")), c)
            for i, s, a, c in rows}


def _update(db: Path, sql: str, *params: Any) -> None:
    with sqlite3.connect(db) as conn:
        conn.execute(sql, params)


def _erp_now() -> str:
    """Now, as the ERP stores timestamps in SQLite."""
    return datetime.now(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _edit_deal(db: Path, deal_id: int, assignments: str, *params: Any) -> None:
    """Change a deal as the ERP does: Django's `auto_now` moves `updated_at` on every save,
    which is what the incremental sync follows."""
    _update(db, f"update crm_deals set {assignments}, updated_at = ? where id = ?",
            *params, _erp_now(), deal_id)


@pytest.fixture(scope="module", params=["duckdb", pytest.param("postgres",
                                                               marks=pytest.mark.postgres)])
def history(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> History:
    tmp = tmp_path_factory.mktemp(f"history_{request.param}")
    db = tmp / "erp.sqlite"
    if request.param == "duckdb":
        warehouse = f"duckdb:///{tmp / 'wh.duckdb'}"
        dbt_env = {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(tmp / "wh.duckdb")}
    else:
        dbname = request.getfixturevalue("module_pg_database")
        warehouse, dbt_env = pg_url(dbname, driver="postgresql"), dbt_postgres_env(dbname)
    env = {"CRM_SOURCE_URL": f"sqlite:///{db}", "CRM_EVENTS_PATH": str(tmp / "events"),
           "CRM_WAREHOUSE_URL": warehouse, "CRM_REPORTING_TZ": TZ}
    crm(["generate", "--days", "20", "--seed", "7", "--end-date", D3.isoformat(), "--quiet"],
         tmp, env)

    with sqlite3.connect(db) as conn:
        stages = {r[0]: {"order": r[1], "won": bool(r[2]), "lost": bool(r[3])} for r in
                  conn.execute('select id, "order", is_won, is_lost from crm_pipeline_stages')}
        contacts = {r[0]: (r[1], r[2]) for r in
                    conn.execute("select id, business_id, branch_id from contacts")}
    won_stage = next(i for i, s in stages.items() if s["won"])
    lost_stage = next(i for i, s in stages.items() if s["lost"])
    open_by_order = sorted((s["order"], i) for i, s in stages.items()
                           if not s["won"] and not s["lost"])
    first, second, third, fourth = (i for _, i in open_by_order[:4])

    # deals the won events name would take the event's date as their won date: keep the
    # deals this test moves clear of them, so the expected dates are the runs' dates
    crm(["run", "--date", D1.isoformat()], tmp, env)
    won_event_deals = {r["deal_id"] for r in query_warehouse(
        warehouse, "select deal_id from raw.campaign_events "
                   "where lower(trim(event_type)) = 'erp.opportunity.won'")}
    deals = _read_deals(db)
    def pick(stage: int, skip: int = 0) -> int:
        return sorted(i for i, (s, a, c) in deals.items()
                      if s == stage and a is not None and c in contacts
                      and i not in won_event_deals)[skip]

    picked = {"forward_back": pick(first), "won": pick(second), "lost": pick(third),
              "amount": pick(fourth), "cleared": pick(second, 1), "rerun": pick(first, 1)}
    recorded = [(D1, deals)]
    summary_at_d1 = {
        (r["business_id"], r["branch_id"], r["stage_id"]): (r["deal_count"],
                                                            r["pipeline_value"])
        for r in query_warehouse(warehouse, "select * from marts.v_crm_pipeline_summary")
        if not r["is_won"] and not r["is_lost"] and r["deal_count"] > 0}

    # D1 -> D2: forward, won, lost, amount change, stage cleared
    _edit_deal(db, picked["forward_back"], "stage_id = ?", third)
    _edit_deal(db, picked["won"], "stage_id = ?", won_stage)
    _edit_deal(db, picked["lost"], "stage_id = ?", lost_stage)
    _edit_deal(db, picked["amount"], "amount = amount + 1000.25")
    _edit_deal(db, picked["cleared"], "stage_id = null")
    crm(["run", "--date", D2.isoformat()], tmp, env)
    recorded.append((D2, _read_deals(db)))

    # D2 -> D3: a move back, a forward move, a new deal
    _edit_deal(db, picked["forward_back"], "stage_id = ?", second)
    _edit_deal(db, picked["rerun"], "stage_id = ?", second)
    contact = recorded[0][1][picked["forward_back"]][2]
    _update(db, "insert into crm_deals (id, title, contact_id, stage_id, amount, updated_at) "
                "values (990001, 'New after history began', ?, ?, 42.50, ?)",
            contact, first, _erp_now())
    picked["new"] = 990001
    crm(["run", "--date", D3.isoformat()], tmp, env)
    recorded.append((D3, _read_deals(db)))

    # a rerun of D3 that sees one more change: the end-of-day state is the rerun's
    _edit_deal(db, picked["rerun"], "stage_id = ?", fourth)
    crm(["run", "--date", D3.isoformat()], tmp, env)
    recorded.append((D3, _read_deals(db)))

    return History(warehouse, dbt_env, recorded, stages, contacts, picked, summary_at_d1)


def _state_at_end_of(history: History, day: date) -> DealStates:
    """The states of the last run dated on or before `day` (runs are in order)."""
    states: DealStates = {}
    for run_date, deals in history.recorded:
        if run_date <= day:
            states = deals
    return states


def _expected_open_pipeline(history: History, day: date) -> dict[tuple, tuple[int, Decimal]]:
    out: dict[tuple, list] = defaultdict(lambda: [0, Decimal("0.00")])
    for stage_id, amount, contact_id in _state_at_end_of(history, day).values():
        stage = history.stages.get(stage_id) if stage_id is not None else None
        if stage and (stage["won"] or stage["lost"]):
            continue
        business, branch = history.contacts.get(contact_id, (None, None))
        key = (business, branch, stage_id if stage else None)
        out[key][0] += 1
        out[key][1] += amount or Decimal("0.00")
    return {k: (n, v) for k, (n, v) in out.items()}


def test_open_pipeline_on_every_past_day_matches_the_recorded_states(history: History) -> None:
    rows = query_warehouse(history.warehouse, "select * from marts.fct_open_pipeline_daily")
    by_day: dict[date, dict[tuple, tuple[int, Decimal]]] = defaultdict(dict)
    for r in rows:
        by_day[r["pipeline_date"]][(r["business_id"], r["branch_id"], r["stage_id"])] = (
            r["open_deals"], r["open_amount"])
    days = [D1 + timedelta(days=n) for n in range((D3 - D1).days + 1)]
    assert sorted(by_day) == days
    for day in days:
        assert by_day[day] == _expected_open_pipeline(history, day), day
    # the pipeline changed between the runs, so the days really differ
    assert by_day[D1] != by_day[D2] != by_day[D3]
    # and the first day is what the contract mart showed when that run happened
    assert by_day[D1] == history.summary_at_d1


def _visits(history: History, deal_id: int) -> list[tuple]:
    rows = query_warehouse(history.warehouse,
                  "select stage_id, entered_on, exited_on, days_in_stage, is_current, "
                  "entered_before_history from marts.fct_deal_stage_history "
                  f"where deal_id = {deal_id} order by visit_number")
    return [tuple(r.values()) for r in rows]


def test_stage_history_records_entries_exits_and_time_in_stage(history: History) -> None:
    d1 = history.recorded[0][1]
    p = history.picked
    start = d1[p["forward_back"]][0]
    third = history.recorded[1][1][p["forward_back"]][0]
    second = history.recorded[2][1][p["forward_back"]][0]
    assert _visits(history, p["forward_back"]) == [
        (start, D1, D2, 2, False, True),
        (third, D2, D3, 2, False, False),
        (second, D3, None, 0, True, False),
    ]
    won = history.recorded[1][1][p["won"]][0]
    assert _visits(history, p["won"]) == [
        (d1[p["won"]][0], D1, D2, 2, False, True), (won, D2, None, 2, True, False)]
    # cleared stage: time without a stage is a visit with stage_id NULL
    assert [v[0] for v in _visits(history, p["cleared"])] == [d1[p["cleared"]][0], None]
    # the same-date rerun superseded the move it saw first: one visit, entered on D3
    final = history.recorded[-1][1][p["rerun"]][0]
    assert _visits(history, p["rerun"]) == [
        (d1[p["rerun"]][0], D1, D3, 4, False, True), (final, D3, None, 0, True, False)]
    # created after history began: its entry is real
    assert _visits(history, p["new"]) == [(d1[p["forward_back"]][0], D3, None, 0, True, False)]
    # an amount change is no new visit
    assert [v[1] for v in _visits(history, p["amount"])] == [D1]


def test_stage_conversion_counts_the_moves_the_runs_saw(history: History) -> None:
    """Every deal seen in an open stage, per pair, with what became of it — from the
    recorded states, computed here."""
    seen: dict[tuple, dict[int, list[int | None]]] = defaultdict(lambda: defaultdict(list))
    end_of_day = dict(history.recorded)  # the last run of a date wins
    for _, deals in sorted(end_of_day.items()):
        for deal_id, (stage_id, _, contact_id) in deals.items():
            path = seen[history.contacts.get(contact_id, (None, None))][deal_id]
            if not path or path[-1] != stage_id:
                path.append(stage_id)
    expected: dict[tuple, list[int]] = defaultdict(lambda: [0, 0])
    for pair, paths in seen.items():
        for path in paths.values():
            for i, stage_id in enumerate(path):
                stage = history.stages.get(stage_id) if stage_id is not None else None
                if not stage or stage["won"] or stage["lost"] or stage_id in path[:i]:
                    continue
                later = [history.stages.get(s) for s in path[i + 1:] if s is not None]
                advanced = any(s and (s["won"] or (not s["lost"] and s["order"] >
                                                   stage["order"])) for s in later)
                expected[(*pair, stage_id)][0] += 1
                expected[(*pair, stage_id)][1] += advanced
    rows = query_warehouse(history.warehouse, "select * from marts.fct_stage_conversion")
    actual = {(r["business_id"], r["branch_id"], r["stage_id"]):
              [r["deals_entered"], r["deals_advanced"]] for r in rows}
    assert actual == dict(expected)
    assert sum(a for _, a in actual.values()) >= 2


def _guide_queries() -> list[tuple[str, str]]:
    """(title, sql) of every question in docs/querying.md: a `### ` heading followed by a
    ```sql block."""
    text = (REPO_ROOT / "docs" / "querying.md").read_text()
    return re.findall(r"^### (.+?)\n.*?```sql\n(.*?)```", text, flags=re.S | re.M)


def test_querying_guide_has_the_questions_its_heading_counts() -> None:
    text = (REPO_ROOT / "docs" / "querying.md").read_text()
    assert "## Fifteen questions, answered in SQL" in text
    assert len(_guide_queries()) == 15


@pytest.mark.parametrize("title,sql", _guide_queries(), ids=[t for t, _ in _guide_queries()])
def test_querying_guide_query_runs_and_answers(history: History, title: str, sql: str) -> None:
    rows = query_warehouse(history.warehouse, sql)
    assert rows, f"{title}: no rows"


def test_semantic_layer_metrics_match_the_mart(history: History, tmp_path: Path) -> None:
    """One query through the dbt semantic layer (MetricFlow's `mf query`): campaign revenue,
    spend and ROI by month, against the daily mart's rows summed here."""
    env = {**os.environ, "DBT_PROFILES_DIR": str(REPO_ROOT), **history.dbt_env,
           "DBT_LOG_PATH": str(tmp_path / "logs"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    bin_dir = Path(sys.executable).parent
    parse = subprocess.run([str(bin_dir / "dbt"), "parse", "--profiles-dir", str(REPO_ROOT)],
                           cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600,
                           check=False)
    assert parse.returncode == 0, parse.stdout[-4000:]
    out = tmp_path / "metrics.csv"
    query = subprocess.run(
        [str(bin_dir / "mf"), "query", "--metrics", "campaign_revenue,campaign_spend,campaign_roi",
         "--group-by", "metric_time__month", "--csv", str(out)],
        cwd=REPO_ROOT, env=env, capture_output=True, text=True, timeout=600, check=False)
    assert query.returncode == 0 and out.exists(), query.stdout[-4000:] + query.stderr[-2000:]

    expected: dict[date, list[Decimal]] = defaultdict(lambda: [Decimal(0), Decimal(0)])
    for r in query_warehouse(history.warehouse, 'select "date", revenue, spend '
                                       "from marts.v_crm_campaign_performance"):
        month = r["date"].replace(day=1)
        expected[month][0] += r["revenue"]
        expected[month][1] += r["spend"] or 0
    lines = out.read_text().splitlines()
    assert lines[0].split(",") == ["metric_time__month", "campaign_revenue", "campaign_spend",
                                   "campaign_roi"]
    actual = {}
    for line in lines[1:]:
        month, revenue, spend, roi = line.split(",")
        actual[date.fromisoformat(month[:10])] = (Decimal(revenue), Decimal(spend), roi)
    assert sorted(actual) == sorted(expected)
    for month, (revenue, spend) in expected.items():
        got_revenue, got_spend, got_roi = actual[month]
        assert got_revenue == revenue and abs(got_spend - spend) < Decimal("0.000001"), month
        if spend:
            assert abs(float(got_roi) - float((revenue - spend) / spend)) < 1e-9, month
