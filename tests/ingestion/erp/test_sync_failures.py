"""A sync that fails leaves `raw` exactly as it was and the next one converges; the generic
path merges incrementally too; a source that lost a column staging reads stops the sync."""

from __future__ import annotations

import datetime as dt
import subprocess
import time
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from ingestion.erp.schema import SOURCE_TABLES, build_metadata
from tests.helpers.cli import CLI, assert_one_line_error, crm
from tests.helpers.postgres import pg_url
from tests.helpers.sync import (
    _digest,
    all_raw,
    assert_raw_equals_source,
    raw_digest,
    source_exec,
    sync_past_an_idle_timeout,
    write_source,
)


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
@pytest.mark.parametrize(("how", "command"), [("pg_terminate_backend", "sync"),
                                              ("SIGKILL", "sync"),
                                              ("pg_terminate_backend", "run")])
def test_sync_killed_mid_copy(warehouse: str, how: str, command: str, make_pg_database,
                              tmp_path: Path) -> None:
    """The real CLI (`sync`, or the whole `run`), while it waits to copy `crm_deals` (held
    back by a lock the test takes), either loses its source connection
    (`pg_terminate_backend`: one-line error naming the table, non-zero exit) or is itself
    killed (SIGKILL). Either way `raw` is unchanged and the next sync converges."""
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    wh_url = (f"duckdb:///{tmp_path}/wh.duckdb" if warehouse == "duckdb"
              else pg_url(make_pg_database("crm_wh"), driver="postgresql"))
    (tmp_path / "events").mkdir()
    env = {"CRM_SOURCE_URL": pg_url(source_db), "CRM_WAREHOUSE_URL": wh_url,
           "CRM_EVENTS_PATH": str(tmp_path / "events")}
    assert crm(["sync"], tmp_path, **env).returncode == 0
    # Changes a successful sync would land (in tables copied before and after crm_deals).
    source_exec(source_db, "update contacts set phone = 'changed'",
                "update crm_leads set value = 1.00, updated_at = now()",
                "delete from crm_campaign_performance")
    before = all_raw(wh_url)

    dsn = pg_url(source_db, driver="postgresql")
    with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as admin:
        locker.execute("lock table crm_deals in access exclusive mode")
        proc = subprocess.Popen(CLI + [command], cwd=tmp_path, env=_env(env),
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        action = ("pg_terminate_backend(pid)" if how == "pg_terminate_backend" else "pid")
        killed = 0
        deadline = time.monotonic() + 120
        while not killed and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            killed = len(admin.execute(
                f"select {action} from pg_stat_activity "
                "where datname = current_database() and application_name = "
                "'crm-analytics-sync' and wait_event_type = 'Lock'").fetchall())
        if how == "SIGKILL":
            proc.kill()
        out, err = proc.communicate(timeout=120)
        locker.rollback()
    assert killed, "the sync never waited on the locked table"
    if how == "SIGKILL":
        assert proc.returncode == -9
    else:
        result = subprocess.CompletedProcess(proc.args, proc.returncode, out, err)
        line = assert_one_line_error(result, "crm_deals")
        # psycopg reports the administrator's termination; DuckDB's extension the closed
        # socket.
        assert "terminat" in line or "closed the connection" in line, line
    assert all_raw(wh_url) == before

    again = crm([command], tmp_path, **env)
    assert again.returncode == 0, again.stdout + again.stderr
    assert_raw_equals_source(source_db, wh_url)


def _env(extra: dict[str, str]) -> dict[str, str]:
    import os

    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
    return {**base, **extra}


def _sqlite_digest(path: Path, table: str) -> tuple:
    engine = sa.create_engine(f"sqlite:///{path}")
    with engine.connect() as conn:
        result = conn.execute(sa.select(build_metadata().tables[table]))
        # SQLite hands naive timestamps back: they are UTC (docs/decisions.md), as the
        # warehouse has them.
        rows = [tuple(v.replace(tzinfo=dt.UTC) if isinstance(v, dt.datetime) else v
                      for v in row) for row in result]
        columns = list(result.keys())
    engine.dispose()
    return _digest(columns, rows)


def test_generic_path_merges_inserts_updates_and_deletes(tmp_path: Path) -> None:
    """SQLite → DuckDB through SQLAlchemy and Arrow: the same incremental merge."""
    from crm_core.urls import parse_warehouse_url
    from ingestion.erp.sync import sync_erp
    from ingestion.warehouse import open_warehouse

    src_path = tmp_path / "erp.sqlite"
    src = f"sqlite:///{src_path}"
    md = build_metadata()
    engine = sa.create_engine(src)
    md.create_all(engine)
    leads = md.tables["crm_leads"]
    old = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(leads.insert(), [{"id": i, "status": "new", "value": i, "created_at": old,
                                       "updated_at": old} for i in range(1, 6)])
    wh_url = f"duckdb:///{tmp_path}/wh.duckdb"

    def sync() -> dict[str, str]:
        wh = open_warehouse(parse_warehouse_url(wh_url, tmp_path))
        try:
            return sync_erp(src, "public", wh).load_kind
        finally:
            wh.close()

    assert sync()["crm_leads"] == "full"
    now = dt.datetime(2026, 6, 1, tzinfo=dt.UTC)
    with engine.begin() as conn:
        conn.execute(leads.update().where(leads.c.id == 2).values(value=99, updated_at=now))
        conn.execute(leads.delete().where(leads.c.id.in_([3, 4])))
        conn.execute(leads.insert(), [{"id": 7, "status": "won", "created_at": now,
                                       "updated_at": now}])
    engine.dispose()
    assert sync()["crm_leads"] == "incremental"
    for table in SOURCE_TABLES:
        assert raw_digest(wh_url, table) == _sqlite_digest(src_path, table), table
    assert raw_digest(wh_url, "crm_leads")[1] == 4


@pytest.mark.postgres
def test_dropped_staging_column_from_the_cli(make_pg_database, tmp_path: Path) -> None:
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    source_exec(source_db, 'alter table crm_pipeline_stages drop column "order"')
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=pg_url(source_db),
               CRM_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb")
    assert_one_line_error(proc, "crm_pipeline_stages", "column(s) order ")


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_a_source_idle_in_transaction_timeout_is_survived(warehouse: str, make_pg_database,
                                                          tmp_path: Path) -> None:
    """The source ends sessions idle in a transaction after 200 ms, and `crm_deals` is locked
    for 1.5 s: the sync's snapshot session waits idle meanwhile (its options turn that timeout
    off for it), and the sync still lands every table."""
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    wh_url = (f"duckdb:///{tmp_path}/wh.duckdb" if warehouse == "duckdb"
              else pg_url(make_pg_database("crm_wh"), driver="postgresql"))
    sync_past_an_idle_timeout(source_db, wh_url)
    assert_raw_equals_source(source_db, wh_url)


