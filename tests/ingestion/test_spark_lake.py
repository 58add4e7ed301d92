"""Publishing `raw` to the lake, the part that needs no Spark: every table of the DuckDB file
becomes a new Parquet version folder holding exactly its rows, and pruning keeps the newest two
versions. (Registering the versions in Spark's catalog is exercised by tests/spark.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb

from ingestion.spark_lake import export_raw, prune_versions


def _raw(path: Path, amount: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw")
        con.execute("create or replace table raw.crm_deals as select * from (values "
                    f"(1, 'A', {amount}::decimal(15,2), timestamptz '2026-03-01 10:00:00+00'),"
                    " (2, NULL, NULL, NULL)) t(id, title, amount, created_at)")
        con.execute("create or replace table raw.branches as select 7 as id, 'B' as name")


def test_each_table_becomes_a_new_version_with_its_rows(tmp_path: Path) -> None:
    wh, lake = tmp_path / "wh.duckdb", str(tmp_path / "lake")
    _raw(wh, "12.34")
    first = export_raw(wh, lake)
    _raw(wh, "56.78")
    second = export_raw(wh, lake, tables=["crm_deals"])
    assert [t.name for t in first] == ["branches", "crm_deals"]
    assert [(t.name, t.rows) for t in second] == [("crm_deals", 2)]
    old, new = first[1].location, second[0].location
    assert old != new and Path(old).parent == Path(new).parent == tmp_path / "lake/raw/crm_deals"
    with duckdb.connect() as con:
        amounts = con.execute(f"select amount from read_parquet('{new}/*.parquet') "
                              "order by id").fetchall()
        kept = con.execute(f"select amount from read_parquet('{old}/*.parquet') "
                           "where id = 1").fetchall()
    assert amounts == [(Decimal("56.78"),), (None,)]
    assert kept == [(Decimal("12.34"),)]  # the version readers still use is untouched


def test_pruning_keeps_the_two_newest_versions(tmp_path: Path) -> None:
    wh, lake = tmp_path / "wh.duckdb", str(tmp_path / "lake")
    _raw(wh, "1")
    versions = [export_raw(wh, lake, tables=["branches"])[0] for _ in range(4)]
    prune_versions(lake, versions[-1:])
    left = sorted(p.name for p in (tmp_path / "lake/raw/branches").iterdir())
    assert left == sorted(Path(v.location).name for v in versions[-2:])
