"""The ERP sync: every table lands in `raw` row for row, extra columns come along, optional
tables land empty when absent, and a failed sync leaves `raw` exactly as it was."""

import datetime as dt
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from crm_core.errors import CrmError
from crm_core.urls import parse_warehouse_url
from ingestion.erp.schema import SOURCE_TABLES, build_metadata
from ingestion.erp.sync import sync_erp
from ingestion.warehouse import open_warehouse
from tests.helpers.postgres import pg_url
from tests.helpers.sync import ROWS, write_source

UTC = dt.UTC


def _raw_rows(wh_url: str, table: str) -> list[tuple]:
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        return wh.fetchall(f'select * from raw."{table}" order by 1')
    finally:
        wh.close()


def _expected(table: str) -> list[tuple]:
    columns = [c.name for c in build_metadata().tables[table].columns]
    if table == "contacts":
        columns.append("loyalty_tier")
    return sorted(tuple(row.get(c) for c in columns) for row in ROWS[table])


def _sync(source_url: str, wh_url: str, schema: str = "public") -> dict[str, int]:
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        return sync_erp(source_url, schema, wh).rows
    finally:
        wh.close()


def test_sqlite_to_duckdb_lands_every_table_row_for_row(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/erp.sqlite"
    write_source(src)
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    rows = _sync(src, wh)
    assert rows == {name: len(ROWS[name]) for name in SOURCE_TABLES}
    for name in SOURCE_TABLES:
        assert _raw_rows(wh, name) == _expected(name), name


def test_optional_tables_land_empty_when_the_source_lacks_them(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/erp.sqlite"
    write_source(src, skip=("businesses", "branches", "auth_users"))
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    rows = _sync(src, wh)
    assert rows["businesses"] == 0 and rows["branches"] == 0 and rows["auth_users"] == 0
    con = duckdb.connect(f"{tmp_path}/wh.duckdb", read_only=True)
    cols = [r[0] for r in con.execute("describe raw.branches").fetchall()]
    assert cols == ["id", "business_id", "name"]


def test_missing_required_table_is_one_line_and_writes_nothing(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/erp.sqlite"
    write_source(src, skip=("crm_deals",))
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    with pytest.raises(CrmError, match=r"missing required table\(s\): crm_deals$"):
        _sync(src, wh)
    con = duckdb.connect(f"{tmp_path}/wh.duckdb", read_only=True)
    assert con.execute("select count(*) from information_schema.tables "
                       "where table_schema = 'raw'").fetchone() == (0,)


def test_failed_sync_leaves_raw_exactly_as_it_was(tmp_path: Path) -> None:
    src = f"sqlite:///{tmp_path}/erp.sqlite"
    write_source(src)
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    _sync(src, wh)
    before = {name: _raw_rows(wh, name) for name in SOURCE_TABLES}
    # Break the LAST table read (campaign performance) after earlier tables changed.
    engine = sa.create_engine(src)
    with engine.begin() as conn:
        conn.execute(sa.text("update contacts set contact_type = 'changed'"))
        conn.execute(sa.text("update crm_campaign_performance set revenue = 'not a number'"))
    engine.dispose()
    with pytest.raises(CrmError, match="crm_campaign_performance"):
        _sync(src, wh)
    assert {name: _raw_rows(wh, name) for name in SOURCE_TABLES} == before


def test_the_sync_never_writes_to_a_sqlite_source(tmp_path: Path) -> None:
    src_path = tmp_path / "erp.sqlite"
    write_source(f"sqlite:///{src_path}")
    before = src_path.read_bytes()
    _sync(f"sqlite:///{src_path}", f"duckdb:///{tmp_path}/wh.duckdb")
    assert src_path.read_bytes() == before


@pytest.mark.postgres
def test_postgres_source_into_postgres_and_duckdb_warehouses(make_pg_database) -> None:
    source_db, wh_db = make_pg_database("crm_src"), make_pg_database("crm_wh")
    src = pg_url(source_db)
    write_source(src, schema="erp")
    for wh in (pg_url(wh_db, driver="postgresql"), None):
        wh = wh or f"duckdb:////tmp/{wh_db}.duckdb"
        try:
            rows = _sync(src, wh, schema="erp")
            assert rows == {name: len(ROWS[name]) for name in SOURCE_TABLES}
            for name in SOURCE_TABLES:
                assert _raw_rows(wh, name) == _expected(name), (wh, name)
        finally:
            Path(f"/tmp/{wh_db}.duckdb").unlink(missing_ok=True)


@pytest.mark.postgres
def test_postgres_source_is_read_only_and_named(make_pg_database) -> None:
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    from ingestion.erp.source import APPLICATION_NAME, ErpSource

    source = ErpSource(pg_url(source_db), "public")
    with source.snapshot() as conn:
        assert conn.exec_driver_sql("show transaction_read_only").scalar() == "on"
        assert conn.exec_driver_sql("show application_name").scalar() == APPLICATION_NAME
        assert conn.exec_driver_sql("show statement_timeout").scalar() != "0"
        with pytest.raises(sa.exc.InternalError):
            conn.exec_driver_sql("delete from crm_deals")


@pytest.mark.postgres
def test_required_tables_are_checked_in_the_configured_schema(make_pg_database) -> None:
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db), schema="erp")
    wh_path = Path(f"/tmp/{source_db}.duckdb")
    try:
        with pytest.raises(CrmError, match="schema 'public'.*missing required table"):
            _sync(pg_url(source_db), f"duckdb:///{wh_path}", schema="public")
        con = duckdb.connect(str(wh_path), read_only=True)
        assert con.execute("select count(*) from information_schema.tables "
                           "where table_schema = 'raw'").fetchone() == (0,)
        con.close()
        assert len(_sync(pg_url(source_db), f"duckdb:///{wh_path}", schema="erp")) == len(
            SOURCE_TABLES)
    finally:
        wh_path.unlink(missing_ok=True)


@pytest.mark.postgres
def test_postgres_into_duckdb_takes_the_wire_speed_path(make_pg_database, tmp_path: Path) -> None:
    """PostgreSQL → DuckDB goes through DuckDB's postgres extension, which keeps PostgreSQL's
    own column types (int4 stays INTEGER; the generic Arrow path widens every integer to
    BIGINT), and still lands every row."""
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    assert _sync(pg_url(source_db), wh)["crm_deals"] == len(ROWS["crm_deals"])
    con = duckdb.connect(f"{tmp_path}/wh.duckdb", read_only=True)
    types = dict(con.execute("select column_name, data_type from information_schema.columns "
                             "where table_schema = 'raw' and table_name = 'crm_deals'").fetchall())
    con.close()
    assert types["id"] == "INTEGER" and types["amount"] == "DECIMAL(15,2)"
    assert _raw_rows(wh, "crm_deals") == _expected("crm_deals")


@pytest.mark.postgres
def test_the_syncs_duckdb_settings_end_with_it(make_pg_database, tmp_path: Path) -> None:
    """The sync lands `raw` under its own DuckDB settings (no FSST, a memory cap) and restores
    them: the event files loaded next on the same connection get DuckDB's defaults."""
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    wh = open_warehouse(parse_warehouse_url(f"duckdb:///{tmp_path}/wh.duckdb", Path(".")))
    settings = ("select current_setting('memory_limit'), "
                "current_setting('disabled_compression_methods')")
    try:
        before = wh.fetchall(settings)
        sync_erp(pg_url(source_db), "public", wh)
        after = wh.fetchall(settings)
    finally:
        wh.close()
    assert before == after and before[0][1] == ""


@pytest.mark.postgres
def test_postgres_into_postgres_pipes_binary_copy(make_pg_database) -> None:
    """PostgreSQL → PostgreSQL pipes binary COPY, so the warehouse columns carry the source's
    own types (the generic Arrow path would widen int4 to bigint), and every row lands."""
    import psycopg

    source_db, wh_db = make_pg_database("crm_src"), make_pg_database("crm_wh")
    write_source(pg_url(source_db), schema="erp")
    wh = pg_url(wh_db, driver="postgresql")
    rows = _sync(pg_url(source_db), wh, schema="erp")
    assert rows["crm_deals"] == len(ROWS["crm_deals"])
    with psycopg.connect(wh) as conn:
        types = dict(conn.execute(
            "select column_name, data_type from information_schema.columns "
            "where table_schema = 'raw' and table_name = 'crm_deals'").fetchall())
    assert types["id"] == "integer" and types["amount"] == "numeric"
    assert _raw_rows(wh, "crm_deals") == _expected("crm_deals")
    # A second sync replaces the rows (same shape: truncated in place, views survive).
    assert _sync(pg_url(source_db), wh, schema="erp") == rows
    assert _raw_rows(wh, "contacts") == _expected("contacts")
