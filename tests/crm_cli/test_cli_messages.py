"""What `crm-analytics` (the installed console script) says, as a user sees it: one line per
finished step with numbers counted here independently, a live display on a terminal, silence
under --quiet, --version and the configuration in --help; errors that say what to do; the
dashboards' and Dagster's servers on safe addresses and busy ports as one line."""

from __future__ import annotations

import gzip
import json
import os
import pty
import re
import select
import signal
import socket
import sqlite3
import subprocess
import time
from collections.abc import Callable
from importlib.metadata import version
from pathlib import Path

import psycopg
import pytest
import sqlalchemy as sa

from crm_core.settings import DEFAULTS, PROJECT_ROOT
from ingestion.erp.schema import SOURCE_TABLES, build_metadata
from tests.helpers.cli import (
    CRM_SCRIPT,
    PASSWORD,
    RunWorld,
    assert_one_line_error,
    clean_env,
    crm_script,
    free_port,
    listening_addresses,
)
from tests.helpers.spark import require_spark

STEP_LINE = re.compile(r"^(sync|events|dbt): (.*) \((\d+\.\d)s\)$")


def _step_lines(stdout: str) -> dict[str, str]:
    return {m[1]: m[2] for m in map(STEP_LINE.match, stdout.splitlines()) if m}


def _landing_counts(events: Path) -> tuple[int, int, int]:
    """(folders, files, lines) of the event files, counted by reading them."""
    folders = files = lines = 0
    for folder in sorted(p for p in events.iterdir() if p.is_dir()):
        names = [p for p in folder.iterdir() if p.name.endswith((".jsonl", ".jsonl.gz"))]
        folders += bool(names)
        for path in names:
            files += 1
            data = path.read_bytes()
            text = gzip.decompress(data) if path.name.endswith(".gz") else data
            lines += len([ln for ln in text.split(b"\n") if ln.strip()])
    return folders, files, lines


@pytest.mark.slow
def test_run_prints_one_line_per_step_with_what_it_did(run_world: RunWorld) -> None:
    out = run_world.run.stdout
    assert run_world.run.stderr.strip() == "", run_world.run.stderr
    steps = _step_lines(out)
    assert list(steps) == ["sync", "events", "dbt"], out  # in the order they finished
    assert out.splitlines()[-1].startswith(f"pipeline run for {run_world.as_of} succeeded")

    with sqlite3.connect(run_world.data / "erp_demo.sqlite") as con:
        present = {r[0] for r in con.execute("select name from sqlite_master where type='table'")}
        rows = sum(con.execute(f'select count(*) from "{t}"').fetchone()[0]
                   for t in SOURCE_TABLES if t in present)
    assert steps["sync"] == f"{len(SOURCE_TABLES)} tables ({len(SOURCE_TABLES)} full), " \
                            f"{rows:,} rows read"

    folders, files, lines = _landing_counts(run_world.data / "landing" / "events")
    import duckdb

    con = duckdb.connect(str(run_world.data / "warehouse.duckdb"), read_only=True)
    try:  # the rejects are the rows the load wrote to raw.rejected_events
        rejected = con.execute("select count(*) from raw.rejected_events").fetchone()[0]
    finally:
        con.close()
    assert rejected > 0  # the generator plants broken lines
    assert steps["events"] == f"{folders} folders, {files} files loaded, {lines:,} lines, " \
                              f"{rejected} rejected"

    manifest = json.loads((PROJECT_ROOT / "target" / "manifest.json").read_text())
    ours = [n for n in manifest["nodes"] if n.split(".")[1] == "crm_analytics"]
    assert manifest.get("unit_tests")  # which the run leaves out: the count below is data tests
    models = sum(n.startswith("model.") for n in ours)
    tests = sum(n.startswith("test.") for n in ours)
    built = re.match(r"(\d+) models built \(\+(\d+) seeds?\); tests: "
                     r"(\d+) passed, (\d+) warned, (\d+) failed$", steps["dbt"])
    assert built, steps["dbt"]
    assert int(built[1]) == models
    assert int(built[2]) == sum(n.startswith("seed.") for n in ours)
    assert int(built[3]) + int(built[4]) == tests and int(built[5]) == 0


def _run_on_a_terminal(args: list[str], cwd: Path) -> tuple[int, str]:
    """Run the console script with a pseudo-terminal as its stdout, as in a shell."""
    leader, follower = pty.openpty()
    proc = subprocess.Popen([CRM_SCRIPT, *args], cwd=cwd, env=clean_env(TERM="xterm"),
                            stdin=subprocess.DEVNULL, stdout=follower, stderr=follower)
    os.close(follower)
    chunks = []
    while True:
        ready, _, _ = select.select([leader], [], [], 1)
        if ready:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        elif proc.poll() is not None:
            break
    os.close(leader)
    return proc.wait(timeout=60), b"".join(chunks).decode(errors="replace")


@pytest.mark.slow
def test_on_a_terminal_long_steps_show_a_progress_display(run_world: RunWorld) -> None:
    code, out = _run_on_a_terminal(["run", "--date", run_world.as_of], run_world.cwd)
    assert code == 0, out
    assert "dbt build: models and tests" in out  # the live display's task
    assert "\x1b[" in out  # drawn with terminal control sequences (rich)
    plain = re.sub(r"\x1b\[[0-9;?]*[A-Za-z]", "", out).replace("\r", "\n")
    assert re.search(rf"^sync: {len(SOURCE_TABLES)} tables \(.*incremental.*\), [\d,]+ rows read "
                     r"\(\d+\.\ds\)", plain, re.M), plain
    assert re.search(r"^events: 0 folders, 0 files loaded, \d+ unchanged", plain, re.M), plain


@pytest.mark.slow
def test_quiet_run_prints_only_the_outcome(run_world: RunWorld) -> None:
    proc = crm_script(["run", "--quiet", "--date", run_world.as_of], run_world.cwd)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.splitlines() == [
        f"pipeline run for {run_world.as_of} succeeded; marts are in "
        f"duckdb:///{run_world.data / 'warehouse.duckdb'} (schema marts)"]


def test_version_and_help_list_the_configuration(tmp_path: Path) -> None:
    proc = crm_script(["--version"], tmp_path)
    assert proc.returncode == 0
    assert proc.stdout.strip() == f"crm-analytics {version('crm-analytics')}"
    helptext = crm_script(["--help"], tmp_path).stdout
    for name, default in DEFAULTS.items():
        at = helptext.index(f"  {name} ")
        meaning, following = helptext[at:].splitlines()[:2]
        assert meaning.strip() != name, f"{name} has no meaning in crm_cli/help.py"
        assert following.strip() == f"default: {default or 'unset'}", following
    assert "DAGSTER_HOME" in helptext and "serve" in helptext


@pytest.mark.parametrize(("variable", "url", "forms"), [
    ("CRM_SOURCE_URL", "sqlit:///x.sqlite", "sqlite:///path/erp.sqlite"),
    ("CRM_WAREHOUSE_URL", "mysql://u:Sup3r-s3cret-pw@h/db", "duckdb:///path/file.duckdb"),
])
def test_an_unknown_url_scheme_lists_the_supported_forms(tmp_path: Path, variable: str,
                                                         url: str, forms: str) -> None:
    proc = crm_script(["run"], tmp_path, **{variable: url})
    scheme = url.split(":", 1)[0]
    assert_one_line_error(proc, f"{variable}: unsupported scheme {scheme!r}",
                          "supported forms:", forms, "postgresql")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize(("command", "why"), [
    ("roles", "creates PostgreSQL roles; on Spark, grant access in the cluster's catalog"),
    ("cdc", "does not drive a Spark warehouse")])
def test_a_spark_warehouse_is_refused_by_the_commands_that_cannot_drive_it(
        tmp_path: Path, command: str, why: str) -> None:
    args = [command, "status"] if command == "cdc" else [command]
    proc = crm_script(args, tmp_path, CRM_WAREHOUSE_URL="spark+session://")
    assert_one_line_error(proc, "spark+session://", f"`crm-analytics {command}", why,
                          "docs/spark.md")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.spark
def test_an_unreachable_spark_thrift_server_is_one_line_without_the_password(
        tmp_path: Path, run_world: RunWorld) -> None:
    """`sync` stages the ERP locally, then publishes `raw` through the Thrift server, which
    is not there: one line names the server, never the password."""
    require_spark(thrift=True)
    port = free_port()
    proc = crm_script(["sync"], tmp_path,
                      CRM_SOURCE_URL=f"sqlite:///{run_world.data}/erp_demo.sqlite",
                      CRM_LAKE_PATH=str(tmp_path / "lake"),
                      CRM_WAREHOUSE_URL=f"spark://etl:Sup3r-s3cret-pw@127.0.0.1:{port}")
    assert_one_line_error(proc, "Spark step `publish` failed",
                          f"cannot reach the Spark Thrift server at 127.0.0.1:{port}")


@pytest.mark.postgres
@pytest.mark.parametrize("variable", ["CRM_WAREHOUSE_URL", "CRM_SOURCE_URL"])
def test_a_missing_postgres_database_says_so_and_suggests_createdb(
        tmp_path: Path, postgres_server: str, variable: str) -> None:
    from tests.helpers.postgres import PG_HOST, PG_PORT, PG_USER, pg_url

    name = f"crm_missing_{os.getpid()}"
    (tmp_path / "erp.sqlite").touch()  # a source file exists: the warehouse is opened first
    env = {"CRM_SOURCE_URL": f"sqlite:///{tmp_path / 'erp.sqlite'}",
           variable: pg_url(name, driver="postgresql")}
    proc = crm_script(["sync"] if variable == "CRM_WAREHOUSE_URL" else ["run"], tmp_path, **env)
    assert_one_line_error(proc, f'database "{name}" does not exist',
                          f"createdb -h {PG_HOST} -p {PG_PORT} -U {PG_USER} {name}")


@pytest.mark.postgres
def test_a_warehouse_role_without_privileges_is_one_line_naming_the_privilege(
        tmp_path: Path, run_world: RunWorld, make_pg_database: Callable[[str], str],
        postgres_server: str) -> None:
    """A role that may log in to the warehouse database but not create anything in it: the
    server's refusal, not an "unexpected" error, and the way to the writer role."""
    from tests.helpers.postgres import PG_HOST, PG_PORT

    name = make_pg_database("crm_wh")
    role = f"crm_weak_{os.getpid()}"
    with psycopg.connect(postgres_server, autocommit=True) as conn:
        conn.execute(f"drop role if exists {role}")
        conn.execute(f"create role {role} login password '{PASSWORD}'")
    try:
        proc = crm_script(
            ["sync"], tmp_path, CRM_SOURCE_URL=f"sqlite:///{run_world.data}/erp_demo.sqlite",
            CRM_WAREHOUSE_URL=f"postgresql://{role}:{PASSWORD}@{PG_HOST}:{PG_PORT}/{name}")
        assert_one_line_error(proc, "the database refused: permission denied for database "
                              f"{name}", "crm-analytics roles")
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as conn:
            conn.execute(f"drop role if exists {role}")


@pytest.mark.parametrize(("literal", "shown"), [("'about 5k'", "'about 5k'"),
                                               ("x'ff00'", "X'FF00'")])
def test_text_in_a_sqlite_number_column_names_the_column_and_value(
        tmp_path: Path, run_world: RunWorld, literal: str, shown: str) -> None:
    """SQLite keeps any value in any column: the one that cannot be a number is named (a
    blob, which is not text, as SQLite writes it)."""
    source = tmp_path / "erp.sqlite"
    source.write_bytes((run_world.data / "erp_demo.sqlite").read_bytes())
    with sqlite3.connect(source) as conn:
        conn.execute(f"update crm_deals set amount = {literal} "
                     "where id = (select max(id) from crm_deals)")
    proc = crm_script(["sync"], tmp_path, CRM_SOURCE_URL=f"sqlite:///{source}",
                      CRM_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb")
    assert_one_line_error(proc, f"source table crm_deals, column amount (value {shown}): "
                          "a value does not match its column type")


@pytest.mark.postgres
def test_a_source_column_of_a_type_sqlalchemy_does_not_know_is_copied_quietly(
        tmp_path: Path, make_pg_database: Callable[[str], str], postgres_server: str) -> None:
    """An ERP column of type `point` (or an extension's type) lands in `raw`, and the sync's
    output stays its one line: no library warning the user cannot act on."""
    import duckdb

    from tests.helpers.postgres import pg_conninfo, pg_url

    name = make_pg_database("crm_src")
    source = pg_url(name)
    assert crm_script(["generate", "--scale", "small"], tmp_path,
                      CRM_SOURCE_URL=source).returncode == 0
    with psycopg.connect(pg_conninfo(name), autocommit=True) as conn:
        conn.execute("alter table contacts add column location point")
        conn.execute("update contacts set location = point(1.5, 2) where id = 1")
    proc = crm_script(["sync"], tmp_path, CRM_SOURCE_URL=source,
                      CRM_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb")
    assert proc.returncode == 0 and proc.stderr == "", proc.stderr
    with duckdb.connect(str(tmp_path / "wh.duckdb"), read_only=True) as wh:
        assert wh.execute("select location.x, location.y from raw.contacts "
                          "where id = 1").fetchall() == [(1.5, 2.0)]


@pytest.mark.parametrize(("yaml", "problem"), [
    ("run_storage: [broken\n  x: : :\n", "expected ',' or ']', but got ':' at line 2"),
    ("run_storage: 5\n", "Value at path root:run_storage must be dict"),
    ("run_storage:\n  module: no_such_module\n  class: Storage\n",
     "Couldn't import module no_such_module"),
    # the refused value is a password: the path is named, the value is not
    ("storage:\n  postgres:\n    postgres_db:\n      username: u\n"
     "      password: 918273645\n"
     "      hostname: h\n      db_name: d\n",
     "Invalid scalar at path root:storage:postgres:postgres_db:password. The value, of type"),
])
def test_a_broken_dagster_yaml_is_one_line_naming_the_file(tmp_path: Path, run_world: RunWorld,
                                                           yaml: str, problem: str) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text(yaml)
    proc = crm_script(["run"], tmp_path, DAGSTER_HOME=str(home),
                      CRM_SOURCE_URL=f"sqlite:///{run_world.data}/erp_demo.sqlite",
                      CRM_WAREHOUSE_URL=f"duckdb:///{tmp_path}/wh.duckdb")
    assert_one_line_error(proc, f"the Dagster instance in {home} cannot be opened: {problem}",
                          f"check {home / 'dagster.yaml'}")
    assert "918273645" not in proc.stderr


def test_serve_with_a_broken_dagster_yaml_is_one_line_before_any_server_starts(
        tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    (home / "dagster.yaml").write_text("run_storage: 5\n")
    proc = crm_script(["serve", "--port", str(free_port())], tmp_path, timeout=120,
                      DAGSTER_HOME=str(home))
    assert_one_line_error(proc, f"the Dagster instance in {home} cannot be opened",
                          "run_storage must be dict")
    assert proc.stdout == ""


@pytest.mark.parametrize("command", ["run", "sync", "demo", "serve"])
def test_a_spark_warehouse_without_the_spark_extra_says_what_to_install(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, command: str) -> None:
    """The extra's modules are looked up before a command that drives Spark starts; one that
    is not installed (a name no package has stands for it) is one line with the install
    command. `dashboard`, `digest` and `generate` need no Spark."""
    from crm_cli import cli
    from crm_core.errors import CrmError
    from crm_core.settings import Settings

    monkeypatch.chdir(tmp_path)
    for key in [k for k in os.environ if k.startswith("CRM_")]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("CRM_WAREHOUSE_URL", "spark+session://")
    monkeypatch.setattr(cli, "SPARK_MODULES", ("crm_no_such_module",))
    settings = Settings.from_env()
    with pytest.raises(CrmError) as err:
        cli._check_spark_command(settings, command)
    assert str(err.value) == (
        "CRM_WAREHOUSE_URL spark+session://: the Spark extra is not installed "
        "(no crm_no_such_module): pip install 'crm-analytics[spark]' (docs/spark.md)")
    for reads_only in ("dashboard", "digest", "generate"):
        cli._check_spark_command(settings, reads_only)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("command", ["run", "sync"])
def test_a_first_run_from_the_wrong_folder_leaves_nothing_behind(tmp_path: Path,
                                                                 command: str) -> None:
    proc = crm_script([command], tmp_path)
    assert_one_line_error(proc, "source database", "does not exist",
                          "crm-analytics generate")
    assert list(tmp_path.iterdir()) == []


@pytest.mark.slow
def test_a_first_run_that_fails_midway_leaves_no_warehouse_lock_or_home(tmp_path: Path) -> None:
    engine = sa.create_engine(f"sqlite:///{tmp_path / 'erp.sqlite'}")
    with engine.begin() as conn:
        for table in build_metadata().sorted_tables:
            if table.name != "contacts":
                table.create(conn)
    engine.dispose()
    proc = crm_script(["run"], tmp_path, CRM_SOURCE_URL=f"sqlite:///{tmp_path / 'erp.sqlite'}")
    assert_one_line_error(proc, "step erp_tables failed", "missing required table(s): contacts")
    assert [p.name for p in tmp_path.iterdir()] == ["erp.sqlite"]  # no data/ at all


def _start(args: list[str], cwd: Path, **env: str) -> subprocess.Popen[str]:
    return subprocess.Popen([CRM_SCRIPT, *args], cwd=cwd, env=clean_env(**env),
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                            start_new_session=True)


def _stop(proc: subprocess.Popen[str]) -> None:
    os.killpg(proc.pid, signal.SIGTERM)
    try:
        proc.wait(timeout=30)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)


def _listening_once_up(port: int, seconds: float = 120) -> set[str]:
    deadline = time.monotonic() + seconds
    while not listening_addresses(port) and time.monotonic() < deadline:
        time.sleep(1)
    return listening_addresses(port)


def test_dashboards_in_demo_mode_listen_on_loopback_and_say_so(tmp_path: Path) -> None:
    port = free_port()
    proc = _start(["dashboard", "--port", str(port)], tmp_path, HOME=str(tmp_path))
    try:
        said = proc.stdout.readline()
        assert "demo mode" in said and "127.0.0.1 only" in said and "--host" in said
        assert _listening_once_up(port) == {"127.0.0.1"}
    finally:
        _stop(proc)


def test_dashboards_with_host_listen_where_told(tmp_path: Path) -> None:
    port = free_port()
    proc = _start(["dashboard", "--port", str(port), "--host", "0.0.0.0"], tmp_path,
                  HOME=str(tmp_path))
    try:
        assert _listening_once_up(port) == {"0.0.0.0"}
    finally:
        _stop(proc)
    assert "demo mode" not in (proc.stdout.read() or "")


@pytest.mark.parametrize("command", ["dashboard", "serve"])
def test_a_busy_port_is_one_error_line_suggesting_another(tmp_path: Path, command: str) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        proc = crm_script([command, "--port", str(port)], tmp_path, HOME=str(tmp_path),
                          timeout=120)
    assert_one_line_error(proc, f"port {port} is already in use", "--port")
