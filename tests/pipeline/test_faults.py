"""Faults (RELIABILITY.md): the real `crm-analytics` meets a dead source, a statement timeout, a
warehouse file another process holds, an unreadable landing folder, a full disk, SIGKILL
between loading a day's events and recording them and between dbt models, a dbt model that
errors, and two runs at once. Each case asserts its outcome, and each ends with the warehouse
equal to what one clean run over the same source and events gives (`tests/helpers/faults.py`:
`raw`, the event tables and the contract marts, row for row).

Several cases share one warehouse in sequence where the fault leaves the last good state
untouched (checked at every step): a run costs 30-60 s here, and one convergence run at the end
then proves the next run converges from each of them. Every case that needs full pipeline runs
is marked `soak` (`make soak`) to keep `make test` within its time budget; the statement
timeout (sync only) runs in `make test`.
"""

from __future__ import annotations

import os
import re
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest

from crm_core.serving_copy import serving_path
from crm_core.urls import parse_warehouse_url
from ingestion.warehouse import open_warehouse
from tests.helpers.cli import CLI, PASSWORD, assert_one_line_error
from tests.helpers.faults import (
    DAY,
    KILLED_BEFORE_MANIFEST,
    PREVIOUS_DAY,
    FaultWorld,
    assert_no_duplicate_events,
    assert_same_state,
    descendants,
    duckdb_writer_held,
    env_for,
    events_subset,
    kill,
    overflow_numeric,
    run,
    start,
    wait_gone,
    warehouse_state,
)
from tests.helpers.postgres import pg_url
from tests.helpers.sync import all_raw, assert_raw_equals_source, source_exec, write_source

RUN = ["run", "--date", DAY.isoformat()]


def _serving(wh_file: Path) -> tuple[str, str]:
    """Which serving copy the dashboards' symlink points at, and that copy's contract marts."""
    link = serving_path(wh_file)
    target = os.readlink(link)
    state = warehouse_state(f"duckdb:///{link.parent / target}")
    return target, repr(sorted(state.items()))


def _pipeline_runs(wh_file: Path) -> list[tuple]:
    import duckdb

    con = duckdb.connect(str(wh_file), read_only=True)
    try:
        return con.execute("select run_id, as_of_date from meta.pipeline_runs order by 1"
                           ).fetchall()
    finally:
        con.close()


# --------------------------------------------------------------------------------------------
# Faults before anything is committed, on one warehouse file on a small tmpfs


@pytest.fixture
def small_disk(tmp_path: Path) -> Iterator[Path]:
    """A size-limited tmpfs mounted for this test (root only), unmounted afterwards."""
    mount = tmp_path / "disk"
    mount.mkdir()
    proc = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256m", "tmpfs", str(mount)],
                          capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here (needs root): {proc.stderr.strip()}")
    try:
        yield mount
    finally:
        if subprocess.run(["umount", str(mount)], check=False).returncode != 0:
            subprocess.run(["umount", "-l", str(mount)], check=False)


def _resize(mount: Path, size: str) -> None:
    subprocess.run(["mount", "-o", f"remount,size={size}", str(mount)], check=True)


def _used_bytes(mount: Path) -> int:
    stat = os.statvfs(mount)
    return (stat.f_blocks - stat.f_bfree) * stat.f_frsize


NO_DAC = ["setpriv", "--inh-caps=-all", "--ambient-caps=-all",
          "--bounding-set=-dac_override,-dac_read_search", "--"]


def _no_dac_works(tmp_path: Path) -> str | None:
    """None when a process started through `NO_DAC` really cannot read a mode-000 file."""
    if shutil.which("setpriv") is None:
        return "setpriv (util-linux) is not installed"
    probe = tmp_path / "probe"
    probe.write_text("secret")
    probe.chmod(0)
    proc = subprocess.run(NO_DAC + ["cat", str(probe)], capture_output=True, text=True,
                          check=False)
    probe.chmod(0o600)
    if proc.returncode == 0:
        return "this process can read a mode-000 file even without CAP_DAC_OVERRIDE"
    if "Permission denied" not in proc.stderr:
        return f"setpriv cannot drop capabilities here: {proc.stderr.strip()}"
    return None


@pytest.mark.soak  # with its fixture, three full runs (~7 min on this loaded machine)
def test_faults_before_commit_leave_the_last_good_state_and_the_next_run_converges(
        fault_world: FaultWorld, small_disk: Path, tmp_path: Path) -> None:
    """On one copy of the last good warehouse (on a tmpfs), in turn: the source unreachable at
    start; the DuckDB file held open by another process; a landing folder unreadable; the disk
    full during the load; SIGKILL between a day's event rows and their manifest. Each is a
    one-line error (or the kill) and leaves what it would have changed as it was; then one run
    converges to the clean run's warehouse, with no duplicate and no lost event."""
    world = fault_world
    wh_file = world.copy_previous(small_disk)
    wh_url = f"duckdb:///{wh_file}"
    events = tmp_path / "events"
    shutil.copytree(world.events, events)
    env = world.env(wh_url, CRM_EVENTS_PATH=str(events))
    serving_before = _serving(wh_file)
    runs_before = _pipeline_runs(wh_file)

    def unchanged(what: str) -> None:
        assert_same_state(warehouse_state(wh_url), world.previous_state, what)
        assert _serving(wh_file) == serving_before, f"{what}: serving copy republished"
        assert _pipeline_runs(wh_file) == runs_before, f"{what}: a run was recorded"

    # 1. Source unreachable at start (with a password in its URL, never shown).
    dead = f"postgresql+psycopg://erp:{PASSWORD}@127.0.0.1:1/erp"
    proc = run(RUN, tmp_path, {**env, "CRM_SOURCE_URL": dead})
    assert_one_line_error(proc, "step erp_tables failed", "is unreachable", "erp:***@")
    unchanged("source unreachable")

    # 2. The warehouse file held open by another process's DuckDB write connection.
    with duckdb_writer_held(wh_file) as holder:
        proc = run(RUN, tmp_path, env)
        line = assert_one_line_error(proc, "cannot be opened for writing", str(wh_file))
        assert "lock" in line.lower() and str(holder) in line, line
    unchanged("warehouse held open")

    # 3. The day's landing folder unreadable: the pipeline runs without CAP_DAC_OVERRIDE /
    #    CAP_DAC_READ_SEARCH (we are root, for whom chmod alone stops nothing).
    reason = _no_dac_works(tmp_path)
    if reason is None:
        folder = events / DAY.isoformat()
        folder.chmod(0)
        try:
            proc = run(RUN, tmp_path, env, prefix=NO_DAC)
        finally:
            folder.chmod(0o755)
        assert_one_line_error(proc, "step campaign_event_files failed", str(folder),
                              "Permission denied")
        unchanged("landing folder unreadable")

    # 4. The disk fills up during the load: room for barely more than the file already there.
    _resize(small_disk, str(_used_bytes(small_disk) + (256 << 10)))
    proc = run(RUN, tmp_path, env)
    _resize(small_disk, "256m")
    assert_one_line_error(proc, "No space left on device")
    unchanged("disk full")  # the file on the full disk opens and holds the last good state

    # 5. SIGKILL between loading the day's events and recording them in the manifest (the
    #    process kills itself there: tests/helpers/killed_cli.py).
    proc = run(RUN, tmp_path, env, cli=KILLED_BEFORE_MANIFEST)
    assert proc.returncode == -9, proc.stderr
    unchanged("killed between event rows and manifest")

    # Then one run converges: equal to the clean run, nothing loaded twice, nothing lost.
    proc = run(RUN, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    state = warehouse_state(wh_url)
    assert_same_state(state, world.reference_state, "after the faults, the next run")
    assert_no_duplicate_events(state)
    assert _serving(wh_file)[1] == _serving(world.reference / "wh.duckdb")[1]
    if reason is not None:
        pytest.skip(f"all but the unreadable landing folder passed; that case: {reason}")


# --------------------------------------------------------------------------------------------
# A dbt model that errors, SIGKILL between dbt models, two runs at once (DuckDB)


@pytest.mark.soak  # three full runs (~4 min on a loaded 2-core machine): `make soak`
def test_dbt_failing_halfway_then_killed_between_models_then_two_runs_at_once(
        fault_world: FaultWorld, tmp_path: Path) -> None:
    """(a) A model errors: the run's one line names it; the marts downstream of it keep their
    last good content while the others move on; the dashboards' serving copy is not
    republished and no run is recorded. (b) The source is fixed and the next run is SIGKILLed
    between dbt models: dbt dies with it (no orphan keeps writing). (c) Two runs are started at
    once for the day: one is refused, the other converges to the clean run's warehouse."""
    world = fault_world
    wh_file = world.copy_previous(tmp_path / "wh")
    wh_url = f"duckdb:///{wh_file}"
    source = tmp_path / "erp.sqlite"
    shutil.copy(world.source_file, source)
    env = world.env(wh_url, CRM_SOURCE_URL=f"sqlite:///{source}")
    serving_before = _serving(wh_file)
    runs_before = _pipeline_runs(wh_file)

    # (a) dbt fails halfway.
    # An ERP migration widened `contact_accounts.account_balance` and a balance now exceeds
    # the ERD's DECIMAL(14,2): the sync lands it, and the staging model's cast fails when a
    # model reads it.
    overflow_numeric(source, "contact_accounts", "account_balance")
    proc = run(RUN, tmp_path, env)
    line = assert_one_line_error(proc, "step crm_dbt_models failed", "v_crm_contact_summary")
    assert "DECIMAL(14,2)" in line or "decimal" in line.lower(), line
    state = warehouse_state(wh_url)
    for mart in ("v_crm_contact_summary",):  # downstream of the failed cast: last good content
        assert state[f"marts.{mart}"] == world.previous_state[f"marts.{mart}"], mart
    # ... while the marts that do not read it were rebuilt with the new day (the fixture checks
    # that at least one of them changed between the two days).
    for mart in ("v_crm_pipeline_summary", "v_crm_campaign_performance", "v_crm_lead_conversion"):
        assert state[f"marts.{mart}"] == world.reference_state[f"marts.{mart}"], mart
    assert _serving(wh_file) == serving_before, "serving copy republished from a failed run"
    assert _pipeline_runs(wh_file) == runs_before, "a failed run was recorded as successful"

    # (b) Fixed source; the next run is killed right after dbt built its first mart.
    shutil.copy(world.source_file, source)
    proc = start(RUN + ["--verbose"], tmp_path, env)
    assert proc.stdout is not None
    seen = []
    for text in proc.stdout:
        seen.append(text)
        if re.search(r"OK created sql \w+ model marts\.", text):
            break
    children = descendants(proc.pid)
    assert any("OK created sql" in s for s in seen), "".join(seen[-20:])
    kill(proc)
    assert not wait_gone(children), "dbt outlived the killed pipeline process"

    # (c) Two runs at once for the same day.
    two_runs_at_once(tmp_path, env)
    state = warehouse_state(wh_url)
    assert_same_state(state, world.reference_state, "after the kill, the run that went ahead")
    assert_no_duplicate_events(state)
    assert _serving(wh_file)[1] == _serving(world.reference / "wh.duckdb")[1]


# --------------------------------------------------------------------------------------------
# PostgreSQL warehouse: SIGKILL between event rows and manifest held there by a real lock; then
# two runs at once


@pytest.mark.soak  # two full runs on PostgreSQL: `make soak`
@pytest.mark.postgres
def test_postgres_killed_between_event_rows_and_manifest_then_two_runs_at_once(
        fault_world: FaultWorld, make_pg_database, tmp_path: Path) -> None:
    """The test holds a SHARE lock on `raw.event_files` (reads pass, writes wait), so the real
    run blocks exactly where it records the day's files, after inserting their events; it is
    SIGKILLed there. The event tables are as they were. Two runs are then started at once: one
    is refused, the other builds a warehouse equal to the clean (DuckDB) run's."""
    from ingestion.events.files import load_events

    world = fault_world
    wh_db = make_pg_database("crm_faults_wh")
    wh_url = pg_url(wh_db, driver="postgresql")
    env = world.env(wh_url)
    # Last good state: the event tables hold everything up to the day before.
    wh = open_warehouse(parse_warehouse_url(wh_url, tmp_path))
    try:
        load_events(world.events, wh, as_of=PREVIOUS_DAY)
    finally:
        wh.close()
    before = events_subset(warehouse_state(wh_url))
    assert before == events_subset(world.previous_state)

    with psycopg.connect(wh_url) as locker, psycopg.connect(wh_url, autocommit=True) as admin:
        locker.execute("lock table raw.event_files in share mode")
        proc = start(RUN, tmp_path, env)
        blocked: list[tuple] = []
        deadline = time.monotonic() + 300
        while not blocked and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.2)
            blocked = admin.execute(
                "select pid from pg_stat_activity where datname = current_database() "
                "and wait_event_type = 'Lock' and query ilike 'copy%event_files%'").fetchall()
        # The blocked transaction has already written the day's events: it holds the row lock
        # that inserting into raw.campaign_events takes.
        wrote_events = blocked and admin.execute(
            "select 1 from pg_locks l join pg_class c on c.oid = l.relation "
            "join pg_namespace n on n.oid = c.relnamespace where l.pid = %s and l.granted "
            "and n.nspname = 'raw' and c.relname = 'campaign_events' "
            "and l.mode = 'RowExclusiveLock'", [blocked[0][0]]).fetchall()
        if proc.poll() is None:
            kill(proc)
        locker.rollback()
    assert blocked, "the run never waited to record its files"
    assert wrote_events, "the blocked run had not inserted events"
    assert events_subset(warehouse_state(wh_url)) == before

    two_runs_at_once(tmp_path, env)
    state = warehouse_state(wh_url)
    assert_same_state(state, world.reference_state, "PostgreSQL, after the kill")
    assert_no_duplicate_events(state)


def two_runs_at_once(tmp_path: Path, env: dict[str, str]) -> None:
    """Start two runs for the same day at once: one finishes, the other is refused with the
    run lock's one-line error."""
    first, second = start(RUN, tmp_path, env), start(RUN, tmp_path, env)
    results = [p.communicate(timeout=600) + (p.returncode,) for p in (first, second)]
    assert sorted(r[2] for r in results) == [0, 1], results
    refused = next(subprocess.CompletedProcess([], r[2], r[0], r[1]) for r in results
                   if r[2] == 1)
    assert_one_line_error(refused, "another pipeline run is writing")


# --------------------------------------------------------------------------------------------
# Statement timeout on the source


@pytest.mark.postgres
@pytest.mark.parametrize("warehouse", ["duckdb", "postgres"])
def test_statement_timeout_names_the_table_and_the_timeout(
        warehouse: str, make_pg_database, tmp_path: Path) -> None:
    """A lock the test holds on `crm_deals` outlasts a 1 s statement timeout: one line naming
    the table and the timeout, non-zero exit, `raw` untouched; released, the next sync
    converges to the source."""
    source_db = make_pg_database("crm_src")
    write_source(pg_url(source_db))
    wh_url = (f"duckdb:///{tmp_path}/wh.duckdb" if warehouse == "duckdb"
              else pg_url(make_pg_database("crm_wh"), driver="postgresql"))
    env = {"CRM_SOURCE_URL": pg_url(source_db), "CRM_WAREHOUSE_URL": wh_url}
    assert run(["sync"], tmp_path, env).returncode == 0
    source_exec(source_db, "update crm_leads set value = 1.00, updated_at = now()",
                "update crm_deals set amount = amount + 1, updated_at = now()")
    before = all_raw(wh_url)
    dsn = pg_url(source_db, driver="postgresql")
    with psycopg.connect(dsn) as locker:
        locker.execute("lock table crm_deals in access exclusive mode")
        proc = run(["sync"], tmp_path, {**env, "CRM_SOURCE_STATEMENT_TIMEOUT": "1s"},
                   timeout=120)
        locker.rollback()
    line = assert_one_line_error(proc, "source table crm_deals", "statement timeout",
                                 "CRM_SOURCE_STATEMENT_TIMEOUT", "is 1s")
    assert "canceling statement" in line, line
    assert all_raw(wh_url) == before
    assert run(["sync"], tmp_path, env).returncode == 0
    assert_raw_equals_source(source_db, wh_url)


# --------------------------------------------------------------------------------------------
# Ctrl-C during dbt (DuckDB)


@pytest.mark.soak  # two full runs
def test_ctrl_c_during_dbt_is_one_line_and_the_next_run_converges(
        fault_world: FaultWorld, tmp_path: Path) -> None:
    """Ctrl-C while dbt builds (SIGINT to the command's whole process group, as a terminal
    sends it): one line, `error: interrupted`, exit 130, whatever Dagster made of the
    KeyboardInterrupt, and no traceback from a helper process; dbt and the helpers stop; no
    run is recorded and the serving copy is not republished; the next run converges to the
    clean run's warehouse."""
    world = fault_world
    wh_file = world.copy_previous(tmp_path / "wh")
    wh_url = f"duckdb:///{wh_file}"
    env = world.env(wh_url)
    serving_before = _serving(wh_file)
    runs_before = _pipeline_runs(wh_file)
    # its own process group, which the Ctrl-C reaches whole, as a terminal's does
    proc = subprocess.Popen(CLI + RUN, cwd=tmp_path, env=env_for(env), stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, process_group=0)
    deadline = time.monotonic() + 300
    while not _dbt_building(proc.pid):
        assert proc.poll() is None, proc.communicate()
        assert time.monotonic() < deadline, "dbt never started"
        time.sleep(0.2)
    time.sleep(3)  # into the build
    helpers = descendants(proc.pid)
    os.killpg(proc.pid, signal.SIGINT)
    _, err = proc.communicate(timeout=180)
    assert proc.returncode == 130, err
    assert err.strip().splitlines() == ["error: interrupted"], err
    assert not wait_gone(helpers, 30), "a helper outlived the interrupted run"
    assert _serving(wh_file) == serving_before, "serving copy republished from an interrupted run"
    assert _pipeline_runs(wh_file) == runs_before, "an interrupted run was recorded"

    proc = run(RUN, tmp_path, env)
    assert proc.returncode == 0, proc.stderr
    state = warehouse_state(wh_url)
    assert_same_state(state, world.reference_state, "the run after Ctrl-C")
    assert_no_duplicate_events(state)


def _dbt_building(pid: int) -> bool:
    """Whether a `dbt build` runs among the process's descendants."""
    for child in descendants(pid):
        try:
            argv = Path(f"/proc/{child}/cmdline").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"build" in argv and any(b"dbt" in part for part in argv):
            return True
    return False
