"""The sync's cheap incremental checks against a real PostgreSQL source, into both warehouses:
hard deletes and drift found by key-range fingerprints (only differing ranges of 4,096 ids are
copied again), and the `xmin` change cursor of the tables without `updated_at` (contacts,
contact_accounts). After every scenario `raw` equals the source row for row (digests computed in
Python, `tests/ingestion/erp/test_sync_incremental.py`), and the rows read show that only the
ranges and the changed rows crossed the wire."""

from __future__ import annotations

from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from crm_core.urls import parse_warehouse_url
from ingestion.erp.sync import SyncReport, sync_erp
from ingestion.warehouse import open_warehouse
from tests.helpers.sync import (
    assert_raw_equals_source,
    raw_digest,
    source_digest,
    source_exec,
    source_url,
    sync,
    write_source,
)

pytestmark = pytest.mark.postgres

BUCKET = 4096
#: A stamp far behind every cursor: rows written with it are invisible to the `updated_at`
#: delta, so only the fingerprints can bring them (or take them away).
OLD = "2020-01-01 00:00:00+00"
DEALS = 10_000  # ids 1..10,000: buckets 0, 1 and 2
CONTACTS = 9_000


@pytest.fixture
def source_db(private_pg_database: str) -> str:
    """The small ERP of `tests/ingestion/erp/test_sync.py` plus 10,000 old deals, 9,000
    contacts and as many contact accounts, spread over several buckets."""
    write_source(source_url(private_pg_database, "postgresql+psycopg"))
    source_exec(
        private_pg_database,
        "update crm_deals set updated_at = created_at",
        "insert into crm_deals (id, title, amount, created_at, updated_at) "
        f"select g, 'Deal ' || g, g % 97, timestamptz '{OLD}', timestamptz '{OLD}' "
        f"from generate_series(2, {DEALS}) g",
        "insert into contacts (id, contact_id, contact_type, business_id, phone) "
        f"select g, 'C-' || g, 'Customers', 1, '+1 555 ' || g "
        f"from generate_series(3, {CONTACTS}) g",
        "insert into contact_accounts (id, contact_id, account_balance) "
        f"select g, g, g % 1000 from generate_series(2, {CONTACTS}) g",
    )
    return private_pg_database


def test_deletes_and_inserts_are_found_by_key_range(source_db: str, warehouse_url: str) -> None:
    assert set(sync(source_db, warehouse_url).load_kind.values()) == {"full"}

    # A delete in the middle of a bucket: that bucket (and nothing else) is copied again.
    source_exec(source_db, "delete from crm_deals where id = 5000")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["crm_deals"] == "incremental"
    assert report.rows["crm_deals"] == DEALS - 1
    assert report.rows_read["crm_deals"] <= 1 + (BUCKET - 1)  # the cursor's row + the bucket
    assert_raw_equals_source(source_db, warehouse_url)

    # A whole bucket deleted: the source has no fingerprint for it any more.
    source_exec(source_db, f"delete from crm_deals where id >= {BUCKET} and id < {2 * BUCKET}")
    report = sync(source_db, warehouse_url)
    assert report.rows["crm_deals"] == DEALS - BUCKET  # id 5000 was in it already
    assert report.rows_read["crm_deals"] == 1  # an empty range reads nothing
    assert_raw_equals_source(source_db, warehouse_url)

    # A row in a new bucket, stamped far behind the cursor: only the fingerprints see it.
    source_exec(source_db, "insert into crm_deals (id, title, amount, created_at, updated_at) "
                           f"values (70000, 'Far', 1, '{OLD}', '{OLD}')")
    report = sync(source_db, warehouse_url)
    assert report.rows_read["crm_deals"] == 2
    assert_raw_equals_source(source_db, warehouse_url)

    # Rows that vanish and appear in the same bucket, same count, no new stamp.
    source_exec(source_db, "delete from crm_deals where id in (9000, 9001)",
                "insert into crm_deals (id, title, amount, created_at, updated_at) "
                f"values (12000, 'Swap A', 2, '{OLD}', '{OLD}'), "
                f"(12001, 'Swap B', 3, '{OLD}', '{OLD}')")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["crm_deals"] == "incremental"
    assert 1 < report.rows_read["crm_deals"] <= 1 + BUCKET
    assert_raw_equals_source(source_db, warehouse_url)

    # Nothing changed: only the cursor's own row is read again.
    report = sync(source_db, warehouse_url)
    assert report.rows_read["crm_deals"] == 1 and report.rows_read["contacts"] == 0


def test_contacts_changed_without_a_timestamp_arrive(source_db: str,
                                                      warehouse_url: str) -> None:
    sync(source_db, warehouse_url)
    source_exec(
        source_db,
        "update contacts set phone = '+1 555 7777' where id = 20",  # no timestamp anywhere
        "update contact_accounts set account_balance = 4242.42 where id = 1",
        # gone and come in the same bucket, same count: the new rows carry a new xmin, the
        # fingerprints catch the vanished ones
        "delete from contacts where id in (4500, 4600)",
        "insert into contacts (id, contact_id, contact_type, business_id) "
        f"values ({CONTACTS + 1}, 'C-new-1', 'Customers', 1), "
        f"({CONTACTS + 2}, 'C-new-2', 'Customers', 1)",
    )
    report = sync(source_db, warehouse_url)
    assert report.load_kind["contacts"] == "incremental"
    assert report.load_kind["contact_accounts"] == "incremental"
    assert report.rows_read["contact_accounts"] == 1
    # The update and the two inserts, then bucket 1 again for the deletes.
    assert 3 < report.rows_read["contacts"] <= 3 + BUCKET
    assert report.rows["contacts"] == CONTACTS
    assert_raw_equals_source(source_db, warehouse_url)


def test_a_transaction_committing_after_a_sync_arrives_at_the_next(source_db: str,
                                                                   warehouse_url: str) -> None:
    """The xmin analogue of the late commit: a transaction that wrote before a sync's snapshot
    and committed after it is newer than the xmin that sync records."""
    sync(source_db, warehouse_url)
    with psycopg.connect(source_url(source_db)) as late:
        late.execute("update contacts set phone = 'late' where id = 30")
        first = sync(source_db, warehouse_url)
        late.commit()
    assert first.load_kind["contacts"] == "incremental"
    second = sync(source_db, warehouse_url)
    assert second.load_kind["contacts"] == "incremental"
    assert second.rows_read["contacts"] >= 1
    assert_raw_equals_source(source_db, warehouse_url)


def test_frozen_rows_keep_their_xmin_and_a_rewrite_reloads(source_db: str,
                                                           warehouse_url: str) -> None:
    """VACUUM FREEZE right after a change does not hide it (a frozen row keeps its raw xmin,
    checked here on the page itself); VACUUM FULL rewrites the table: reloaded in full."""
    sync(source_db, warehouse_url)
    source_exec(source_db, "update contacts set phone = 'frozen' where id = 40",
                "vacuum freeze contacts", "create extension if not exists pageinspect")
    with psycopg.connect(source_url(source_db)) as conn:
        frozen = conn.execute(
            "select bool_and(t_infomask & 768 = 768) from generate_series(0, "
            "(pg_relation_size('contacts') / current_setting('block_size')::int)::int - 1) b, "
            "heap_page_items(get_raw_page('contacts', b)) where t_xmin is not null").fetchone()
    assert frozen == (True,)  # every row version is frozen (HEAP_XMIN_FROZEN)
    report = sync(source_db, warehouse_url)
    assert report.load_kind["contacts"] == "incremental"
    assert 1 <= report.rows_read["contacts"] < CONTACTS
    assert_raw_equals_source(source_db, warehouse_url)

    source_exec(source_db, "update contacts set phone = 'rewritten' where id = 41",
                "vacuum full contacts")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["contacts"] == "full"
    assert report.load_kind["contact_accounts"] == "incremental"
    assert_raw_equals_source(source_db, warehouse_url)


def test_a_saved_xmin_ahead_of_the_source_reloads_in_full(source_db: str,
                                                          warehouse_url: str) -> None:
    """A state newer than the source (restored from a backup, or replaced) cannot be trusted."""
    sync(source_db, warehouse_url)
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        with wh.transaction():
            wh.execute("update raw._sync_state set source_xmin = source_xmin + 1000000000 "
                       "where table_name = 'contacts'")
    finally:
        wh.close()
    source_exec(source_db, "update contacts set phone = 'restored' where id = 50")
    report = sync(source_db, warehouse_url)
    assert report.load_kind["contacts"] == "full"
    assert report.load_kind["contact_accounts"] == "incremental"
    assert_raw_equals_source(source_db, warehouse_url)


def test_generic_path_finds_deletes_by_key_range(tmp_path: Path) -> None:
    """SQLite source (the generic path): deletes and an old-stamped insert by fingerprints;
    contacts, without `updated_at` and without xmin there, reload in full."""
    src = f"sqlite:///{tmp_path}/erp.sqlite"
    write_source(src)
    engine = sa.create_engine(src)
    old = "2020-01-01 00:00:00.000000"  # how SQLAlchemy stores a datetime in SQLite
    with engine.begin() as conn:
        conn.execute(sa.text("update crm_deals set updated_at = created_at"))
        conn.execute(sa.text(
            "insert into crm_deals (id, title, amount, created_at, updated_at) "
            "with recursive g(n) as (select 2 union all select n + 1 from g where n < 10000) "
            "select n, 'Deal ' || n, n % 97, :old, :old from g"), {"old": old})
    wh_url = f"duckdb:///{tmp_path}/wh.duckdb"

    def run() -> SyncReport:
        wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
        try:
            return sync_erp(src, "public", wh)
        finally:
            wh.close()

    run()
    with engine.begin() as conn:
        conn.execute(sa.text("delete from crm_deals where id in (5000, 9000)"))
        conn.execute(sa.text("insert into crm_deals (id, title, amount, created_at, "
                             "updated_at) values (70000, 'Far', 1, :old, :old)"), {"old": old})
        expected = sorted(conn.execute(sa.text("select id, title from crm_deals")).all())
    engine.dispose()
    report = run()
    assert report.load_kind["crm_deals"] == "incremental"
    assert report.load_kind["contacts"] == "full"
    # The cursor's row, two buckets and the new one: not the 10,000 rows.
    assert report.rows_read["crm_deals"] <= 1 + 2 * BUCKET
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        assert sorted(wh.fetchall('select id, title from raw."crm_deals"')) == expected
    finally:
        wh.close()


def test_digest_helpers_see_a_difference(source_db: str, tmp_path: Path) -> None:
    """The control: a raw table missing one row does not pass the digest comparison."""
    wh_url = f"duckdb:///{tmp_path}/wh.duckdb"
    sync(source_db, wh_url)
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        wh.execute('delete from raw."crm_deals" where id = 77')
    finally:
        wh.close()
    assert raw_digest(wh_url, "crm_deals") != source_digest(source_db, "crm_deals")
