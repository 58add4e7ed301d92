"""CRM_SYNC_MODE=cdc against a real PostgreSQL with logical decoding (a private cluster the
session starts): the first sync equals the source, later syncs apply the decoded inserts,
updates and deletes without reading an ERP table, survive kills at the two dangerous points,
fall back to a full resync when the slot is gone, pick up new columns, and say which privilege
is missing."""

from __future__ import annotations

import sys
import time
from pathlib import Path

import psycopg
import pytest

from ingestion.erp.cdc_slot import lsn_int, slot_status
from ingestion.erp.schema import SOURCE_TABLES
from tests.helpers.cdc import (
    EXTRA_CONTACTS,
    SLOT,
    CdcSource,
    assert_raw_equals,
    cdc_sync,
    wait_for_stats,
)
from tests.helpers.cli import assert_one_line_error, crm
from tests.helpers.faults import run
from tests.helpers.sync import raw_digest

pytestmark = pytest.mark.postgres

ROOT = Path(__file__).resolve().parents[3]
KILLED = [str(ROOT / "tests" / "helpers" / "killed_cdc_sync.py")]


def _changes(source: CdcSource, round_: int) -> None:
    """Inserts, updates and deletes on several tables, a contact deleted and re-inserted, a
    lead updated twice (commit order matters), all in separate transactions."""
    base = 10_000 * round_
    source.execute(
        f"insert into contacts (id, contact_id, business_id) values ({base}, 'N-{base}', 1)",
        f"update contacts set credit_limit = credit_limit + {round_} where id in (100, 101, 102)",
        f"delete from contacts where id = {103 + round_}",
        f"update crm_leads set value = value + {round_}, updated_at = now() where id = 1",
        f"update crm_leads set status = 'Lost {round_}' where id = 1",
        f"insert into crm_deals (id, title, contact_id, amount) values ({base}, 'D', 1, 5.5)",
        f"delete from crm_deals where id = {base}",
        f"insert into crm_deals (id, title, contact_id, amount) values ({base}, 'D2', 1, 7)",
        f"update contact_accounts set account_balance = {round_} where id = 1",
    )


def test_cdc_first_sync_then_decoded_changes(cdc_source: CdcSource, warehouse_url: str) -> None:
    first = cdc_sync(cdc_source, warehouse_url)
    assert set(first.load_kind.values()) == {"full"}
    assert first.rows_read["contacts"] == 2 + EXTRA_CONTACTS
    assert_raw_equals(cdc_source, warehouse_url)
    assert cdc_source.slot() is not None

    _changes(cdc_source, 1)
    second = cdc_sync(cdc_source, warehouse_url)
    assert second.warnings == []
    assert second.load_kind["contacts"] == "cdc"
    # Applied from the change stream: 3 updated + 1 inserted contacts (the deleted one leaves),
    # the lead's last version, the deal's last insert; nothing read from the ERP's tables.
    assert second.changes_applied["contacts"] == 4
    assert second.changes_applied["crm_leads"] == 1
    assert second.changes_applied["crm_deals"] == 1
    assert sum(second.rows_read.values()) == 0
    assert second.load_kind["businesses"] == "unchanged"
    assert second.rows["contacts"] == 2 + EXTRA_CONTACTS  # +1 inserted, -1 deleted
    assert_raw_equals(cdc_source, warehouse_url)
    # Everything applied is confirmed: the slot holds nothing more.
    third = cdc_sync(cdc_source, warehouse_url)
    assert sum(third.rows_read.values()) == 0
    assert set(third.load_kind.values()) == {"unchanged"}


def test_cdc_syncs_after_the_first_read_no_row_from_the_erp(cdc_source: CdcSource,
                                                            tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    start = cdc_source.rows_handed_out()
    cdc_sync(cdc_source, url)
    before = wait_for_stats(cdc_source, start)
    # The counter sees the first sync's full copy (2,000+ contacts alone).
    assert before - start > EXTRA_CONTACTS
    _changes(cdc_source, 1)
    # The changing statements' own row reads (updates and deletes find their rows) count too.
    before = wait_for_stats(cdc_source, before)
    cdc_sync(cdc_source, url)  # changes applied from the stream
    cdc_sync(cdc_source, url)  # nothing changed
    time.sleep(1.0)  # an ended session's statistics arrive a moment later
    assert cdc_source.rows_handed_out() == before
    assert_raw_equals(cdc_source, url)


def test_cdc_column_added_on_the_source_is_picked_up(cdc_source: CdcSource,
                                                    warehouse_url: str) -> None:
    cdc_sync(cdc_source, warehouse_url)
    cdc_source.execute("alter table contacts add column nickname text",
                       "update contacts set nickname = 'Bob' where id = 100")
    report = cdc_sync(cdc_source, warehouse_url)
    assert report.load_kind["contacts"] == "full"
    assert "nickname" in raw_digest(warehouse_url, "contacts")[0]
    assert_raw_equals(cdc_source, warehouse_url)


def test_cdc_dropped_slot_resyncs_in_full_with_a_warning(cdc_source: CdcSource,
                                                         tmp_path: Path) -> None:
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    cdc_sync(cdc_source, url)
    cdc_source.execute(f"select pg_drop_replication_slot('{SLOT}')")
    _changes(cdc_source, 1)
    report = cdc_sync(cdc_source, url)
    assert any("dropped" in w and "full resync" in w for w in report.warnings), report.warnings
    assert set(report.load_kind.values()) == {"full"}
    assert_raw_equals(cdc_source, url)
    # From there it streams again.
    _changes(cdc_source, 2)
    report = cdc_sync(cdc_source, url)
    assert report.warnings == [] and report.load_kind["contacts"] == "cdc"
    assert_raw_equals(cdc_source, url)


def test_cdc_invalidated_slot_resyncs_in_full_with_a_warning(cdc_source: CdcSource,
                                                             tmp_path: Path) -> None:
    """`max_slot_wal_keep_size` lets PostgreSQL remove WAL a slot still needs: the slot is
    invalidated (`wal_status = 'lost'`)."""
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    cdc_sync(cdc_source, url)
    _changes(cdc_source, 1)
    admin = cdc_source.cluster.conninfo()
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute("alter system set max_slot_wal_keep_size = '1MB'")
        conn.execute("select pg_reload_conf()")
        try:
            for _ in range(40):
                cdc_source.execute("create table if not exists wal_filler (x text)",
                                   "insert into wal_filler select repeat('x', 1000) "
                                   "from generate_series(1, 2000)")
                conn.execute("select pg_switch_wal()")
                conn.execute("checkpoint")
                if cdc_source.slot()[1] == "lost":
                    break
        finally:
            conn.execute("alter system reset max_slot_wal_keep_size")
            conn.execute("select pg_reload_conf()")
    assert cdc_source.slot()[1] == "lost"
    report = cdc_sync(cdc_source, url)
    assert any("invalidated" in w and "full resync" in w for w in report.warnings)
    assert set(report.load_kind.values()) == {"full"}
    assert_raw_equals(cdc_source, url)
    assert cdc_source.slot()[1] != "lost"


def test_cdc_slot_follows_the_erp_while_only_other_tables_change(cdc_source: CdcSource,
                                                                 tmp_path: Path) -> None:
    """An ERP is busy outside the CRM tables: the slot must still move on with its WAL,
    or the ERP keeps every byte of it and each peek decodes it all again."""
    url = f"duckdb:///{tmp_path}/wh.duckdb"
    cdc_sync(cdc_source, url)
    _changes(cdc_source, 1)
    cdc_sync(cdc_source, url)
    # Two halves of ledger writes, each followed by a record of running transactions (the
    # server writes one about every 15 s, and at each checkpoint): the first record after
    # the slot's position lies amid the ledger's WAL.
    cdc_source.execute("create table ledger_entries (id bigint primary key, memo text)")
    with psycopg.connect(cdc_source.cluster.conninfo(cdc_source.db), autocommit=True) as conn:
        for half in range(2):
            conn.execute(f"insert into ledger_entries select g, repeat('x', 200) from "
                         f"generate_series({half * 20000 + 1}, {(half + 1) * 20000}) g")
            conn.execute("checkpoint")
        written = lsn_int(conn.execute("select pg_current_wal_flush_lsn()::text").fetchone()[0])
        report = cdc_sync(cdc_source, url)
        assert set(report.load_kind.values()) == {"unchanged"}
        assert sum(report.rows_read.values()) == 0
        status = slot_status(conn, SLOT, "public")
    assert status.confirmed_lsn >= written
    # Neither half of the ledger's 10 MB of WAL is kept: the restart point is past both
    # (`retained_bytes` is the current WAL position less the restart point).
    assert status.retained_bytes < 1 << 20
    # The changes after it are applied as before.
    _changes(cdc_source, 2)
    report = cdc_sync(cdc_source, url)
    assert report.changes_applied["contacts"] == 4
    assert_raw_equals(cdc_source, url)


@pytest.mark.parametrize("point", ["before-commit", "before-advance"])
def test_cdc_sync_killed_converges_without_loss_or_double_apply(
        cdc_source: CdcSource, warehouse_url: str, tmp_path: Path, point: str) -> None:
    cdc_sync(cdc_source, warehouse_url)
    _changes(cdc_source, 1)
    slot_before = cdc_source.slot()
    killed = run(["sync"], ROOT, cdc_source.env(warehouse_url), prefix=None,
                 cli=[sys.executable, *KILLED, point])
    assert killed.returncode == -9, killed.stderr
    assert cdc_source.slot() == slot_before  # never advanced
    if point == "before-commit":
        assert raw_digest(warehouse_url, "crm_deals")[1] == 1  # nothing of it stayed
    _changes(cdc_source, 2)
    report = cdc_sync(cdc_source, warehouse_url)
    assert_raw_equals(cdc_source, warehouse_url)
    if point == "before-advance":
        # Round 1 is in the warehouse already: only round 2's rows are applied (a lead,
        # a deal, 3 updated + 1 inserted contacts), nothing twice.
        assert report.changes_applied["contacts"] == 4
    assert cdc_source.slot() != slot_before
    report = cdc_sync(cdc_source, warehouse_url)
    assert sum(report.rows_read.values()) == 0


def test_cdc_privileges_named_in_one_line(cdc_source: CdcSource, tmp_path: Path) -> None:
    admin = cdc_source.cluster.conninfo(cdc_source.db)
    with psycopg.connect(admin, autocommit=True) as conn:
        for role, extra in (("crm_cdc_plain", ""), ("crm_cdc_repl", " replication")):
            conn.execute(f"drop role if exists {role}")
            conn.execute(f"create role {role} login{extra}")
            conn.execute(f"grant select on all tables in schema public to {role}")
    wh = f"duckdb:///{tmp_path}/wh.duckdb"
    plain = cdc_source.env(wh, CRM_SOURCE_URL=cdc_source.cluster.url(cdc_source.db,
                                                                     user="crm_cdc_plain"))
    proc = crm(["cdc", "setup"], tmp_path, **plain)
    assert_one_line_error(proc, "role crm_cdc_plain lacks", "REPLICATION",
                          f"CREATE on database {cdc_source.db}", "ownership of table(s)")
    proc = crm(["sync"], tmp_path, **plain)  # the sync sets up the same way
    assert_one_line_error(proc, "REPLICATION")
    repl = cdc_source.env(wh, CRM_SOURCE_URL=cdc_source.cluster.url(cdc_source.db,
                                                                    user="crm_cdc_repl"))
    line = assert_one_line_error(crm(["cdc", "setup"], tmp_path, **repl), "ownership")
    assert "REPLICATION" not in line
    assert cdc_source.slot() is None  # nothing half made


def test_cdc_commands_setup_status_drop(cdc_source: CdcSource, tmp_path: Path) -> None:
    env = cdc_source.env(f"duckdb:///{tmp_path}/wh.duckdb")
    proc = crm(["cdc", "status"], tmp_path, **env)
    assert proc.returncode == 0 and "absent" in proc.stdout
    proc = crm(["cdc", "setup"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    assert f"created replication slot {SLOT}" in proc.stdout
    assert f"{len(SOURCE_TABLES)} tables" in proc.stdout
    proc = crm(["cdc", "status"], tmp_path, **env)
    assert "retains" in proc.stdout and "confirmed up to" in proc.stdout
    proc = crm(["cdc", "drop"], tmp_path, **env)
    assert proc.returncode == 0 and "dropped replication slot" in proc.stdout
    assert cdc_source.slot() is None


def test_cdc_mode_needs_a_postgresql_source(tmp_path: Path) -> None:
    (tmp_path / "erp.sqlite").touch()  # the file exists: the mode is what is refused
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=f"sqlite:///{tmp_path}/erp.sqlite",
               CRM_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb", CRM_SYNC_MODE="cdc")
    assert_one_line_error(proc, "CRM_SYNC_MODE=cdc needs a PostgreSQL source",
                          "CRM_SOURCE_URL is sqlite")


def test_cdc_mode_is_validated(tmp_path: Path) -> None:
    proc = crm(["sync"], tmp_path, CRM_SYNC_MODE="stream")
    assert_one_line_error(proc, "CRM_SYNC_MODE must be one of readonly, cdc")


def test_cdc_retained_wal_check_warns_above_the_threshold(
        cdc_source: CdcSource, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from orchestration.checks import cdc_retained_wal
    from orchestration.resources import CrmSettingsResource

    for name, value in cdc_source.env(f"duckdb:///{tmp_path}/wh.duckdb").items():
        monkeypatch.setenv(name, value)
    monkeypatch.chdir(tmp_path)
    result = cdc_retained_wal(crm=CrmSettingsResource())
    assert not result.passed and result.metadata["slot_usable"].value is False  # no slot yet
    assert result.metadata["summary"].value == (
        f"replication slot {SLOT} is missing or lost on the ERP")
    assert crm(["cdc", "setup"], tmp_path, **cdc_source.env("duckdb:///x.duckdb")
               ).returncode == 0
    _changes(cdc_source, 1)
    monkeypatch.setenv("CRM_CDC_RETAINED_WAL_WARN", "1K")
    result = cdc_retained_wal(crm=CrmSettingsResource())
    assert not result.passed
    assert result.metadata["retained_wal_bytes"].value > 1024
    assert result.metadata["summary"].value == (
        f"replication slot {SLOT} keeps {result.metadata['retained_wal_bytes'].value:,} bytes "
        "of WAL on the ERP (above CRM_CDC_RETAINED_WAL_WARN, 1,024)")
    monkeypatch.setenv("CRM_CDC_RETAINED_WAL_WARN", "1GB")
    assert cdc_retained_wal(crm=CrmSettingsResource()).passed
    monkeypatch.setenv("CRM_SYNC_MODE", "readonly")
    assert cdc_retained_wal(crm=CrmSettingsResource()).passed


def test_cdc_settings_are_parsed(tmp_path: Path) -> None:
    from crm_core.errors import CrmError
    from crm_core.settings import Settings

    settings = Settings.from_env({"CRM_SYNC_MODE": "CDC", "CRM_CDC_SLOT": "erp_one",
                                  "CRM_CDC_RETAINED_WAL_WARN": "512MB"}, cwd=tmp_path)
    assert (settings.sync_mode, settings.cdc_slot, settings.cdc_retained_wal_warn) == (
        "cdc", "erp_one", 512 * 1024 * 1024)
    assert Settings.from_env({}, cwd=tmp_path).sync_mode == "readonly"
    for bad in ({"CRM_CDC_SLOT": "Bad-Name"}, {"CRM_CDC_RETAINED_WAL_WARN": "lots"},
                {"CRM_CDC_RETAINED_WAL_WARN": "0"}):
        with pytest.raises(CrmError, match=next(iter(bad))):
            Settings.from_env(bad, cwd=tmp_path)
