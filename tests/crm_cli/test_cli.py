"""The `crm-analytics` command as a user types it: help texts, and every user error as one line
naming the problem, a non-zero exit, no password, and nothing half-written."""

import shutil
from pathlib import Path

import duckdb
import pytest
import sqlalchemy as sa

from ingestion.erp.schema import REQUIRED_TABLES, build_metadata
from tests.helpers.cli import PASSWORD, assert_one_line_error, clean_env, crm


def _sqlite_source(path: Path, skip: tuple[str, ...] = ()) -> str:
    engine = sa.create_engine(f"sqlite:///{path}")
    md = build_metadata()
    with engine.begin() as conn:
        for table in md.sorted_tables:
            if table.name not in skip:
                table.create(conn)
    engine.dispose()
    return f"sqlite:///{path}"


@pytest.mark.parametrize("command", ["", "generate", "run", "sync", "demo", "roles", "dashboard",
                                     "digest"])
def test_every_command_has_help(command: str, tmp_path: Path) -> None:
    proc = crm([command, "--help"] if command else ["--help"], tmp_path)
    assert proc.returncode == 0 and "usage: crm-analytics" in proc.stdout


def test_malformed_source_url(tmp_path: Path) -> None:
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL="not a url")
    assert_one_line_error(proc, "CRM_SOURCE_URL: malformed URL")


def test_unreachable_source_never_shows_the_password(tmp_path: Path) -> None:
    url = f"postgresql+psycopg://erp:{PASSWORD}@127.0.0.1:1/erp"
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=url)
    assert_one_line_error(proc, "is unreachable", "erp:***@127.0.0.1:1")
    assert not (tmp_path / "data" / "warehouse.duckdb").exists() or _raw_tables(tmp_path) == 0


def test_missing_required_table_writes_nothing(tmp_path: Path) -> None:
    src = _sqlite_source(tmp_path / "erp.sqlite", skip=("crm_campaigns",))
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=src)
    assert_one_line_error(proc, "missing required table(s): crm_campaigns")
    assert _raw_tables(tmp_path) == 0


def test_unwritable_warehouse(tmp_path: Path) -> None:
    src = _sqlite_source(tmp_path / "erp.sqlite")
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("a file where the warehouse folder should be")
    proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=src,
               CRM_WAREHOUSE_URL=f"duckdb:///{blocker}/wh.duckdb")
    assert_one_line_error(proc, "cannot be opened for writing")


def test_malformed_warehouse_url_with_password(tmp_path: Path) -> None:
    proc = crm(["sync"], tmp_path, CRM_WAREHOUSE_URL=f"mysql://u:{PASSWORD}@h/db")
    assert_one_line_error(proc, "CRM_WAREHOUSE_URL: unsupported scheme 'mysql'", "u:***@h")


def test_run_names_the_failed_step(tmp_path: Path) -> None:
    src = _sqlite_source(tmp_path / "erp.sqlite", skip=("contacts",))
    proc = crm(["run", "--date", "2026-03-01"], tmp_path, CRM_SOURCE_URL=src)
    assert_one_line_error(proc, "step erp_tables failed", "missing required table(s): contacts")


def test_run_rejects_a_bad_date(tmp_path: Path) -> None:
    proc = crm(["run", "--date", "2026-02-30"], tmp_path)
    assert proc.returncode == 2 and "is not a date" in proc.stderr


def _raw_tables(cwd: Path) -> int:
    path = cwd / "data" / "warehouse.duckdb"
    if not path.exists():
        return 0
    con = duckdb.connect(str(path), read_only=True)
    try:
        return con.execute("select count(*) from information_schema.tables "
                           "where table_schema = 'raw'").fetchone()[0]
    finally:
        con.close()


def test_required_tables_match_the_contract() -> None:
    assert REQUIRED_TABLES == ("customer_groups", "contacts", "contact_accounts", "crm_leads",
                               "crm_pipeline_stages", "crm_deals", "crm_campaigns",
                               "crm_campaign_performance")


def test_a_second_writer_is_refused_while_a_run_holds_the_warehouse(tmp_path: Path) -> None:
    from crm_core.urls import parse_warehouse_url
    from orchestration.run_lock import warehouse_write_lock

    src = _sqlite_source(tmp_path / "erp.sqlite")
    target = parse_warehouse_url("duckdb:///data/warehouse.duckdb", tmp_path)
    with warehouse_write_lock(target):
        proc = crm(["sync"], tmp_path, CRM_SOURCE_URL=src)
        assert_one_line_error(proc, "another pipeline run is writing")
    assert crm(["sync"], tmp_path, CRM_SOURCE_URL=src).returncode == 0


@pytest.mark.slow
def test_demo_on_the_embedded_defaults_prints_the_headline_numbers(tmp_path: Path) -> None:
    """What a newcomer sees after `make demo`: numbers, the dashboards hint, and nothing else
    on stderr; a second demo reuses the data it generated."""
    first = crm(["demo", "--date", "2026-11-01"], tmp_path)
    assert first.returncode == 0, first.stderr
    assert first.stderr.strip() == "", first.stderr
    assert "generating the demo ERP" in first.stdout
    labels = ["Open pipeline", "Won revenue", "Win rate (count)", "Lead qualification rate",
              "Campaign revenue", "Campaign spend", "Campaign ROI"]
    lines = {ln.strip().rsplit("  ", 1)[0].strip(): ln.split()[-1]
             for ln in first.stdout.splitlines() if ln.startswith("  ")}
    assert list(lines) == labels
    assert all(v[0].isdigit() for v in lines.values()), lines
    # the hint names a command this shell can run (the virtualenv need not be on PATH)
    hint = next(ln for ln in first.stdout.splitlines() if ln.startswith("Open the dashboards:"))
    command = hint.split()[3]
    assert shutil.which(command, path=clean_env()["PATH"]) or Path(command).is_file(), hint
    assert Path(command).name == "crm-analytics"
    assert "warning" not in first.stdout  # today's landing folder was generated
    assert (tmp_path / "data" / "erp_demo.sqlite").is_file()
    assert (tmp_path / "data" / "warehouse.duckdb").is_file()
    # days later: the demo data is old, and the run's warning says so
    (tmp_path / "no_new_files").mkdir()
    again = crm(["demo", "--date", "2026-11-01"], tmp_path,
                CRM_EVENTS_PATH=str(tmp_path / "no_new_files"), CRM_LANDING_DEADLINE_HOUR="0")
    assert again.returncode == 0 and "generating" not in again.stdout
    assert ("warning: raw/campaign_events: check landing_freshness warned: no landing folder "
            f"{tmp_path / 'no_new_files'}") in again.stdout
    assert again.stdout.split("\n\n")[1] == first.stdout.split("\n\n")[1]  # same numbers
