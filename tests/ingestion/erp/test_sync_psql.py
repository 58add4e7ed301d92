"""PostgreSQL → PostgreSQL full loads through a `psql` child (`ingestion/erp/postgres_copy.py`).

The test tables are small, so the size threshold is lowered to 0 here to send every whole-table
copy through the child; each test then checks what the child must keep from the in-process
pipe: the sync's one snapshot, a failure that aborts the copy and leaves `raw` as it was, a
one-line error without the password, and the same rows when `psql` is not installed.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import psycopg
import pytest

from crm_core.errors import CrmError
from crm_core.urls import parse_warehouse_url
from ingestion.erp import postgres_copy
from ingestion.erp.schema import SOURCE_TABLES
from ingestion.warehouse import open_warehouse
from tests.helpers.postgres import pg_url
from tests.helpers.sync import (
    all_raw,
    assert_raw_equals_source,
    source_exec,
    sync,
    sync_past_an_idle_timeout,
    write_source,
)

pytestmark = pytest.mark.postgres


@pytest.fixture
def via_psql(monkeypatch: pytest.MonkeyPatch) -> list[list[str]]:
    """Every whole-table copy goes through the child (and `psql` is really there). Returns
    the commands of the children started, recorded on their way to the real `Popen`."""
    import shutil
    import subprocess

    assert shutil.which("psql"), "psql is not installed"
    monkeypatch.setattr(postgres_copy, "PSQL_MIN_BYTES", 0)
    started: list[list[str]] = []
    real_popen = subprocess.Popen

    def recording_popen(command: list[str], *args, **kwargs):  # type: ignore[no-untyped-def]
        started.append(command)
        return real_popen(command, *args, **kwargs)

    monkeypatch.setattr(postgres_copy.subprocess, "Popen", recording_popen)
    return started


@pytest.fixture
def dbs(make_pg_database) -> tuple[str, str]:
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    return source_db, pg_url(make_pg_database("crm_wh"), driver="postgresql")


def test_every_table_lands_through_the_child(via_psql: list[list[str]],
                                            dbs: tuple[str, str]) -> None:
    source_db, wh_url = dbs
    sync(source_db, wh_url)
    assert len(via_psql) == len(SOURCE_TABLES)
    assert_raw_equals_source(source_db, wh_url)
    # The password never goes on a command line (`ps` shows those to every user).
    assert all("password" not in " ".join(command) for command in via_psql)


def test_the_child_reads_in_the_syncs_snapshot(via_psql: list[list[str]],
                                              dbs: tuple[str, str]) -> None:
    """Rows deleted after the sync's snapshot was taken are still in the copy: the child joined
    the exported snapshot rather than reading the table as it is now."""
    source_db, wh_url = dbs
    before = len(all_raw_rows(source_db, "crm_deals"))
    assert before > 0
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        with postgres_copy.source_snapshot(pg_url(source_db)) as source, wh.transaction():
            source.snapshot_id()  # the snapshot is taken now
            source_exec(source_db, "delete from crm_deals")
            copied = postgres_copy.copy_table(source, "public", "crm_deals", wh, "raw",
                                              "crm_deals")
    finally:
        wh.close()
    assert len(via_psql) == 1
    assert copied == before
    assert all_raw_rows(source_db, "crm_deals") == []


def all_raw_rows(source_db: str, table: str) -> list[tuple]:
    with psycopg.connect(pg_url(source_db, driver="postgresql")) as conn:
        return conn.execute(f'select * from "{table}"').fetchall()


def test_a_source_lost_mid_copy_aborts_it(via_psql: list[list[str]], dbs: tuple[str, str]) -> None:
    """The child's source connection is terminated while it waits on a locked table: the sync
    fails with one line naming the table and the cause, `raw` is unchanged, and the next sync
    converges. (The stream would otherwise end at a row boundary, which COPY accepts.)"""
    source_db, wh_url = dbs
    sync(source_db, wh_url)
    source_exec(source_db, "update crm_leads set value = 1.00, updated_at = now()",
                "alter table crm_deals add column note text")  # crm_deals reloads in full
    before = all_raw(wh_url)
    failure: list[BaseException] = []

    def run() -> None:
        try:
            sync(source_db, wh_url)
        except BaseException as exc:  # noqa: BLE001 - handed to the test thread
            failure.append(exc)

    dsn = pg_url(source_db, driver="postgresql")
    with psycopg.connect(dsn) as locker, psycopg.connect(dsn, autocommit=True) as admin:
        locker.execute("lock table crm_deals in access exclusive mode")
        worker = threading.Thread(target=run)
        worker.start()
        killed, deadline = 0, time.monotonic() + 60
        while not killed and time.monotonic() < deadline and worker.is_alive():
            time.sleep(0.1)
            # Only the child runs `copy` as a top-level statement on the source.
            killed = len(admin.execute(
                "select pg_terminate_backend(pid) from pg_stat_activity "
                "where datname = current_database() and application_name = "
                "'crm-analytics-sync' and wait_event_type = 'Lock' "
                "and query ilike 'copy (select%%crm_deals%%'").fetchall())
        worker.join(60)
        locker.rollback()
    assert killed, "the child never waited on the locked table"
    assert any("crm_deals" in command[-1] for command in via_psql)
    assert len(failure) == 1 and isinstance(failure[0], CrmError), failure
    message = str(failure[0])
    assert "\n" not in message and "crm_deals" in message and "terminat" in message, message
    assert all_raw(wh_url) == before
    sync(source_db, wh_url)
    assert_raw_equals_source(source_db, wh_url)


def test_a_source_idle_timeout_does_not_end_the_snapshot(via_psql: list[list[str]],
                                                         dbs: tuple[str, str]) -> None:
    """The source ends sessions idle in a transaction after 200 ms, and a child waits 1.5 s on
    a locked table: the sync's own session is idle in its transaction all that while, yet the
    tables copied after that one still find the snapshot it exported."""
    source_db, wh_url = dbs
    sync_past_an_idle_timeout(source_db, wh_url)
    assert any("crm_deals" in command[-1] for command in via_psql)
    assert_raw_equals_source(source_db, wh_url)


def test_child_errors_are_one_line_without_the_password(via_psql: list[list[str]],
                                                        dbs: tuple[str, str]) -> None:
    """A source role that may not read crm_deals: the child's error names the table and the
    reason on one line, and the password (passed to the child in its environment) is not in
    it."""
    source_db, wh_url = dbs
    password = "Pw-in-the-child-env-7781"
    role = f"crm_limited_{source_db[-8:]}"
    source_exec(source_db, f"create role {role} login password '{password}'",
                f"grant select on all tables in schema public to {role}",
                f"revoke select on crm_deals from {role}")
    try:
        url = f"postgresql+psycopg://{role}:{password}@127.0.0.1:5432/{source_db}"
        wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
        from ingestion.erp.sync import sync_erp

        try:
            with pytest.raises(CrmError) as caught:
                sync_erp(url, "public", wh)
        finally:
            wh.close()
        message = str(caught.value)
        assert "\n" not in message and password not in message, message
        assert message.startswith("source table crm_deals: copy failed: permission denied"), \
            message
        assert any("crm_deals" in command[-1] for command in via_psql)
    finally:
        source_exec(source_db, f"drop owned by {role}", f"drop role {role}")


def test_without_psql_the_in_process_pipe_lands_the_same_rows(
        via_psql: list[list[str]], dbs: tuple[str, str], monkeypatch: pytest.MonkeyPatch,
        tmp_path: Path) -> None:
    source_db, wh_url = dbs
    sync(source_db, wh_url)
    with_child = all_raw(wh_url)
    children = len(via_psql)
    monkeypatch.setenv("PATH", str(tmp_path))  # no psql on it
    wh = open_warehouse(parse_warehouse_url(wh_url, Path(".")))
    try:
        wh.execute("drop table raw._sync_state")  # no state: every table reloads in full
    finally:
        wh.close()
    report = sync(source_db, wh_url)
    assert set(report.load_kind.values()) == {"full"}
    assert len(via_psql) == children  # no child this time
    assert all_raw(wh_url) == with_child
    assert_raw_equals_source(source_db, wh_url)
