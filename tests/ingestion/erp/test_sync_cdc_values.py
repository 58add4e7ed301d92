"""The CDC sync applies the decoded `pgoutput` values themselves: every declared type comes
back equal to what was written on the source (numeric, timestamps with a time zone, dates,
booleans, NULL next to the empty string, text with quotes, newlines, backslashes and
non-ASCII), an update that moves a key deletes the old one, and a row whose last change left
an unchanged TOASTed value out is the only one read back from the ERP."""

from __future__ import annotations

import datetime as dt
import random
import string
from decimal import Decimal
from pathlib import Path

import psycopg
import pytest

from crm_core.urls import parse_warehouse_url
from ingestion.warehouse import open_warehouse
from tests.helpers.cdc import CdcSource, assert_raw_equals, cdc_sync

pytestmark = pytest.mark.postgres

ODD_TEXTS = [
    "it's \"quoted\", with a comma",
    "two\nlines\r\nand a\ttab",
    "back\\slash \\N \\. and a lone\n\\.\n",
    "Zürich — 東京 🚀",
    "",
    None,
]
UTC = dt.UTC


def _campaign(i: int, text: str | None) -> dict[str, object]:
    """A campaign whose values exercise every declared type; `i` varies them."""
    offset = dt.timezone(dt.timedelta(hours=5, minutes=45))
    return {
        "id": 500 + i, "name": f"C{i}", "description": text, "title": text,
        "is_active": [True, False, None][i % 3], "is_default": i % 2 == 0,
        "start_date": dt.datetime(2026, 3, 29, 1, 30, 0, 123456 * (i % 2), tzinfo=offset),
        "end_date": None if i % 3 == 0 else dt.datetime(1999, 12, 31, 23, 59, 59, tzinfo=UTC),
        "budget": Decimal("-0.01") if i % 2 else Decimal("1234567890123.45"),
        "revenue_generated": Decimal(f"{i}.10"), "impressions": -i, "clicks": 2**31 - 1 - i,
    }


def _insert(conn: psycopg.Connection, row: dict[str, object]) -> None:
    cols = ", ".join(row)
    conn.execute(f"insert into crm_campaigns ({cols}) values ({', '.join(['%s'] * len(row))})",
                 list(row.values()))


def _raw_campaigns(warehouse_url: str) -> dict[int, tuple]:
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        rows = wh.fetchall("select id, description, title, is_active, is_default, start_date, "
                           "end_date, budget, revenue_generated, impressions, clicks "
                           "from raw.crm_campaigns where id >= 500")
    finally:
        wh.close()
    return {r[0]: tuple(r[1:]) for r in rows}


def _expected(row: dict[str, object]) -> tuple:
    return tuple(row[c] for c in ("description", "title", "is_active", "is_default",
                                  "start_date", "end_date", "budget", "revenue_generated",
                                  "impressions", "clicks"))


def _same(raw: tuple, expected: tuple) -> bool:
    """Equal, timestamps compared as instants (each warehouse returns its own zone)."""
    return len(raw) == len(expected) and all(
        (a == b) if not isinstance(b, dt.datetime) else (
            isinstance(a, dt.datetime) and a.astimezone(UTC) == b.astimezone(UTC))
        for a, b in zip(raw, expected, strict=True))


def test_cdc_decoded_values_round_trip_every_type(cdc_source: CdcSource,
                                                  warehouse_url: str) -> None:
    cdc_sync(cdc_source, warehouse_url)
    rows = {500 + i: _campaign(i, text) for i, text in enumerate(ODD_TEXTS)}
    with psycopg.connect(cdc_source.conninfo, autocommit=True) as conn:
        for row in rows.values():
            _insert(conn, row)
        # Updated twice in separate transactions: the last value wins.
        conn.execute("update crm_campaigns set title = 'first' where id = 501")
        conn.execute("update crm_campaigns set title = %s, budget = 7 where id = 501",
                     [ODD_TEXTS[1]])
        # A key moved: the old id must leave the warehouse.
        conn.execute("update crm_campaigns set id = 599 where id = 505")
        # Inserted, deleted and inserted again within the sync.
        conn.execute("delete from crm_campaigns where id = 502")
        _insert(conn, {**rows[502], "title": "back"})
    rows[501] = {**rows[501], "title": ODD_TEXTS[1], "budget": Decimal("7.00")}
    rows[502] = {**rows[502], "title": "back"}
    rows[599] = {**rows.pop(505), "id": 599}

    report = cdc_sync(cdc_source, warehouse_url)
    assert report.load_kind["crm_campaigns"] == "cdc"
    assert sum(report.rows_read.values()) == 0  # applied from the stream alone
    raw = _raw_campaigns(warehouse_url)
    assert sorted(raw) == sorted(rows)
    for key, row in rows.items():
        assert _same(raw[key], _expected(row)), (key, raw[key], _expected(row))
    assert_raw_equals(cdc_source, warehouse_url)


def test_cdc_unchanged_toasted_value_is_read_back(cdc_source: CdcSource,
                                                  warehouse_url: str) -> None:
    """PostgreSQL does not send a TOASTed value an update left alone ('u' in `pgoutput`): that
    row, and only it, is read again from the ERP."""
    # Random letters barely compress: stored out of line (TOASTed), far above 2 kB.
    big = "".join(random.Random(7).choices(string.ascii_letters + "\n'\"\\", k=200_000))
    cdc_sync(cdc_source, warehouse_url)
    with psycopg.connect(cdc_source.conninfo, autocommit=True) as conn:
        conn.execute("update crm_campaigns set description = %s where id = 1", [big])
        toasted = conn.execute("select pg_column_size(description) < octet_length(description) "
                               "or pg_column_size(description) > 2000 from crm_campaigns "
                               "where id = 1").fetchone()[0]
        assert toasted
    report = cdc_sync(cdc_source, warehouse_url)
    assert report.rows_read["crm_campaigns"] == 0  # the new value came in the stream
    assert _description(warehouse_url) == big

    with psycopg.connect(cdc_source.conninfo, autocommit=True) as conn:
        conn.execute("update crm_campaigns set clicks = 42 where id = 1")  # description: 'u'
        _insert(conn, _campaign(0, "small"))
    report = cdc_sync(cdc_source, warehouse_url)
    assert report.rows_read["crm_campaigns"] == 1
    assert report.changes_applied["crm_campaigns"] == 1  # the insert
    assert _description(warehouse_url) == big
    assert_raw_equals(cdc_source, warehouse_url)


def _description(warehouse_url: str) -> str:
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        return wh.fetchall("select description from raw.crm_campaigns where id = 1")[0][0]
    finally:
        wh.close()


def test_cdc_more_changes_than_kept_are_read_back_by_key(
        cdc_source: CdcSource, warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Past `MAX_ROWS_PER_TABLE` decoded rows a table keeps only its keys: its rows are read
    back from the ERP by key, the other tables still apply their decoded rows."""
    from ingestion.erp import pgoutput

    cdc_sync(cdc_source, warehouse_url)
    monkeypatch.setattr(pgoutput, "MAX_ROWS_PER_TABLE", 3)
    cdc_source.execute(
        "update contacts set credit_limit = credit_limit + 1 where id between 100 and 104",
        "delete from contacts where id = 105",
        "update crm_leads set status = 'Won' where id = 1")
    report = cdc_sync(cdc_source, warehouse_url)
    assert report.rows_read["contacts"] == 5  # 5 updated rows read back; the deleted one not
    assert report.changes_applied.get("contacts", 0) == 0
    assert report.rows_read["crm_leads"] == 0 and report.changes_applied["crm_leads"] == 1
    assert_raw_equals(cdc_source, warehouse_url)


def test_cdc_peek_in_small_batches_applies_the_same_changes(
        cdc_source: CdcSource, warehouse_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Fetched three messages at a time, transactions span many batches and the decoder runs
    behind the fetch: the changes still apply in commit order, the last change of a key
    winning (an update after an update, a delete after an insert, a re-insert)."""
    from ingestion.erp import cdc_slot

    cdc_sync(cdc_source, warehouse_url)
    monkeypatch.setattr(cdc_slot, "PEEK_BATCH", 3)
    cdc_source.execute(
        "begin; update contacts set credit_limit = credit_limit + 1 where id between 100 and "
        "140; update contacts set credit_limit = credit_limit * 2 where id between 120 and "
        "160; commit",
        "insert into crm_deals (id, title, contact_id, amount) values (9001, 'x', 1, 1)",
        "delete from crm_deals where id = 9001",
        "insert into crm_deals (id, title, contact_id, amount) values (9001, 'y', 1, 2)",
        "delete from contacts where id = 150")
    report = cdc_sync(cdc_source, warehouse_url)
    assert sum(report.rows_read.values()) == 0
    # 61 contacts updated (100..160), one of them deleted afterwards; the deal's last insert.
    assert report.changes_applied["contacts"] == 60
    assert report.changes_applied["crm_deals"] == 1
    assert_raw_equals(cdc_source, warehouse_url)
