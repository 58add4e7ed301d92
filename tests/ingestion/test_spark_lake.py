"""Publishing `raw` to the lake, the part that needs no Spark: every table of the DuckDB file
becomes a new Parquet version folder holding exactly its rows, and pruning keeps the newest two
versions. The event tables are written load by load: a new version links the files of the loads
that did not change and writes only the others. (Registering the versions in Spark's catalog is
exercised by tests/spark.)"""

from __future__ import annotations

from decimal import Decimal
from pathlib import Path

import duckdb
import pytest

from crm_core.errors import CrmError
from crm_core.spark import Lake
from ingestion.spark_lake import PublishedTable, export_raw, prune_versions


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
    prune_versions(versions[-1:])
    left = sorted(p.name for p in (tmp_path / "lake/raw/branches").iterdir())
    assert left == sorted(Path(v.location).name for v in versions[-2:])


def _events(path: Path, statement: str) -> None:
    with duckdb.connect(str(path)) as con:
        con.execute("create schema if not exists raw")
        con.execute("create table if not exists raw.campaign_events "
                    "(id integer, file_path varchar, load_id varchar)")
        con.execute(statement)


def _files(version: PublishedTable) -> dict[str, int]:
    """The version's Parquet files and their inodes (a linked file keeps its inode)."""
    return {p.name: p.stat().st_ino for p in Path(version.location).glob("*.parquet")}


def _rows(version: PublishedTable) -> list[tuple]:
    with duckdb.connect() as con:
        return con.execute(f"select * from read_parquet('{version.location}/*.parquet', "
                           "union_by_name = true) order by all").fetchall()


def _table(path: Path) -> list[tuple]:
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute("select * from raw.campaign_events order by all").fetchall()


def test_an_event_table_is_written_load_by_load_and_a_day_writes_only_its_load(
        tmp_path: Path) -> None:
    wh, lake = tmp_path / "wh.duckdb", str(tmp_path / "lake")
    _events(wh, "insert into raw.campaign_events values "
                "(1, 'a.jsonl', 'L1'), (2, 'a.jsonl', 'L1'), (3, 'b.jsonl', 'L1')")
    first = export_raw(wh, lake)[0]
    assert sorted(_files(first)) == ["load-L1-3.parquet"] and first.rows == 3
    assert _rows(first) == _table(wh)

    # the next day: one new load; the first load's file is the same file, not a copy
    _events(wh, "insert into raw.campaign_events values (4, 'c.jsonl', 'L2'), (5, NULL, NULL)")
    second = export_raw(wh, lake)[0]
    assert sorted(_files(second)) == ["load-L1-3.parquet", "load-L2-1.parquet",
                                      "load-null-1.parquet"]
    assert _files(second)["load-L1-3.parquet"] == _files(first)["load-L1-3.parquet"]
    assert _rows(second) == _table(wh) and second.rows == 5

    # a replaced landing file deletes its rows from the load that wrote them: that load's
    # file is written again, the others are linked
    _events(wh, "delete from raw.campaign_events where file_path = 'a.jsonl'; "
                "insert into raw.campaign_events values (6, 'a.jsonl', 'L3')")
    third = export_raw(wh, lake)[0]
    assert sorted(_files(third)) == ["load-L1-1.parquet", "load-L2-1.parquet",
                                     "load-L3-1.parquet", "load-null-1.parquet"]
    assert _files(third)["load-L2-1.parquet"] == _files(second)["load-L2-1.parquet"]
    assert _rows(third) == _table(wh) == [(3, "b.jsonl", "L1"), (4, "c.jsonl", "L2"),
                                          (5, None, None), (6, "a.jsonl", "L3")]

    # pruning the older versions leaves the linked files whole
    prune_versions([third], keep=1)
    assert [p.name for p in (tmp_path / "lake/raw/campaign_events").iterdir()] == \
        [Path(third.location).name]
    assert _rows(third) == _table(wh)

    # a column added: every file is written again with it, none linked
    _events(wh, "alter table raw.campaign_events add column channel varchar default 'web'")
    fourth = export_raw(wh, lake)[0]
    assert not set(_files(fourth).values()) & set(_files(third).values())
    assert _rows(fourth) == _table(wh) and all(r[3] == "web" for r in _rows(fourth))


def test_an_empty_event_table_still_has_a_file_with_its_columns(tmp_path: Path) -> None:
    wh, lake = tmp_path / "wh.duckdb", str(tmp_path / "lake")
    _events(wh, "select 1")
    version = export_raw(wh, lake)[0]
    assert list(_files(version)) == ["part-0.parquet"] and version.rows == 0
    with duckdb.connect() as con:
        columns = [r[0] for r in con.execute(
            f"describe select * from '{version.location}/part-0.parquet'").fetchall()]
    assert columns == ["id", "file_path", "load_id"]


def test_files_of_an_unfinished_version_are_never_reused(tmp_path: Path) -> None:
    """A version folder without its column list (a publish that stopped, or one written
    before load files existed) is not linked from: every load is written again."""
    wh, lake = tmp_path / "wh.duckdb", str(tmp_path / "lake")
    _events(wh, "insert into raw.campaign_events values (1, 'a.jsonl', 'L1')")
    first = export_raw(wh, lake)[0]
    (Path(first.location) / "_columns.json").unlink()
    second = export_raw(wh, lake)[0]
    assert _files(second)["load-L1-1.parquet"] != _files(first)["load-L1-1.parquet"]
    assert _rows(second) == _table(wh)


def test_a_bucket_lake_is_written_through_its_mount_and_named_by_its_url(tmp_path: Path) -> None:
    """A lake on object storage: the files go into the folder where this machine mounts it,
    the catalog gets the bucket's URL of each version, and the next version links the loads it
    kept from the previous one in the mount; pruning works there too."""
    wh, mount = tmp_path / "wh.duckdb", tmp_path / "mnt"
    mount.mkdir()
    lake = Lake.of("s3a://bucket/crm/", mount)
    _events(wh, "insert into raw.campaign_events values (1, 'a.jsonl', 'L1')")
    first = export_raw(wh, lake)[0]
    _events(wh, "insert into raw.campaign_events values (2, 'b.jsonl', 'L2')")
    second, = export_raw(wh, lake)
    for version in (first, second):
        assert version.folder.parent == mount / "raw" / "campaign_events"
        assert version.location == f"s3a://bucket/crm/raw/campaign_events/{version.folder.name}"
    files = {p.name: p.stat().st_ino for p in second.folder.glob("*.parquet")}
    assert files["load-L1-1.parquet"] == next(first.folder.glob("*.parquet")).stat().st_ino
    with duckdb.connect() as con:
        rows = con.execute(f"select id from read_parquet('{second.folder}/*.parquet') "
                           "order by id").fetchall()
    assert rows == [(1,), (2,)]
    prune_versions([second], keep=1)
    assert [p.name for p in second.folder.parent.iterdir()] == [second.folder.name]


def test_a_bucket_lake_without_a_mount_fails_in_one_line_and_writes_nothing(
        tmp_path: Path) -> None:
    wh = tmp_path / "wh.duckdb"
    _raw(wh, "1")
    with pytest.raises(CrmError, match=r"^CRM_LAKE_PATH s3a://bucket/crm is not a folder on "
                                       r"this machine: .* set CRM_LAKE_MOUNT"):
        export_raw(wh, "s3a://bucket/crm")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["wh.duckdb"]
