"""The append-only deal history (`snapshots.crm_deal_versions`) against the dbt snapshot it
replaced, through the real dbt CLI, on DuckDB and PostgreSQL.

Three warehouses see the same daily runs (the `raw` rows of `tests/helpers/dbt.py`, changed
between runs): one records history with the snapshot (the reference,
`tests/helpers/legacy_deal_history.py`), one with the versions model from the first run, and one
is the snapshot's warehouse after six runs, switched to the versions model (the migration).
After every run, the versions equal the snapshot's rows (valid_to being the next version's
start) and every relation in `intermediate` and `marts` equals the reference's, row for row.

The runs: a first day; stage, amount and close-date changes, an owner change alone, a deleted
deal, a new deal and a soft-deleted contact; a same-date rerun that sees a change (a version a
second later); one that sees none (nothing appended); a run for an earlier date (nothing
recorded, marts as of that date); a deal back to an earlier stage, the deleted deal back
unchanged, a stage set and a close date cleared; two more same-date reruns with changes.
"""

from __future__ import annotations

import copy
import json
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from tests.helpers.dbt import DATA, REPORTING_TZ, Row, run_dbt, write_raw_fixture
from tests.helpers.legacy_deal_history import SNAPSHOT, VERSIONS, legacy_project
from tests.helpers.pipeline import query_warehouse
from tests.helpers.postgres import dbt_postgres_env, pg_conninfo, pg_url

pytestmark = pytest.mark.slow

Tables = dict[str, list[Row]]

#: the run after which the migrated warehouse leaves the snapshot for the versions model: its
#: first build is a same-date rerun that sees a change (a second after the snapshot's latest)
SWITCH_AFTER = 6


def _base() -> Tables:
    """The fixture's rows, with an owner and a close date on every deal."""
    tables = copy.deepcopy(DATA)
    for deal in tables["crm_deals"]:
        deal["owner_id"] = 1 + deal["id"] % 3
        deal["close_date"] = date(2026, 4, 1) + timedelta(days=deal["id"])
        deal["created_at"] = datetime.fromisoformat("2026-01-15 12:00:00+00:00")
    return tables


def _deal(tables: Tables, deal_id: int) -> Row:
    return next(d for d in tables["crm_deals"] if d["id"] == deal_id)


def _runs() -> list[tuple[date, Tables]]:
    """(as-of date, raw tables) of every run, in order."""
    runs = []
    day1, day2, earlier, day3 = (date(2026, 3, 1), date(2026, 3, 3), date(2026, 3, 2),
                                 date(2026, 3, 6))
    tables = _base()
    runs.append((day1, copy.deepcopy(tables)))

    _deal(tables, 1)["stage_id"] = 2
    _deal(tables, 2)["amount"] = Decimal("250.00")
    _deal(tables, 3)["close_date"] += timedelta(days=10)
    _deal(tables, 10)["owner_id"] = 9  # not tracked: no version
    deleted = _deal(tables, 12)
    tables["crm_deals"].remove(deleted)
    tables["crm_deals"].append({"id": 16, "title": "Deal 16", "contact_id": 2, "stage_id": 1,
                                "amount": Decimal("16.00"), "owner_id": 2,
                                "close_date": date(2026, 5, 1)})
    next(c for c in tables["contacts"] if c["id"] == 2)["is_deleted"] = True
    runs.append((day2, copy.deepcopy(tables)))

    _deal(tables, 1)["stage_id"] = 3  # same-date rerun: supersedes the move to 2
    _deal(tables, 3)["close_date"] -= timedelta(days=4)
    runs.append((day2, copy.deepcopy(tables)))
    runs.append((day2, copy.deepcopy(tables)))  # nothing changed

    _deal(tables, 5)["stage_id"] = 5
    runs.append((earlier, copy.deepcopy(tables)))  # before the latest version: not recorded

    _deal(tables, 1)["stage_id"] = 1  # back to where it began
    tables["crm_deals"].append(deleted)  # back, unchanged
    _deal(tables, 7)["stage_id"] = 1
    _deal(tables, 8)["close_date"] = None
    runs.append((day3, copy.deepcopy(tables)))

    _deal(tables, 2)["amount"] = Decimal("200.00")
    runs.append((day3, copy.deepcopy(tables)))
    _deal(tables, 9)["amount"] = None
    runs.append((day3, copy.deepcopy(tables)))
    return runs


@dataclass
class Warehouse:
    """One warehouse and how to build it."""

    url: str  # for query_warehouse
    target: str  # the raw fixture's target: a DuckDB path or a psycopg conninfo
    env: dict[str, str]  # the variables that point dbt's profile at it


@dataclass
class Setup:
    legacy: Path  # the snapshot's project
    workdir: Path
    make: Callable[[str], Warehouse]  # a new, empty warehouse
    clone: Callable[[Warehouse, str], Warehouse]  # a copy of a built warehouse


def _build(setup: Setup, wh: Warehouse, run_date: date, tables: Tables, legacy: bool) -> None:
    """One daily run: the raw rows as the ERP held them, then dbt on the as-of date. The
    snapshot's project builds the history and everything downstream; today's project builds
    the same and runs their unit tests (the data tests run in every other dbt test)."""
    write_raw_fixture(wh.target, data=tables)
    name = "legacy" if legacy else "current"
    variables = json.dumps({"as_of_date": run_date.isoformat(), "reporting_tz": REPORTING_TZ})
    args = ["build", "--vars", variables, "--target-path", str(setup.workdir / name)]
    if legacy:
        args += ["--project-dir", str(setup.legacy), "--select", "@snp_erp__crm_deals",
                 "--exclude-resource-type", "test", "unit_test"]
    else:
        args += ["--select", "@crm_deal_versions", "--exclude-resource-type", "test"]
    result = run_dbt(args, {**wh.env, "DBT_LOG_PATH": str(setup.workdir / f"{name}_logs")})
    assert result.returncode == 0, result.stdout[-6000:] + result.stderr[-2000:]


def _rows(wh: Warehouse, sql: str) -> list[tuple]:
    rows = query_warehouse(wh.url, sql)
    names = sorted(rows[0]) if rows else []
    return sorted((tuple((name, row[name]) for name in names) for row in rows), key=repr)


def _versions(wh: Warehouse, legacy: bool) -> list[tuple]:
    columns = "deal_id, contact_id, owner_id, stage_id, amount, close_date, created_at"
    if legacy:
        return _rows(wh, f"select {columns}, dbt_valid_from as valid_from, "
                         f"dbt_valid_to as valid_to from {SNAPSHOT}")
    return _rows(wh, f"select {columns}, recorded_at as valid_from, lead(recorded_at) over "
                     f"(partition by deal_id order by recorded_at) as valid_to from {VERSIONS}")


def _history_relations(wh: Warehouse) -> list[str]:
    """The intermediate relations and marts: what the reference builds is everything the
    deal history reaches and their parents."""
    rows = query_warehouse(wh.url, "select table_schema, table_name from "
                                   "information_schema.tables where table_schema in "
                                   "('intermediate', 'marts') order by 1, 2")
    return [f"{r['table_schema']}.{r['table_name']}" for r in rows]


def _assert_same(expected: Warehouse, actual: Warehouse, actual_legacy: bool, when: str) -> None:
    assert _versions(actual, actual_legacy) == _versions(expected, True), f"versions, {when}"
    relations = _history_relations(expected)
    # today's project builds a few more (the ancestors of its singular tests)
    assert set(relations) <= set(_history_relations(actual))
    assert any("fct_deal_stage_history" in r for r in relations)
    for relation in relations:
        assert _rows(actual, f"select * from {relation}") == \
            _rows(expected, f"select * from {relation}"), f"{relation}, {when}"


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres)])
def setup(request: pytest.FixtureRequest, tmp_path: Path) -> Setup:
    legacy = legacy_project(tmp_path / "legacy_project")
    if request.param == "duckdb":
        def make(name: str) -> Warehouse:
            path = tmp_path / f"{name}.duckdb"
            return Warehouse(f"duckdb:///{path}", str(path),
                             {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(path)})

        def clone(wh: Warehouse, name: str) -> Warehouse:
            copied = make(name)
            shutil.copy(wh.target, copied.target)
            return copied
    else:
        make_db = request.getfixturevalue("make_pg_database")
        databases: dict[str, str] = {}

        def warehouse(dbname: str) -> Warehouse:
            return Warehouse(pg_url(dbname, driver="postgresql"), pg_conninfo(dbname),
                             dbt_postgres_env(dbname))

        def make(name: str) -> Warehouse:
            databases[name] = make_db(f"i17v_{name}")
            return warehouse(databases[name])

        def clone(wh: Warehouse, name: str) -> Warehouse:
            import psycopg

            source = next(db for db in databases.values() if wh.env["CRM_PG_DBNAME"] == db)
            databases[name] = make_db(f"i17v_{name}")
            with psycopg.connect(pg_conninfo(), autocommit=True) as conn:
                conn.execute(f'drop database "{databases[name]}"')
                conn.execute(f'create database "{databases[name]}" template "{source}"')
            return warehouse(databases[name])
    return Setup(legacy, tmp_path, make, clone)


def test_versions_and_history_marts_equal_the_snapshots(setup: Setup) -> None:
    reference, versions = setup.make("snapshot"), setup.make("versions")
    migrated = None
    snapshot_at_switch: list[tuple] = []
    recorded: list[int] = []
    for number, (run_date, tables) in enumerate(_runs(), start=1):
        when = f"run {number} ({run_date})"
        _build(setup, reference, run_date, tables, legacy=True)
        _build(setup, versions, run_date, tables, legacy=False)
        _assert_same(reference, versions, actual_legacy=False, when=when)
        if number == SWITCH_AFTER:
            migrated = setup.clone(reference, "migrated")
            snapshot_at_switch = _versions(migrated, legacy=True)
        elif migrated is not None:
            _build(setup, migrated, run_date, tables, legacy=False)
            _assert_same(reference, migrated, actual_legacy=False, when=f"migrated, {when}")
            # the snapshot's table stays as it was when the model took over
            assert _versions(migrated, legacy=True) == snapshot_at_switch
        recorded.append(len(_versions(versions, legacy=False)))

    # the runs really exercised the cases: reruns with no change and the earlier date append
    # nothing, the same-date reruns with changes do
    assert recorded[3] == recorded[2] and recorded[4] == recorded[3]
    assert recorded[2] > recorded[1] and recorded[7] > recorded[6] > recorded[5] > recorded[4]
    seconds = query_warehouse(versions.url, f"select distinct recorded_at from {VERSIONS}")
    assert sorted(r["recorded_at"] for r in seconds) == [
        datetime(2026, 3, 1), datetime(2026, 3, 3), datetime(2026, 3, 3, 0, 0, 1),
        datetime(2026, 3, 6), datetime(2026, 3, 6, 0, 0, 1), datetime(2026, 3, 6, 0, 0, 2)]


def test_full_refresh_keeps_the_recorded_history(setup: Setup) -> None:
    """The history cannot be recomputed from the ERP: `--full-refresh` leaves it alone."""
    wh = setup.make("refresh")
    runs = _runs()
    for run_date, tables in (runs[0], runs[1]):
        _build(setup, wh, run_date, tables, legacy=False)
    before = _versions(wh, legacy=False)
    variables = json.dumps({"as_of_date": runs[1][0].isoformat(),
                            "reporting_tz": REPORTING_TZ})
    result = run_dbt(["run", "--full-refresh", "--select", "crm_deal_versions", "--vars",
                      variables, "--target-path", str(setup.workdir / "refresh")],
                     {**wh.env, "DBT_LOG_PATH": str(setup.workdir / "refresh_logs")})
    assert result.returncode == 0, result.stdout[-4000:]
    assert _versions(wh, legacy=False) == before
    assert len({dict(row)["valid_from"] for row in before}) == 2  # both runs' history

