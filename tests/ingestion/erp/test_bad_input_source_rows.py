"""Property-based bad input for the ERP sync (RELIABILITY.md): whatever rows the ERP tables
hold — NULL anywhere the ERD allows it, extreme numbers, the largest DECIMAL(15,2), unicode and
right-to-left text, timestamps with any offset — a sync never crashes and `raw` equals the
source row for row, column for column. Then the same rows are changed and some deleted, and the
incremental sync must converge to the source again.

Rows come from strategies derived from the ERD's column types (`ingestion/erp/schema.py`) and are
written to a real source (SQLite for the fast case; PostgreSQL through its own sync paths). The
expected `raw` content is the generated Python rows, not anything read back through the
pipeline.
"""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_core.urls import parse_warehouse_url
from ingestion.erp.schema import SOURCE_TABLES, build_metadata
from ingestion.erp.sync import sync_erp
from ingestion.warehouse import open_warehouse
from tests.helpers.postgres import pg_url

#: The tables whose rows are generated (the rest exist, empty): every column type the ERD uses.
GENERATED = ("contacts", "contact_accounts", "crm_leads", "crm_pipeline_stages", "crm_deals",
             "crm_campaigns")
INT32 = (-(2**31), 2**31 - 1)
ODD_TEXT = ["שלום", "مرحبا بالعالم", "\u202egnp.exe\u202c", "e\u0301", "😀", "  Won ", "",
            "'; drop table contacts; --", "NULL", "\\N", "tab\tand\nnewline"]


def _text(length: int, nul: bool) -> st.SearchStrategy[str]:
    chars = st.characters(codec="utf-8", exclude_categories=["Cs"],
                          exclude_characters=None if nul else "\x00")
    short = [t[:length] for t in ODD_TEXT]
    return st.one_of(st.text(chars, max_size=min(length, 40)), st.sampled_from(short))


def _money(precision: int) -> st.SearchStrategy[Decimal]:
    top = Decimal(10) ** (precision - 2) - Decimal("0.01")
    return st.one_of(st.decimals(-top, top, places=2, allow_nan=False, allow_infinity=False),
                     st.sampled_from([top, -top, Decimal("0.00"), Decimal("0.01")]))


def _timestamp(any_offset: bool) -> st.SearchStrategy[dt.datetime]:
    zones = st.builds(lambda m: dt.timezone(dt.timedelta(minutes=m)), st.integers(-14 * 60,
                                                                                 14 * 60)) \
        if any_offset else st.just(dt.UTC)  # SQLite keeps no offset: the ERP writes UTC
    return st.datetimes(dt.datetime(1970, 1, 2), dt.datetime(2100, 1, 1), timezones=zones)


def column_strategy(column: sa.Column, *, pg: bool) -> st.SearchStrategy[Any]:
    """Values for one column, from its ERD type; NULL wherever the column allows it."""
    kind = column.type
    if isinstance(kind, sa.Boolean):
        values: st.SearchStrategy[Any] = st.booleans()
    elif isinstance(kind, sa.BigInteger):
        values = st.integers(-(2**63), 2**63 - 1)
    elif isinstance(kind, sa.Integer):
        values = st.integers(*INT32)
    elif isinstance(kind, sa.Numeric):
        values = _money(kind.precision or 15)
    elif isinstance(kind, sa.DateTime):
        values = _timestamp(pg)
    elif isinstance(kind, sa.Date):
        values = st.dates(dt.date(1, 1, 1) if pg else dt.date(1900, 1, 1), dt.date(9999, 12, 31))
    else:
        values = _text(getattr(kind, "length", None) or 200, nul=not pg)
    return values


@st.composite
def source_rows(draw: st.DrawFn, pg: bool) -> dict[str, list[dict[str, Any]]]:
    md = build_metadata()
    out = {}
    for name in GENERATED:
        table = md.tables[name]
        keys = draw(st.lists(st.integers(1, INT32[1]), unique=True, max_size=6))
        rows = []
        for key in keys:
            row = {"id": key}
            for column in table.columns:
                if column.name == "id":
                    continue
                strategy = column_strategy(column, pg=pg)
                row[column.name] = draw(strategy if not column.nullable else
                                        st.one_of(st.none(), strategy))
            rows.append(row)
        out[name] = rows
    return out


@st.composite
def source_and_change(draw: st.DrawFn, pg: bool) -> tuple[dict, dict]:
    """Rows, then the same tables after updates (a newer `updated_at`) and deletes."""
    first = draw(source_rows(pg))
    md = build_metadata()
    later = {}
    for name, rows in first.items():
        table = md.tables[name]
        kept = [r for r in rows if draw(st.booleans()) or draw(st.booleans())]
        changed = []
        for row in kept:
            row = dict(row)
            if draw(st.booleans()):
                column = draw(st.sampled_from([c for c in table.columns if c.name != "id"]))
                strategy = column_strategy(column, pg=pg)
                row[column.name] = draw(strategy if not column.nullable else
                                        st.one_of(st.none(), strategy))
                if "updated_at" in row:  # the ERP stamps every change
                    row["updated_at"] = dt.datetime(2101, 1, 1, tzinfo=dt.UTC)
            changed.append(row)
        later[name] = changed
    return first, later


def write_source(url: str, rows: dict[str, list[dict[str, Any]]]) -> None:
    """Create every ERP table (empty unless generated) and insert the rows: the source as is."""
    engine = sa.create_engine(url)
    md = build_metadata()
    with engine.begin() as conn:
        md.drop_all(conn)
        md.create_all(conn)
        for name, table_rows in rows.items():
            if table_rows:
                conn.execute(md.tables[name].insert(), table_rows)
    engine.dispose()


def expected(name: str, rows: list[dict[str, Any]]) -> list[tuple[Any, ...]]:
    """The rows as `raw` must hold them: timestamps as UTC instants, in key order."""
    columns = [c.name for c in build_metadata().tables[name].columns]

    def norm(v: Any) -> Any:
        return v.astimezone(dt.UTC) if isinstance(v, dt.datetime) else v

    return sorted((tuple(norm(r.get(c)) for c in columns) for r in rows), key=lambda t: t[0])


def check_raw(wh_url: str, root: Path, rows: dict[str, list[dict[str, Any]]]) -> None:
    wh = open_warehouse(parse_warehouse_url(wh_url, root))
    try:
        for name, table_rows in rows.items():
            columns = ", ".join(f'"{c.name}"' for c in build_metadata().tables[name].columns)
            got = [tuple(v.astimezone(dt.UTC) if isinstance(v, dt.datetime) else v for v in r)
                   for r in wh.fetchall(f'select {columns} from raw."{name}" order by 1')]
            assert got == expected(name, table_rows), name
    finally:
        wh.close()


def sync_twice(source_url: str, wh_url: str, root: Path, first: dict, later: dict) -> None:
    for rows in (first, later):
        write_source(source_url, rows)
        wh = open_warehouse(parse_warehouse_url(wh_url, root))
        try:
            report = sync_erp(source_url, "public", wh)
        finally:
            wh.close()
        assert {n: report.rows[n] for n in rows} == {n: len(r) for n, r in rows.items()}
        assert set(report.rows) == set(SOURCE_TABLES)
        check_raw(wh_url, root, rows)


@given(change=source_and_change(pg=False))
def test_sqlite_rows_land_in_raw_as_they_are(change: tuple[dict, dict]) -> None:
    first, later = change
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        sync_twice(f"sqlite:///{root}/erp.sqlite", f"duckdb:///{root}/wh.duckdb", root,
                   first, later)


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
@settings(max_examples=max(3, settings.default.max_examples // 8))  # a database each
@given(change=source_and_change(pg=True))
def test_postgres_rows_land_in_raw_as_they_are(make_pg_database: Any, warehouse: str,
                                               change: tuple[dict, dict]) -> None:
    """PostgreSQL sources go through DuckDB's postgres scanner or binary COPY: other code,
    other types (any offset, years 1..9999)."""
    first, later = change
    source_db = make_pg_database("crm_badsrc")
    wh_db = make_pg_database("crm_badwh") if warehouse == "postgres" else None
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        wh_url = f"duckdb:///{root}/wh.duckdb" if wh_db is None else \
            pg_url(wh_db, driver="postgresql")
        sync_twice(pg_url(source_db), wh_url, root, first, later)
