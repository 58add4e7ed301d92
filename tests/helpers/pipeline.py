"""End-to-end helpers: the command line as a child, the warehouse read back, every contract
mart and every mart the dashboards read compared with the oracle."""

from __future__ import annotations

import math
import os
import subprocess
import sys
from datetime import date
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import psycopg

from dashboards.data import TOP_CONTACTS_PER_TENANT
from tests.helpers import oracle

AS_OF = date(2026, 3, 31)


MARTS = ("v_crm_contact_summary", "v_crm_pipeline_summary", "v_crm_campaign_performance",
         "v_crm_lead_conversion", "pipeline_by_tenant", "contact_segment_summary",
         "top_contacts")


def crm(args: list[str], cwd: Path, env: dict[str, str]) -> None:
    proc = subprocess.run([sys.executable, "-m", "crm_cli.cli", *args], cwd=cwd,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


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


def check_all_marts(source_url: str, schema: str | None, events: Path, wh_url: str,
                    tz: str) -> None:
    src = oracle.read_source(source_url, schema)
    evs = oracle.read_events(events, AS_OF)
    contacts = oracle.contact_summary(src)
    compare({(k,): v for k, v in contacts.items()},
            read_mart(wh_url, "v_crm_contact_summary"), ("contact_pk",), "contact summary")
    compare(oracle.pipeline_summary(src), read_mart(wh_url, "v_crm_pipeline_summary"),
            ("business_id", "branch_id", "stage_id"), "pipeline summary")
    performance = oracle.campaign_performance(src, evs, AS_OF, tz)
    compare(performance, read_mart(wh_url, "v_crm_campaign_performance"), ("campaign_id", "date"),
            "campaign performance")
    compare(oracle.campaign_audience(src, evs, {campaign for campaign, _ in performance}),
            read_mart(wh_url, "campaign_lifetime"), ("campaign_id",), "campaign audience")
    compare(oracle.lead_conversion(src, evs, tz), read_mart(wh_url, "v_crm_lead_conversion"),
            ("business_id", "branch_id", "source", "cohort_month"), "lead conversion")
    compare(oracle.pipeline_by_tenant(src), read_mart(wh_url, "pipeline_by_tenant"),
            ("business_id", "branch_id"), "pipeline by tenant")
    compare(oracle.contact_segments(contacts), read_mart(wh_url, "contact_segment_summary"),
            ("business_id", "branch_id", "contact_type", "customer_group_name"),
            "contact segments")
    compare({(k,): v for k, v in oracle.top_contacts(contacts, TOP_CONTACTS_PER_TENANT).items()},
            read_mart(wh_url, "top_contacts"), ("contact_pk",), "top contacts")
