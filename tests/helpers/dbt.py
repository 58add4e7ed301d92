"""A small hand-written `raw` schema for the dbt models, and a helper that runs the real dbt CLI.

`write_raw_fixture(target)` creates the schema `raw` (every ERP table of `crm-erd.md` plus
`campaign_events`, typed as the ingestion lands them) in a DuckDB file (a path) or a PostgreSQL
database (a psycopg conninfo string), filled with a dozen rows a table that cover the edge cases
the marts must get right: odd-case and blank codes, NULL and unknown stage ids, deals and leads
without a contact or with an unknown one, a soft-deleted contact with leads and deals, zero
denominators, duplicate event deliveries (same file, other file, later landing date), a late
event, activity after the as-of date, and timestamps near midnight in America/New_York.

The numbers the marts must produce from these rows are written out in `test_dbt_marts.py`.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Collection, Mapping, Sequence
from datetime import UTC, date, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

from ingestion.erp.schema import erp_tables

REPO_ROOT = Path(__file__).resolve().parents[2]

#: The as-of date and reporting zone the tests build with.
AS_OF_DATE = "2026-03-31"
REPORTING_TZ = "America/New_York"

Row = dict[str, Any]


def _ts(text: str) -> datetime:
    """A UTC instant from 'YYYY-MM-DD HH:MM'."""
    return datetime.strptime(text, "%Y-%m-%d %H:%M").replace(tzinfo=UTC)


def _d(text: str) -> date:
    return date.fromisoformat(text)


def _m(text: str) -> Decimal:
    return Decimal(text)


# --- table layouts (the ERP's from its declaration; `email` on contacts is an extra column) ---

def _raw_type(data_type: str) -> str:
    """How the sync lands a declared ERP type in `raw`, near enough for the fixture (lengths
    dropped, integers widened)."""
    base = data_type.split("(")[0]
    return {"integer": "bigint", "varchar": "varchar", "text": "varchar",
            "numeric": "decimal" + data_type[len(base):]}.get(base, data_type)


COLUMNS: dict[str, list[tuple[str, str]]] = {
    **{table.name: [(c.name, _raw_type(c.data_type)) for c in table.columns]
       + ([("email", "varchar")] if table.name == "contacts" else [])
       for table in erp_tables().values()},
    "campaign_events": [
        ("event_source", "varchar"), ("event_id", "varchar"), ("event_type", "varchar"),
        ("event_time", "timestamptz"), ("campaign_id", "bigint"), ("contact_id", "bigint"),
        ("lead_id", "bigint"), ("deal_id", "bigint"), ("revenue", "decimal(15,2)"),
        ("business_id", "bigint"), ("branch_id", "bigint"), ("landing_date", "date"),
        ("file_path", "varchar"), ("line_number", "bigint"), ("load_id", "varchar"),
    ],
    "event_files": [
        ("file_path", "varchar"), ("landing_date", "date"), ("size_bytes", "bigint"),
        ("checksum", "varchar"), ("loaded_at", "timestamptz"), ("load_id", "varchar"),
        ("lines", "bigint"), ("events", "bigint"), ("rejected", "bigint"),
        ("replaced", "boolean"),
    ],
}


def _rows(keys: Sequence[str], *values: Sequence[Any]) -> list[Row]:
    return [dict(zip(keys, row, strict=True)) for row in values]


# --- the data ---------------------------------------------------------------------------------

BUSINESSES = _rows(("id", "name"), (1, "Acme"), (2, "Globex"))

# branch 21 (contact 8) and 77 (campaign 4) are unknown
BRANCHES = _rows(
    ("id", "business_id", "name"),
    (10, 1, "Acme North"), (11, 1, "Acme South"), (20, 2, "Globex HQ"),
)

# user 2 has only a username, user 3 only padded blanks around its names
AUTH_USERS = _rows(
    ("id", "username", "first_name", "last_name", "email"),
    (1, "ana", "Ana", "Silva", "Ana@Example.com "),
    (2, "ben.o", None, None, None),
    (3, None, "  Chloé ", " ", "chloe@example.com"),
)

CUSTOMER_GROUPS = _rows(
    ("id", "group_name", "dicount_calculation", "amount"),
    (1, "Retail", " Percentage ", _m("5.00")),
    (2, "Wholesale", "FIXED", _m("10.00")),
    (3, "VIP", "percentage", _m("15.00")),
)

CONTACTS = _rows(
    ("id", "contact_id", "contact_type", "business_id", "branch_id", "customer_group_id",
     "account_type", "credit_limit", "added_on", "is_deleted"),
    (1, "C-001", "Customers", 1, 10, 1, "Individual", _m("1000.00"), _d("2025-01-05"), False),
    (2, "C-002", " customers ", 1, 10, 2, "BUSINESS", _m("5000.00"), _d("2025-02-10"), False),
    (3, "C-003", "Suppliers", 1, 11, None, "Business", None, _d("2025-03-01"), False),
    (4, "C-004", "Customers & Suppliers", 2, 20, 3, "Individual", _m("250.50"),
     _d("2025-04-15"), False),
    # soft-deleted: out of the contact summary, but its lead and deal count elsewhere
    (5, "C-005", "Customers", 2, 20, 1, "individual", _m("0.00"), _d("2025-05-20"), True),
    # is_deleted NULL counts as not deleted; no branch
    (6, "C-006", "CUSTOMERS", 1, None, None, " Individual", None, None, None),
    (7, "C-007", "Suppliers", 2, 20, None, "Business", _m("0.00"), _d("2025-06-01"), False),
    # unknown customer group 99, unknown branch 21, nothing else
    (8, "C-008", "Customers", 2, 21, 99, "Individual", _m("100.00"), _d("2025-07-01"), False),
)

CONTACT_ACCOUNTS = _rows(
    ("id", "contact_id", "account_balance", "advance_balance", "total_sale_due",
     "total_sale_return_due"),
    (1, 1, _m("100.00"), _m("10.00"), _m("50.00"), _m("5.00")),
    (2, 1, _m("200.50"), _m("0.00"), _m("25.25"), _m("0.00")),
    (3, 2, _m("-75.00"), _m("30.00"), _m("0.00"), _m("12.00")),
    (4, 5, _m("999.99"), _m("1.00"), _m("1.00"), _m("1.00")),
    (5, 4, None, _m("5.00"), None, None),
    (6, 999, _m("1.00"), _m("1.00"), _m("1.00"), _m("1.00")),
)

# stage 3 has NULL flags (= false): an open stage
STAGES = _rows(
    ("id", "name", "order", "is_won", "is_lost"),
    (1, "Prospecting", 1, False, False),
    (2, "Proposal", 2, False, False),
    (3, "Negotiation", 3, None, None),
    (4, "Closed Won", 4, True, False),
    (5, "Closed Lost", 5, False, True),
)

DEALS = _rows(
    ("id", "title", "contact_id", "stage_id", "amount"),
    (1, "Deal 1", 1, 1, _m("100.00")),
    (2, "Deal 2", 1, 2, _m("200.00")),
    (3, "Deal 3", 2, 3, _m("300.00")),
    (4, "Deal 4", 2, 4, _m("1000.00")),
    (5, "Deal 5", 1, 4, _m("500.00")),
    (6, "Deal 6", 2, 5, _m("400.00")),
    (7, "Deal 7 (no stage)", 1, None, _m("50.00")),
    (8, "Deal 8 (unknown stage)", 2, 99, _m("70.00")),
    (9, "Deal 9", 3, 5, _m("600.00")),
    (10, "Deal 10 (no amount)", 3, 2, None),
    (11, "Deal 11 (deleted contact)", 5, 4, _m("800.00")),
    (12, "Deal 12", 4, 1, _m("150.00")),
    (13, "Deal 13 (no contact)", None, 3, _m("90.00")),
    (14, "Deal 14 (won, zero)", 6, 4, _m("0.00")),
    (15, "Deal 15 (unknown contact)", 999, 2, _m("40.00")),
)

LEADS = _rows(
    ("id", "contact_id", "source", "status", "value", "created_at"),
    (1, 1, "Website", "New", _m("100.00"), _ts("2026-01-10 15:00")),
    (2, 1, " website ", "contacted", _m("200.00"), _ts("2026-01-20 15:00")),
    (3, 2, "WEBSITE", "Qualified", _m("300.00"), _ts("2026-01-25 15:00")),
    # 23:30 on 31 January in New York: a January lead
    (4, 2, "website", " WON ", _m("400.00"), _ts("2026-02-01 04:30")),
    # lost, but an erp.lead.qualified event names it
    (5, 1, "website", "lost", _m("50.00"), _ts("2026-02-05 15:00")),
    (6, 2, None, "new", _m("10.00"), _ts("2026-02-10 15:00")),
    (7, 1, "  ", "new", _m("20.00"), _ts("2026-02-11 15:00")),
    # new, but qualified by an event (delivered twice)
    (8, 1, "Referral", "new", _m("500.00"), _ts("2026-02-12 15:00")),
    (9, 5, "referral", "won", _m("700.00"), _ts("2026-03-01 15:00")),
    (10, 4, "Referral", "lost", None, _ts("2026-03-02 15:00")),
    (11, None, "ads", "new", _m("0.00"), _ts("2026-03-03 15:00")),
    (12, 999, "Ads", "contacted", _m("25.00"), _ts("2026-03-04 15:00")),
    # 22:00 on 28 February in New York
    (13, 3, "Website", "Contacted", _m("60.00"), _ts("2026-03-01 03:00")),
)

CAMPAIGNS = _rows(
    ("id", "name", "campaign_type", "status", "seller_id", "branch_id", "start_date",
     "end_date", "budget"),
    # flight 24 Mar .. 2 Apr in New York (10 days): the start is 22:00 on the 24th there
    (1, "Spring Email", " Email ", "Active", 7, 10, _ts("2026-03-25 02:00"),
     _ts("2026-04-02 12:00"), _m("1000.00")),
    # no branch: business from the seller contact (7 -> business 2)
    (2, "Banner Q1", "BANNER", "completed", 7, None, _ts("2026-03-01 14:00"),
     _ts("2026-03-03 14:00"), _m("100.00")),
    (3, "No budget", "sms", "draft", None, 11, _ts("2026-03-28 14:00"),
     _ts("2026-03-29 14:00"), None),
    # unknown branch 77: business from the seller contact (3 -> business 1); no flight
    (4, "Unknown branch", "Social", "PAUSED", 3, 77, None, None, _m("500.00")),
    # flight after the as-of date
    (5, "Future", "email", "active", None, 20, _ts("2026-04-10 14:00"),
     _ts("2026-04-20 14:00"), _m("220.00")),
    (6, "Zero budget", "loyalty", "active", None, 20, _ts("2026-03-30 14:00"),
     _ts("2026-03-31 14:00"), _m("0.00")),
    # 32 flight days: 1000.01 / 32 = 31.2503125, rounded half away from zero
    (7, "Odd budget", "promotional", "active", None, 11, _ts("2026-05-01 14:00"),
     _ts("2026-06-01 14:00"), _m("1000.01")),
    # ends before it starts: no flight date
    (8, "Backwards", "seasonal", "cancelled", None, 20, _ts("2026-03-20 14:00"),
     _ts("2026-03-18 14:00"), _m("100.00")),
)

PERFORMANCE = _rows(
    ("id", "campaign_id", "date", "impressions", "clicks", "conversions", "revenue"),
    (1, 1, _d("2026-03-26"), 1000, 100, 10, _m("500.00")),  # events win that day
    (2, 1, _d("2026-03-27"), 40, 4, 1, _m("25.00")),
    (3, 1, _d("2026-03-27"), 10, 1, 0, _m("0.00")),
    (4, 2, _d("2026-03-01"), 300, 30, 3, _m("90.00")),
    (5, 2, _d("2026-03-01"), 200, 20, 2, _m("60.00")),
    (6, 4, _d("2026-03-15"), 100, 0, 0, _m("0.00")),
    (7, 5, _d("2026-04-12"), 10, 2, 1, _m("20.00")),
    (8, 3, _d("2026-03-28"), 0, 0, 0, _m("0.00")),
    (9, 6, _d("2026-03-30"), 50, 5, 1, _m("10.00")),
    (10, 2, _d("2026-03-05"), 20, 2, 0, _m("0.00")),
    (11, 7, _d("2026-05-10"), 1000, 10, 1, _m("100.00")),
    (12, 8, _d("2026-03-19"), 5, 1, 0, _m("0.00")),
    (13, 1, None, 7, 7, 7, _m("7.00")),  # no date: placed nowhere
    (14, 1, _d("2026-03-28"), 999, 99, 9, _m("99.00")),  # events (a send) win that day
)

_EVENT_KEYS = ("event_source", "event_id", "event_type", "event_time", "campaign_id",
               "lead_id", "deal_id", "revenue", "landing_date", "file_path", "line_number")


def _events(landing: str, file_name: str, *lines: tuple[Any, ...]) -> list[Row]:
    rows = []
    for number, line in enumerate(lines, start=1):
        row = dict(zip(_EVENT_KEYS[:8], line, strict=True))
        row |= {"landing_date": _d(landing), "file_path": f"{landing}/{file_name}",
                "line_number": number, "load_id": f"load-{landing}"}
        rows.append(row)
    return rows


IMPRESSION, CLICK, CONVERSION, SENT = (
    "erp.campaign.impression", "erp.campaign.click", "erp.campaign.conversion",
    "erp.campaign.sent")
QUALIFIED, WON = "erp.lead.qualified", "erp.opportunity.won"

EVENTS = [
    *_events(
        "2026-03-27", "a.jsonl",
        ("erp", "e1", IMPRESSION, _ts("2026-03-26 14:00"), 1, None, None, None),
        ("erp", "e2", " ERP.Campaign.Impression", _ts("2026-03-26 15:00"), 1, None, None, None),
        # 23:30 on 26 March in New York
        ("erp", "e3", CLICK, _ts("2026-03-27 03:30"), 1, None, None, None),
        ("erp", "e4", CONVERSION, _ts("2026-03-26 16:00"), 1, None, None, _m("150.00")),
        # same id, other source: another event
        ("web", "e1", IMPRESSION, _ts("2026-03-26 17:00"), 1, None, None, None),
    ),
    *_events(
        "2026-03-27", "b.jsonl",
        # a later file of the same landing date: a duplicate that loses (else 27 March
        # would be an `events` day)
        ("erp", "e3", CLICK, _ts("2026-03-27 15:00"), 1, None, None, None),
    ),
    *_events(
        "2026-03-28", "a.jsonl",
        # a later landing date: a duplicate that loses (its revenue is not counted)
        ("erp", "e4", CONVERSION, _ts("2026-03-26 16:00"), 1, None, None, _m("999.00")),
        ("erp", "e6", SENT, _ts("2026-03-28 14:00"), 1, None, None, None),
        ("erp", "e6", SENT, _ts("2026-03-28 14:00"), 1, None, None, None),
        # a lead event naming a campaign is no campaign activity
        ("erp", "q1", QUALIFIED, _ts("2026-02-20 14:00"), 1, 8, None, None),
    ),
    *_events(
        "2026-03-30", "late.jsonl",
        # a late event: counts on 25 March
        ("erp", "e5", CLICK, _ts("2026-03-25 15:00"), 1, None, None, None),
        ("erp", "q1", QUALIFIED, _ts("2026-02-20 14:00"), 1, 8, None, None),
        ("erp", "q2", QUALIFIED, _ts("2026-03-29 14:00"), None, 5, None, None),
        ("erp", "w1", WON, _ts("2026-03-29 15:00"), None, None, 4, None),
        ("erp", "q3", QUALIFIED, _ts("2026-03-29 16:00"), None, 777, None, None),
    ),
    *_events(
        "2026-03-31", "a.jsonl",
        # 22:00 on 31 March in New York
        ("erp", "e7", SENT, _ts("2026-04-01 02:00"), 1, None, None, None),
        # 1 April in New York: activity after the as-of date
        ("erp", "e8", IMPRESSION, _ts("2026-04-01 13:00"), 1, None, None, None),
        # a campaign the ERP does not know
        ("erp", "e9", IMPRESSION, _ts("2026-03-20 14:00"), 42, None, None, None),
        # a conversion without revenue
        ("erp", "e10", CONVERSION, _ts("2026-03-31 14:00"), 6, None, None, None),
    ),
]

DATA: dict[str, list[Row]] = {
    "businesses": BUSINESSES,
    "branches": BRANCHES,
    "auth_users": AUTH_USERS,
    "customer_groups": CUSTOMER_GROUPS,
    "contacts": CONTACTS,
    "contact_accounts": CONTACT_ACCOUNTS,
    "crm_leads": LEADS,
    "crm_pipeline_stages": STAGES,
    "crm_deals": DEALS,
    "crm_campaigns": CAMPAIGNS,
    "crm_campaign_performance": PERFORMANCE,
    # campaign 1 targets contacts 1 and 2 (2 twice, and a NULL contact that does not count)
    "crm_campaigns_target_audience": _rows(
        ("id", "campaign_id", "contact_id"), (1, 1, 1), (2, 1, 2), (3, 1, 2), (4, 1, None)),
    "campaign_events": EVENTS,
    # the loader's manifest: one row per file the events came from
    "event_files": [
        {"file_path": path, "landing_date": landing, "size_bytes": 0, "checksum": "-",
         "loaded_at": datetime(2026, 4, 1, 6, 0, tzinfo=UTC), "load_id": "fixture",
         "lines": 0, "events": 0, "rejected": 0, "replaced": False}
        for path, landing in sorted({(e["file_path"], e["landing_date"]) for e in EVENTS})
    ],
}


# --- writing it -------------------------------------------------------------------------------

def _is_postgres(target: str | Path) -> bool:
    return isinstance(target, str) and ("dbname=" in target or target.startswith("postgres"))


def write_raw_fixture(target: str | Path, empty: Collection[str] = (),
                      data: Mapping[str, list[Row]] | None = None) -> None:
    """Create schema `raw` with the fixture tables in a DuckDB file (a path) or a PostgreSQL
    database (a psycopg conninfo / URL string). Existing fixture tables are replaced.

    Tables named in `empty` are created without rows (an ERP without `branches`, a warehouse
    that has loaded no event yet). `data` replaces this module's rows (other generated
    rows in the same layout, table by table; a table it lacks is empty)."""
    postgres = _is_postgres(target)
    marker = "%s" if postgres else "?"
    statements: list[tuple[str, list[tuple[Any, ...]]]] = []
    for table, columns in COLUMNS.items():
        names = [name for name, _ in columns]
        quoted = ", ".join(f'"{name}"' for name in names)
        ddl = ", ".join(f'"{name}" {sql_type}' for name, sql_type in columns)
        # PostgreSQL: the staging views of an earlier build depend on the table (dbt
        # recreates them on the next build)
        cascade = " cascade" if postgres else ""
        statements.append((f"drop table if exists raw.{table}{cascade}", []))
        statements.append((f"create table raw.{table} ({ddl})", []))
        source = DATA if data is None else data
        table_rows = [] if table in empty else source.get(table, [])
        rows = [tuple(row.get(name) for name in names) for row in table_rows]
        placeholders = ", ".join([marker] * len(names))
        statements.append((f"insert into raw.{table} ({quoted}) values ({placeholders})", rows))

    if postgres:
        import psycopg

        with psycopg.connect(str(target)) as conn, conn.cursor() as cur:
            cur.execute("create schema if not exists raw")
            for sql, rows in statements:
                if rows:
                    cur.executemany(sql, rows)
                elif "insert" not in sql:
                    cur.execute(sql)
    else:
        import duckdb

        with duckdb.connect(str(target)) as conn:
            conn.execute("create schema if not exists raw")
            for sql, rows in statements:
                if rows:
                    conn.executemany(sql, rows)
                elif "insert" not in sql:
                    conn.execute(sql)


def run_dbt(args: Sequence[str], env: Mapping[str, str]) -> subprocess.CompletedProcess[str]:
    """Run the real dbt CLI from the repository root with `--profiles-dir <repo root>`.

    `env` is added to the current environment (CRM_DBT_TARGET, CRM_DUCKDB_PATH, CRM_PG_*...);
    pass `--target-path` (and DBT_LOG_PATH in `env`) to keep concurrent runs apart. Returns the
    completed process; the caller checks `returncode` and reads `stdout`."""
    dbt = Path(sys.executable).with_name("dbt")
    command = [str(dbt) if dbt.exists() else "dbt", *args, "--profiles-dir", str(REPO_ROOT)]
    return subprocess.run(
        command, cwd=REPO_ROOT, capture_output=True, text=True, check=False, timeout=900,
        env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env},
    )
