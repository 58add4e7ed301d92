"""A small ERP source written in SQLAlchemy (every declared table, one or two rows each, with
an extra column), and the sync tests' digests: `raw` compared with the source row for row."""

from __future__ import annotations

import datetime as dt
import hashlib
import threading
from decimal import Decimal
from pathlib import Path

import psycopg
import sqlalchemy as sa

from crm_core.urls import parse_warehouse_url
from ingestion.erp.schema import SOURCE_TABLES, build_metadata
from ingestion.erp.sync import SyncReport, sync_erp
from ingestion.warehouse import open_warehouse
from tests.helpers.postgres import pg_url

UTC = dt.UTC

ROWS: dict[str, list[dict]] = {
    "businesses": [{"id": 1, "name": "Acme"}],
    "branches": [{"id": 10, "business_id": 1, "name": "Main street"}],
    "auth_users": [{"id": 7, "username": "ana", "first_name": "Ana", "last_name": "Silva",
                    "email": "ana@example.com"}],
    "customer_groups": [{"id": 1, "group_name": "VIP", "dicount_calculation": "Percentage",
                         "amount": Decimal("5.00")}],
    "contacts": [
        {"id": 1, "contact_id": "C-1", "contact_type": "Customers", "business_id": 1,
         "branch_id": 10, "customer_group_id": 1, "credit_limit": Decimal("1000.00"),
         "added_on": dt.date(2026, 1, 2), "is_deleted": False, "phone": "+1 555 0100"},
        {"id": 2, "contact_id": "C-2", "contact_type": "  SUPPLIERS", "business_id": 1,
         "branch_id": None, "is_deleted": True, "business_name": "Ünïcødé ש"},
    ],
    "contact_accounts": [{"id": 1, "contact_id": 1, "account_balance": Decimal("12.34"),
                          "advance_balance": Decimal("0.00"),
                          "total_sale_due": Decimal("-1.50"), "total_sale_return_due": None}],
    "crm_leads": [{"id": 1, "contact_id": 1, "source": " Web ", "status": " Won",
                   "value": Decimal("99999.99"),
                   "created_at": dt.datetime(2026, 1, 31, 23, 30, tzinfo=UTC),
                   "updated_at": dt.datetime(2026, 2, 1, 4, 0, tzinfo=UTC)}],
    "crm_pipeline_stages": [{"id": 1, "name": "New", "order": 1, "is_won": False,
                             "is_lost": False}],
    "crm_deals": [{"id": 1, "title": "Deal", "contact_id": 1, "lead_id": 1, "stage_id": None,
                   "amount": Decimal("10.00"), "close_date": dt.date(2026, 3, 1),
                   "created_at": dt.datetime(2026, 2, 1, tzinfo=UTC)}],
    "crm_campaigns": [{"id": 1, "name": "Spring", "campaign_type": "email", "status": "active",
                       "branch_id": 10, "budget": Decimal("300.00"),
                       "start_date": dt.datetime(2026, 3, 1, tzinfo=UTC),
                       "end_date": dt.datetime(2026, 3, 3, tzinfo=UTC)}],
    "crm_campaign_performance": [{"id": 1, "campaign_id": 1, "date": dt.date(2026, 3, 1),
                                  "impressions": 100, "clicks": 5, "conversions": 1,
                                  "revenue": Decimal("20.00")}],
    "crm_campaigns_target_audience": [{"id": 1, "campaign_id": 1, "contact_id": 1}],
}


def write_source(url: str, schema: str | None = None, skip: tuple[str, ...] = ()) -> None:
    engine = sa.create_engine(url)
    md = build_metadata(schema)
    contacts = md.tables[f"{schema}.contacts" if schema else "contacts"]
    contacts.append_column(sa.Column("loyalty_tier", sa.String(20)))  # an extra column
    with engine.begin() as conn:
        if schema:
            conn.execute(sa.text(f'create schema if not exists "{schema}"'))
        for name in SOURCE_TABLES:
            if name in skip:
                continue
            table = md.tables[f"{schema}.{name}" if schema else name]
            table.create(conn)
            conn.execute(table.insert(),
                         [{c.name: row.get(c.name) for c in table.columns} for row in ROWS[name]])
    engine.dispose()


def _normalise(value: object) -> object:
    if isinstance(value, dt.datetime):
        return value.astimezone(UTC).isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def _digest(columns: list[str], rows: list[tuple]) -> tuple[list[str], int, str]:
    """Columns, row count and a SHA-256 over the rows sorted in Python."""
    lines = sorted(repr(tuple(_normalise(v) for v in row)) for row in rows)
    return columns, len(lines), hashlib.sha256("\n".join(lines).encode()).hexdigest()


def source_url(source_db: str, driver: str = "postgresql") -> str:
    """The URL of a source database: `source_db` names a database on the shared test server,
    or is a `postgresql://` URL already (a database on this session's private cluster,
    `private_pg_database`)."""
    if "://" in source_db:
        return source_db.replace("postgresql://", f"{driver}://", 1)
    return pg_url(source_db, driver=driver)


def source_digest(source_db: str, table: str) -> tuple[list[str], int, str]:
    return conninfo_digest(source_url(source_db), table)


def conninfo_digest(conninfo: str, table: str) -> tuple[list[str], int, str]:
    """The digest of `public.<table>` in the PostgreSQL database at `conninfo` (or URL)."""
    with psycopg.connect(conninfo) as conn:
        cur = conn.execute(f'select * from public."{table}"')
        return _digest([d.name for d in cur.description], cur.fetchall())


def raw_digest(wh_url: str, table: str) -> tuple[list[str], int, str]:
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        columns = [r[0] for r in wh.fetchall(
            "select column_name from information_schema.columns where table_schema = 'raw' "
            "and table_name = ? order by ordinal_position", (table,))]
        return _digest(columns, wh.fetchall(f'select * from raw."{table}"'))
    finally:
        wh.close()


def assert_raw_equals_source(source_db: str, wh_url: str) -> None:
    for table in SOURCE_TABLES:
        assert raw_digest(wh_url, table) == source_digest(source_db, table), table


def all_raw(wh_url: str) -> dict[str, tuple]:
    return {t: raw_digest(wh_url, t) for t in SOURCE_TABLES}


def sync(source_db: str, wh_url: str, overlap: dt.timedelta = dt.timedelta(minutes=10)
         ) -> SyncReport:
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        return sync_erp(source_url(source_db, "postgresql+psycopg"), "public", wh,
                        overlap=overlap)
    finally:
        wh.close()


def source_exec(source_db: str, *statements: str) -> None:
    with psycopg.connect(source_url(source_db), autocommit=True) as conn:
        for sql in statements:
            conn.execute(sql)


def sync_past_an_idle_timeout(source_db: str, wh_url: str) -> None:
    """Sync while the source ends sessions idle in a transaction after 200 ms and a lock holds
    `crm_deals` for 1.5 s (the copy of that table waits; the sync's other sessions idle)."""
    source_exec(source_db, f"alter database {source_db} "
                           "set idle_in_transaction_session_timeout = '200ms'")
    with psycopg.connect(pg_url(source_db, driver="postgresql")) as locker:
        locker.execute("set idle_in_transaction_session_timeout = 0")  # this one stays
        locker.execute("lock table crm_deals in access exclusive mode")
        release = threading.Timer(1.5, locker.rollback)
        release.start()
        try:
            sync(source_db, wh_url)
        finally:
            release.join()
