"""End to end through the real command line: generate an ERP, run the pipeline, and compare every
row and column of every contract mart with `tests/helpers/oracle.py`, computed from the generated
rows and files in plain Python. Then: a second run changes nothing."""

import hashlib
import math
import os
import subprocess
import sys
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg
import pytest
import sqlalchemy as sa

from tests.conftest import pg_url
from tests.helpers import oracle

AS_OF = date(2026, 3, 31)
MARTS = ("v_crm_contact_summary", "v_crm_pipeline_summary", "v_crm_campaign_performance",
         "v_crm_lead_conversion")

pytestmark = pytest.mark.slow


def crm(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "crm_cli.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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


def query_warehouse(wh_url: str, sql: str) -> list[dict[str, Any]]:
    """Rows of `sql` as dicts, from a DuckDB file (opened read-only) or a PostgreSQL
    warehouse."""
    if wh_url.startswith("duckdb:///"):
        con = duckdb.connect(wh_url.removeprefix("duckdb:///"), read_only=True)
        try:
            cur = con.execute(sql)
            cols = [d[0] for d in cur.description]
            return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]
        finally:
            con.close()
    with psycopg.connect(wh_url) as conn:
        cur = conn.execute(sql)
        cols = [d.name for d in cur.description]
        return [dict(zip(cols, r, strict=True)) for r in cur.fetchall()]


def read_mart(wh_url: str, name: str) -> list[dict[str, Any]]:
    return query_warehouse(wh_url, f"select * from marts.{name}")


def same(expected: Any, actual: Any) -> bool:
    if expected is None or actual is None:
        return expected is None and actual is None
    if isinstance(expected, float) or isinstance(actual, float):
        return math.isclose(float(expected), float(actual), rel_tol=1e-9, abs_tol=1e-12)
    if isinstance(expected, Decimal) or isinstance(actual, Decimal):
        return Decimal(str(expected)) == Decimal(str(actual))
    return expected == actual


def compare(expected: dict[tuple, dict], actual_rows: list[dict], key_cols: tuple[str, ...],
            mart: str) -> None:
    actual = {tuple(r[k] for k in key_cols): r for r in actual_rows}
    assert len(actual) == len(actual_rows), f"{mart}: duplicate keys"
    missing, extra = set(expected) - set(actual), set(actual) - set(expected)
    assert not missing and not extra, (
        f"{mart}: {len(missing)} missing rows e.g. {sorted(missing, key=str)[:3]}, "
        f"{len(extra)} extra e.g. {sorted(extra, key=str)[:3]}")
    problems = []
    for key, exp in expected.items():
        for col, value in exp.items():
            if not same(value, actual[key][col]):
                problems.append(f"{key} {col}: expected {value!r}, got {actual[key][col]!r}")
    assert not problems, f"{mart}: {len(problems)} differences, e.g.\n" + "\n".join(problems[:8])


def digest(wh_url: str) -> dict[str, str]:
    out = {}
    for mart in MARTS:
        rows = sorted(repr(sorted(r.items())) for r in read_mart(wh_url, mart))
        out[mart] = hashlib.sha256("\n".join(rows).encode()).hexdigest()
    return out


def check_all_marts(source_url: str, schema: str | None, events: Path, wh_url: str,
                    tz: str) -> None:
    src = oracle.read_source(source_url, schema)
    evs = oracle.read_events(events, AS_OF)
    compare({(k,): v for k, v in oracle.contact_summary(src).items()},
            read_mart(wh_url, "v_crm_contact_summary"), ("contact_pk",), "contact summary")
    compare(oracle.pipeline_summary(src), read_mart(wh_url, "v_crm_pipeline_summary"),
            ("business_id", "branch_id", "stage_id"), "pipeline summary")
    compare(oracle.campaign_performance(src, evs, AS_OF, tz),
            read_mart(wh_url, "v_crm_campaign_performance"), ("campaign_id", "date"),
            "campaign performance")
    compare(oracle.lead_conversion(src, evs, tz), read_mart(wh_url, "v_crm_lead_conversion"),
            ("business_id", "branch_id", "source", "cohort_month"), "lead conversion")


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
