"""Incremental sync against a real PostgreSQL source, into both warehouses: inserts, updates and
hard deletes between syncs, a tie on the cursor, a transaction that commits after a
later-stamped one, an added and a dropped column, an emptied table. After every scenario `raw`
must equal the source row for row, compared through digests computed here in Python."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from crm_core.errors import CrmError
from crm_core.urls import parse_warehouse_url
from ingestion.erp.schema import SOURCE_TABLES
from ingestion.erp.sync import SyncReport
from ingestion.warehouse import open_warehouse
from tests.helpers.sync import (
    all_raw,
    assert_raw_equals_source,
    raw_digest,
    source_digest,
    source_exec,
    source_url,
    sync,
    write_source,
)

pytestmark = pytest.mark.postgres

UTC = dt.UTC


@pytest.fixture
def source_db(private_pg_database: str) -> str:
    write_source(source_url(private_pg_database, "postgresql+psycopg"))
    source_exec(private_pg_database, "update crm_deals set updated_at = created_at")
    return private_pg_database


def test_inserts_updates_and_deletes_between_syncs(source_db: str, warehouse_url: str) -> None:
    first = sync(source_db, warehouse_url)
    assert set(first.load_kind.values()) == {"full"}
    assert_raw_equals_source(source_db, warehouse_url)

    source_exec(
        source_db,
        "insert into crm_leads (id, contact_id, source, status, value, created_at, updated_at) "
        "values (2, 1, 'Referral', 'new', 5.00, now(), now()), "
        "(3, 2, 'Web', 'new', 7.00, now(), now())",
        "update crm_deals set amount = 11.00, updated_at = now() where id = 1",
        "insert into crm_deals (id, title, amount, created_at, updated_at) "
        "values (2, 'Second', 3.00, now(), now()), (3, 'Third', 4.00, now(), now())",
        "update contacts set phone = '+1 555 0199' where id = 1",  # no updated_at: xmin
    )
    second = sync(source_db, warehouse_url)
    assert second.load_kind["crm_leads"] == "incremental"
    assert second.load_kind["crm_deals"] == "incremental"
    assert second.load_kind["contacts"] == "incremental"
    assert second.rows_read["contacts"] == 1  # only the row the update wrote
    # Only the delta is read: the 2 new leads plus the old one, whose stamp IS the cursor
    # (re-read on purpose); the updated deal and the 2 new deals.
    assert second.rows_read["crm_leads"] == 3 and second.rows_read["crm_deals"] == 3
    assert second.rows["crm_leads"] == 3 and second.rows["crm_deals"] == 3
    assert_raw_equals_source(source_db, warehouse_url)

    # Hard deletes leave no change stamp behind: the key comparison catches them.
    source_exec(source_db, "delete from crm_leads where id = 1",
                "delete from crm_deals where id in (2, 3)", "delete from contacts where id = 2")
    third = sync(source_db, warehouse_url)
    assert third.load_kind["crm_deals"] == "incremental"
    assert third.rows["crm_leads"] == 2 and third.rows["crm_deals"] == 1
    assert_raw_equals_source(source_db, warehouse_url)


def test_a_row_tying_the_cursor_is_not_lost(source_db: str, warehouse_url: str) -> None:
    stamp = "2026-05-01 12:00:00+00"
    source_exec(source_db, f"update crm_leads set updated_at = '{stamp}'")
    sync(source_db, warehouse_url, overlap=dt.timedelta(0))
    # Written after the sync with exactly the cursor's value: `>=`, not `>`, keeps it.
    source_exec(source_db, "insert into crm_leads (id, contact_id, status, created_at, "
                           f"updated_at) values (9, 1, 'new', now(), '{stamp}')")
    report = sync(source_db, warehouse_url, overlap=dt.timedelta(0))
    assert report.load_kind["crm_leads"] == "incremental"
    assert report.rows["crm_leads"] == 2
    assert_raw_equals_source(source_db, warehouse_url)


def _late_commit(source_db: str, wh_url: str, overlap: dt.timedelta) -> SyncReport:
    """Transaction A stamps a lead (an update of lead 1: an insert would also be found by the
    key-range fingerprints) first but commits after B stamped and committed a later one, and
    after a sync that saw B: A's stamp is older than that sync's cursor."""
    dsn = source_url(source_db)
    with psycopg.connect(dsn) as a, psycopg.connect(dsn, autocommit=True) as b:
        a.execute("update crm_leads set value = 99.00, updated_at = clock_timestamp() "
                  "where id = 1")
        b.execute("insert into crm_leads (id, contact_id, status, created_at, updated_at) "
                  "values (21, 1, 'new', now(), clock_timestamp())")
        sync(source_db, wh_url, overlap=overlap)
        a.commit()
        stamps = dict(b.execute("select id, updated_at from crm_leads where id in (1, 21)")
                      .fetchall())
    assert stamps[1] < stamps[21]
    return sync(source_db, wh_url, overlap=overlap)


def test_the_overlap_window_catches_a_late_commit(source_db: str, warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    report = _late_commit(source_db, warehouse_url, overlap=dt.timedelta(minutes=10))
    assert report.load_kind["crm_leads"] == "incremental"
    assert_raw_equals_source(source_db, warehouse_url)


def test_without_overlap_the_late_commit_would_be_missed(source_db: str, tmp_path) -> None:
    """The control for the test above: it is the window that saves the late row."""
    wh_url = f"duckdb:///{tmp_path}/wh.duckdb"
    sync(source_db, wh_url, overlap=dt.timedelta(0))
    _late_commit(source_db, wh_url, overlap=dt.timedelta(0))
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        value = wh.fetchall('select value from raw."crm_leads" where id = 1')[0][0]
    finally:
        wh.close()
    assert value != Decimal("99.00")  # the late update is missing
    assert raw_digest(wh_url, "crm_leads")[1] == source_digest(source_db, "crm_leads")[1]


def test_an_added_column_reloads_the_table_in_full(source_db: str, warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    source_exec(source_db, "alter table crm_deals add column probability integer",
                "update crm_deals set probability = 40")  # updated_at unchanged
    report = sync(source_db, warehouse_url)
    assert report.load_kind["crm_deals"] == "full"
    assert "probability" in raw_digest(warehouse_url, "crm_deals")[0]
    assert_raw_equals_source(source_db, warehouse_url)
    # With the new shape recorded, the next sync is incremental again.
    assert sync(source_db, warehouse_url).load_kind["crm_deals"] == "incremental"


def test_a_dropped_staging_column_stops_the_sync_before_writing(source_db: str,
                                                                warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    source_exec(source_db, "update contacts set phone = 'changed'",
                "alter table crm_leads drop column source")
    before = all_raw(warehouse_url)
    with pytest.raises(CrmError) as info:
        sync(source_db, warehouse_url)
    message = str(info.value)
    assert "\n" not in message
    assert "crm_leads" in message and "column(s) source " in message
    assert all_raw(warehouse_url) == before


def test_a_column_staging_does_not_read_may_go(source_db: str, warehouse_url: str) -> None:
    source_exec(source_db, "alter table contacts add column loyalty_points integer")
    sync(source_db, warehouse_url)
    source_exec(source_db, "alter table contacts drop column loyalty_points")
    sync(source_db, warehouse_url)
    assert_raw_equals_source(source_db, warehouse_url)


def test_emptied_and_refilled_tables(source_db: str, warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    source_exec(source_db, "delete from crm_campaigns", "delete from crm_deals")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["crm_deals"] == "incremental"
    assert report.rows["crm_campaigns"] == 0 and report.rows["crm_deals"] == 0
    assert_raw_equals_source(source_db, warehouse_url)
    # An empty table leaves no cursor: the next sync loads it in full.
    source_exec(source_db, "insert into crm_campaigns (id, name, created_at, updated_at) "
                           "values (5, 'Autumn', now(), now())")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["crm_campaigns"] == "full" and report.rows["crm_campaigns"] == 1
    assert_raw_equals_source(source_db, warehouse_url)


def test_sync_state_sits_beside_the_data(source_db: str, warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        state = dict(wh.fetchall("select table_name, cursor_at from raw._sync_state"))
        stage = wh.fetchall("select count(*) from information_schema.tables "
                            "where table_name like 'crm_stage_%'")[0][0]
    finally:
        wh.close()
    assert set(state) == set(SOURCE_TABLES)
    assert state["crm_leads"] == dt.datetime(2026, 2, 1, 4, 0, tzinfo=UTC)
    assert state["crm_campaign_performance"] is None  # no updated_at: always full
    assert stage == 0  # staged keys and deltas are temporary and dropped
