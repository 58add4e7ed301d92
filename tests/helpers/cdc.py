"""What the change-data-capture tests share: an ERP database on the private logical cluster
(the small source of `tests/helpers/sync.py` plus 2,000 generated contacts, so a few changed
rows are few next to the table), syncs in CDC mode, the source's own count of rows it handed
out, and `raw` compared with the source."""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

from crm_core.urls import parse_warehouse_url
from ingestion.erp.cdc_sync import sync_cdc
from ingestion.erp.schema import SOURCE_TABLES
from ingestion.erp.sync import SyncReport
from ingestion.warehouse import open_warehouse
from tests.helpers.logical_pg import LogicalCluster
from tests.helpers.sync import conninfo_digest, raw_digest, write_source

SLOT = "crm_test_slot"
#: Contacts generated on top of the small source (ids from 100).
EXTRA_CONTACTS = 2000


@dataclass(frozen=True)
class CdcSource:
    cluster: LogicalCluster
    db: str

    @property
    def url(self) -> str:
        return self.cluster.url(self.db)

    @property
    def conninfo(self) -> str:
        return self.cluster.conninfo(self.db)

    def execute(self, *statements: str) -> None:
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            for statement in statements:
                conn.execute(statement)

    def env(self, warehouse_url: str, **extra: str) -> dict[str, str]:
        """The `crm-analytics` environment of a CDC sync from this source."""
        return {"CRM_SOURCE_URL": self.url, "CRM_WAREHOUSE_URL": warehouse_url,
                "CRM_SYNC_MODE": "cdc", "CRM_CDC_SLOT": SLOT, "CRM_REPORTING_TZ": "UTC",
                **extra}

    def rows_handed_out(self) -> int:
        """Rows the source's ERP tables returned so far (sequential and index reads), by the
        server's own statistics: each sync's sessions end before this is read, and an ending
        session flushes its counts."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            conn.execute("select pg_stat_clear_snapshot()")
            row = conn.execute(
                "select coalesce(sum(seq_tup_read + coalesce(idx_tup_fetch, 0)), 0) "
                "from pg_stat_user_tables where relname = any(%s)",
                [list(SOURCE_TABLES)]).fetchone()
        return int(row[0])

    def slot(self) -> tuple[str, str] | None:
        """(confirmed_flush_lsn, wal_status) of the test slot, None without one."""
        with psycopg.connect(self.conninfo, autocommit=True) as conn:
            row = conn.execute("select confirmed_flush_lsn::text, wal_status from "
                               "pg_replication_slots where slot_name = %s", [SLOT]).fetchone()
        return None if row is None else (row[0], row[1])


@pytest.fixture
def cdc_source(logical_pg: LogicalCluster) -> Iterator[CdcSource]:
    """A fresh ERP database on the logical cluster (its slot and publication die with it)."""
    with logical_pg.scratch_database("crm_cdc") as db:
        source = CdcSource(logical_pg, db)
        write_source(source.url)
        source.execute(
            "insert into contacts (id, contact_id, contact_type, business_id, credit_limit) "
            f"select g, 'C-' || g, 'Customers', 1, g * 1.5 from generate_series(100, "
            f"{99 + EXTRA_CONTACTS}) g",
            "analyze")
        yield source


def cdc_sync(source: CdcSource, warehouse_url: str) -> SyncReport:
    """One CDC sync in this process."""
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        return sync_cdc(source.url, "public", wh, SLOT, 60_000)
    finally:
        wh.close()


def assert_raw_equals(source: CdcSource, warehouse_url: str) -> None:
    for table in SOURCE_TABLES:
        assert raw_digest(warehouse_url, table) == conninfo_digest(source.conninfo, table), \
            table


def wait_for_stats(source: CdcSource, before: int, seconds: float = 3.0) -> int:
    """The handed-out count once it has moved past `before` (statistics of an ended session
    arrive a moment later), or as it stands after `seconds`."""
    deadline = time.monotonic() + seconds
    while True:
        now = source.rows_handed_out()
        if now != before or time.monotonic() > deadline:
            return now
        time.sleep(0.1)
