"""Registering `raw` in Spark's catalog, publish after publish: the first publish creates each
external table, a later one with the same columns repoints it at the new version folder, and
one whose columns changed (a column added on the ERP) recreates it. After each, Spark reads
exactly the DuckDB file's rows; the version folders a reader may still use are kept. An event
table, published load by load, reads the same across a new load and a replaced file. The
publishes and reads share one Spark session (starting Spark costs seconds); a last read in a
process of its own sees the same tables through the catalog, as dbt does after a publish."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tests.helpers.spark import require_spark, spark_job, spark_jobs

pytestmark = pytest.mark.spark


def _write(wh: Path, deals: str, branch_columns: str = "7 as id, 'B' as name") -> None:
    with duckdb.connect(str(wh)) as con:
        con.execute("create schema if not exists raw")
        con.execute("create or replace table raw.crm_deals as select * from (values "
                    f"{deals}) t(id, title, amount)")
        con.execute(f"create or replace table raw.branches as select {branch_columns}")


def _events(wh: Path, statement: str) -> None:
    with duckdb.connect(str(wh)) as con:
        con.execute("create table if not exists raw.campaign_events "
                    "(id integer, file_path varchar, load_id varchar)")
        con.execute(statement)


def _spark_raw(job: Callable[..., None], out: Path) -> dict[str, list[dict]]:
    """Spark's `raw` tables, read through the catalog by `job`."""
    out.mkdir()
    job("export", str(out), "raw")
    return {path.name.split(".")[1]: sorted(pq.read_table(path).to_pylist(),
                                           key=lambda r: r["id"])
            for path in out.glob("raw.*.parquet")}


def _in_a_new_process(lake: str) -> Callable[..., None]:
    """A job run in a Spark process of its own, as dbt reads what the pipeline published."""
    return lambda name, *args: spark_job(name, lake, *args, env={})


def test_publishes_create_repoint_and_recreate_the_external_tables(tmp_path: Path) -> None:
    require_spark()
    wh, lake = tmp_path / "staging.duckdb", str(tmp_path / "lake")
    with spark_jobs(lake, tmp_path / "spark.log") as job:
        _write(wh, "(1, 'A', 12.34::decimal(15,2)), (2, NULL, NULL)")
        _events(wh, "insert into raw.campaign_events values (1, 'a', 'L1'), (2, 'b', 'L1')")
        job("publish", str(wh))
        first = _spark_raw(job, tmp_path / "first")
        assert first["campaign_events"] == [{"id": 1, "file_path": "a", "load_id": "L1"},
                                            {"id": 2, "file_path": "b", "load_id": "L1"}]
        assert first["crm_deals"] == [{"id": 1, "title": "A", "amount": Decimal("12.34")},
                                      {"id": 2, "title": None, "amount": None}]
        assert first["branches"] == [{"id": 7, "name": "B"}]

        # same columns: the table is repointed at the new version
        _write(wh, "(1, 'A', 56.78::decimal(15,2)), (2, NULL, NULL), (3, 'C', 1.00::decimal(15,2))")
        _events(wh, "insert into raw.campaign_events values (3, 'c', 'L2')")  # the next day
        job("publish", str(wh))
        second = _spark_raw(job, tmp_path / "second")
        assert [r["id"] for r in second["campaign_events"]] == [1, 2, 3]
        assert [r["amount"] for r in second["crm_deals"]] == \
            [Decimal("56.78"), None, Decimal("1.00")]

        # a column added on the ERP: the table is recreated with it
        _write(wh, "(1, 'A', 56.78::decimal(15,2))", "7 as id, 'B' as name, 'EU' as region")
        # landing file 'a' replaced: its row leaves load L1, its new one comes with load L3
        _events(wh, "delete from raw.campaign_events where file_path = 'a'; "
                    "insert into raw.campaign_events values (4, 'a', 'L3')")
        job("publish", str(wh))
        third = _spark_raw(job, tmp_path / "third")
        assert [(r["id"], r["load_id"]) for r in third["campaign_events"]] == \
            [(2, "L1"), (3, "L2"), (4, "L3")]
        assert third["branches"] == [{"id": 7, "name": "B", "region": "EU"}]
        assert third["crm_deals"] == [{"id": 1, "title": "A", "amount": Decimal("56.78")}]
        # the current version and the one before it stay in the lake
        assert len(list((tmp_path / "lake/raw/crm_deals").iterdir())) == 2
    # the catalog, not only the session that wrote it, holds the repointed and recreated tables
    assert _spark_raw(_in_a_new_process(lake), tmp_path / "apart") == third
