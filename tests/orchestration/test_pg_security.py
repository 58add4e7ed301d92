"""PostgreSQL warehouse roles and secrets (RELIABILITY.md, Security).

One real pipeline is built once for the module, with a known password in every URL:

1. `crm-analytics generate` into a PostgreSQL ERP, then `crm-analytics run` as a superuser
   login (the warehouse as it is before anybody ran `roles`);
2. `crm-analytics roles` creates a writer, a dashboard reader and two analysts (business 1;
   businesses 2 and 3);
3. a second run, as the writer, in Dagster with a persistent DAGSTER_HOME (so Dagster's run
   and event storage exist and can be searched): dbt rebuilds every mart, which drops grants
   and policies, and the marts' post-hook must re-apply them;
4. failing runs and commands (a database that does not exist) for the error paths.

Then the tests connect as each role and check what it can and cannot read or write, and search
everything the pipeline wrote for the password. Role names are unique per module run (roles
are cluster-wide) and dropped at the end.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import psycopg
import pytest
from psycopg import sql

from tests.helpers import oracle
from tests.helpers.cli import CLI, assert_one_line_error
from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import PG_HOST, PG_PORT

pytestmark = pytest.mark.postgres

AS_OF = date(2026, 11, 1)
#: The known password: in every URL the pipeline is given, and nowhere in what it writes.
PASSWORD = f"Pw-{uuid.uuid4().hex}"
#: Tenants of the analysts.
ANALYST_A_BUSINESSES = (1,)
ANALYST_B_BUSINESSES = (2, 3)


#: Two runs of the real job on the persistent instance in DAGSTER_HOME (what `dagster dev`, the
#: schedule and the sensor use), so Dagster's run and event storage get written: the first as
#: configured, the second with the source URL pointing at a missing database. Prints the two
#: outcomes as Dagster stored them.
DAGSTER_RUNS = """
import json, os
from dagster import DagsterInstance
from orchestration.definitions import defs
from orchestration.jobs import as_of_run_config

job = defs.resolve_job_def("crm_pipeline")
config = as_of_run_config(os.environ["CRM_TEST_AS_OF"])
tags = json.loads(os.environ["CRM_TEST_TAGS"])
with DagsterInstance.get() as instance:
    ids = [job.execute_in_process(run_config=config, instance=instance, tags=tags,
                                  raise_on_error=False).run_id]
    os.environ["CRM_SOURCE_URL"] = os.environ.pop("CRM_TEST_BAD_SOURCE_URL")
    ids.append(job.execute_in_process(run_config=config, instance=instance, tags=tags,
                                      raise_on_error=False).run_id)
    print(*[instance.get_run_by_id(i).status.value for i in ids])
"""


@dataclass
class Secured:
    work: Path
    dagster_home: Path
    started: float
    source_db: str
    warehouse_db: str
    admin: str
    writer: str
    reader: str
    analyst_a: str
    analyst_b: str
    env: dict[str, str]
    #: every command run, for the secrets search: (what, process)
    procs: list[tuple[str, subprocess.CompletedProcess[str]]] = field(default_factory=list)
    #: mart table -> oid before the writer's run (to prove dbt replaced each one)
    oids_before: dict[str, int] = field(default_factory=dict)

    def url(self, user: str, db: str | None = None, driver: str = "postgresql") -> str:
        return f"{driver}://{user}:{PASSWORD}@{PG_HOST}:{PG_PORT}/{db or self.warehouse_db}"

    def connect(self, user: str, db: str | None = None) -> psycopg.Connection:
        return psycopg.connect(host=PG_HOST, port=PG_PORT, user=user,
                               dbname=db or self.warehouse_db, autocommit=True)

    def run(self, what: str, args: list[str], **env: str) -> subprocess.CompletedProcess[str]:
        base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
        proc = subprocess.run(args, cwd=self.work, env={**base, **self.env, **env},
                              capture_output=True, text=True, timeout=600, check=False)
        self.procs.append((what, proc))
        return proc


def _marts(conn: psycopg.Connection, tenant_keyed: bool | None = None) -> list[str]:
    """The mart tables; with `tenant_keyed`, only those with (True) or without (False) a
    `business_id` column (the hook row-secures the former and keeps analysts off the latter)."""
    rows = conn.execute("select c.relname, exists (select from pg_attribute a where "
                        "a.attrelid = c.oid and a.attname = 'business_id' and a.attnum > 0 "
                        "and not a.attisdropped) from pg_class c join pg_namespace n on "
                        "n.oid = c.relnamespace where n.nspname = 'marts' "
                        "and c.relkind = 'r' order by 1").fetchall()
    return [name for name, keyed in rows if tenant_keyed is None or keyed == tenant_keyed]


def _mart_oids(conn: psycopg.Connection) -> dict[str, int]:
    return {m: conn.execute("select %s::regclass::oid", [f"marts.{m}"]).fetchone()[0]
            for m in _marts(conn)}


@pytest.fixture(scope="module")
def secured(postgres_server: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Secured]:
    suffix = uuid.uuid4().hex[:8]
    work = tmp_path_factory.mktemp("pgsec")
    home = work / "dagster_home"
    home.mkdir()
    (home / "dagster.yaml").write_text("telemetry:\n  enabled: false\n")
    s = Secured(work=work, dagster_home=home, started=time.time(),
                source_db=f"crm_sec_src_{suffix}", warehouse_db=f"crm_sec_wh_{suffix}",
                admin=f"crm_sec_admin_{suffix}", writer=f"crm_sec_writer_{suffix}",
                reader=f"crm_sec_reader_{suffix}", analyst_a=f"crm_sec_ana_a_{suffix}",
                analyst_b=f"crm_sec_ana_b_{suffix}", env={})
    roles = [s.admin, s.writer, s.reader, s.analyst_a, s.analyst_b]
    with psycopg.connect(postgres_server, autocommit=True) as admin:
        admin.execute(sql.SQL("create role {} login superuser password {}").format(
            sql.Identifier(s.admin), sql.Literal(PASSWORD)))
        for db in (s.source_db, s.warehouse_db):
            admin.execute(sql.SQL("create database {}").format(sql.Identifier(db)))
    try:
        s.env = {
            "CRM_SOURCE_URL": s.url(s.admin, s.source_db, driver="postgresql+psycopg"),
            "CRM_EVENTS_PATH": str(work / "events"),
            "CRM_WAREHOUSE_URL": s.url(s.admin),
            "CRM_REPORTING_TZ": "UTC",
            "DAGSTER_HOME": str(home),
        }
        proc = s.run("generate", CLI + ["generate", "--days", "14", "--seed", "11",
                                        "--end-date", AS_OF.isoformat(), "--quiet"])
        assert proc.returncode == 0, proc.stderr
        proc = s.run("run as superuser", CLI + ["run", "--date", AS_OF.isoformat()])
        assert proc.returncode == 0, proc.stderr
        proc = s.run("roles", CLI + [
            "roles", "--writer", s.writer, "--reader", s.reader,
            "--analyst", f"{s.analyst_a}={','.join(map(str, ANALYST_A_BUSINESSES))}",
            "--analyst", f"{s.analyst_b}={','.join(map(str, ANALYST_B_BUSINESSES))}"])
        assert proc.returncode == 0, proc.stderr
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            admin.execute(sql.SQL("alter role {} password {}").format(
                sql.Identifier(s.writer), sql.Literal(PASSWORD)))
        with s.connect(s.admin) as conn:
            s.oids_before = _mart_oids(conn)

        # The writer's run, in Dagster with a persistent instance (DAGSTER_HOME), then in the
        # same process a run whose source database does not exist (stored as a failed run).
        missing = f"crm_sec_missing_{suffix}"
        from orchestration.partitions import landing_range_tags

        proc = s.run("dagster runs as writer", [sys.executable, "-c", DAGSTER_RUNS],
                     CRM_WAREHOUSE_URL=s.url(s.writer),
                     CRM_TEST_AS_OF=AS_OF.isoformat(),
                     CRM_TEST_TAGS=json.dumps(landing_range_tags(work / "events", AS_OF)),
                     CRM_TEST_BAD_SOURCE_URL=s.url(s.admin, missing, driver="postgresql+psycopg"))
        assert proc.returncode == 0, proc.stderr[-3000:]
        # (dbt's own log goes to stdout before the outcomes' line)
        assert proc.stdout.splitlines()[-1].split() == ["SUCCESS", "FAILURE"], \
            proc.stdout[-2000:]

        # Error paths of every command, with a database that does not exist.
        for what, args, env in [
            ("run, missing warehouse", ["run", "--date", AS_OF.isoformat()],
             {"CRM_WAREHOUSE_URL": s.url(s.writer, missing)}),
            ("sync, missing source", ["sync"],
             {"CRM_SOURCE_URL": s.url(s.admin, missing, driver="postgresql+psycopg")}),
            ("roles, missing warehouse", ["roles", "--writer", s.writer, "--reader", s.reader],
             {"CRM_WAREHOUSE_URL": s.url(s.admin, missing)}),
        ]:
            proc = s.run(what, CLI + args, **env)
            assert_one_line_error(proc, missing)
        yield s
    finally:
        with psycopg.connect(postgres_server, autocommit=True) as admin:
            for db in (s.source_db, s.warehouse_db):
                admin.execute(sql.SQL("drop database if exists {} with (force)")
                              .format(sql.Identifier(db)))
            for role in roles:
                admin.execute(sql.SQL("drop role if exists {}").format(sql.Identifier(role)))


def _denied(conn: psycopg.Connection, statement: str) -> str:
    """The statement fails for lack of a privilege (or a read-only transaction); the message."""
    with pytest.raises(psycopg.Error) as info:
        conn.execute(statement)
    message = str(info.value)
    assert any(word in message for word in (
        "permission denied", "read-only transaction", "row-level security", "must be owner",
    )), message
    return message


# ---------------------------------------------------------------------------------------------
# Roles and row-level security


def test_dbt_replaced_every_mart_and_the_hook_re_secured_it(secured: Secured) -> None:
    with secured.connect(secured.admin) as conn:
        after = _mart_oids(conn)
        assert len(after) >= 12 and set(after) == set(secured.oids_before)
        assert all(after[m] != secured.oids_before[m] for m in after), "dbt rebuilt no mart"
        rows = conn.execute(
            "select c.relname, c.relrowsecurity, c.relforcerowsecurity, "
            "pg_get_userbyid(c.relowner), array(select p.polname from pg_policy p "
            "where p.polrelid = c.oid order by 1) from pg_class c "
            "where c.relnamespace = 'marts'::regnamespace and c.relkind = 'r'").fetchall()
        keyed = set(_marts(conn, tenant_keyed=True))
        for name, rls, forced, owner, policies in rows:
            assert owner == secured.writer, name
            if name not in keyed:  # no tenant to tell apart: analysts get nothing at all
                for analyst in (secured.analyst_a, secured.analyst_b):
                    assert not conn.execute("select has_table_privilege(%s, %s, 'select')",
                                            [analyst, f"marts.{name}"]).fetchone()[0], name
                continue
            assert rls and forced, name
            assert policies == ["crm_full_access", "crm_reader_rows", "crm_tenant_rows"], name
        # every view the pipeline made checks the caller's rights
        views = conn.execute(
            "select n.nspname || '.' || c.relname, coalesce(c.reloptions, '{}') "
            "from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where c.relkind = 'v' and n.nspname not in ('pg_catalog', 'information_schema')"
        ).fetchall()
        assert len(views) >= 10
        for name, options in views:
            assert "security_invoker=true" in options, name


def test_writer_owns_what_the_pipeline_writes_and_can_write(secured: Secured) -> None:
    with secured.connect(secured.admin) as conn:
        owners = dict(conn.execute(
            "select nspname, pg_get_userbyid(nspowner) from pg_namespace where nspname in "
            "('raw', 'staging', 'intermediate', 'snapshots', 'utilities', 'marts', 'meta')"
        ).fetchall())
        foreign = conn.execute(
            "select count(*) from pg_class c join pg_namespace n on n.oid = c.relnamespace "
            "where n.nspname in ('raw', 'staging', 'intermediate', 'snapshots', 'utilities', "
            "'marts', 'meta') and c.relkind in ('r', 'v') and pg_get_userbyid(c.relowner) <> %s",
            [secured.writer]).fetchone()[0]
        expected = {m: conn.execute(sql.SQL("select count(*) from marts.{}").format(
            sql.Identifier(m))).fetchone()[0] for m in _marts(conn)}
    assert len(owners) == 7 and set(owners.values()) == {secured.writer}
    assert foreign == 0
    with secured.connect(secured.writer) as conn:
        # forced row-level security does not hide anything from the pipeline itself
        for mart, count in expected.items():
            got = conn.execute(sql.SQL("select count(*) from marts.{}").format(
                sql.Identifier(mart))).fetchone()[0]
            assert got == count > 0, mart
        with conn.transaction(force_rollback=True):
            conn.execute("create table marts.scratch (business_id bigint)")
            conn.execute("insert into marts.scratch values (1)")
            conn.execute("insert into raw.contacts (id, business_id) values (-1, 1)")
            assert conn.execute("delete from raw.contacts where id = -1").rowcount == 1


def test_reader_reads_marts_and_meta_and_writes_nothing(secured: Secured) -> None:
    with secured.connect(secured.admin) as conn:
        expected = {m: conn.execute(sql.SQL("select count(*) from marts.{}").format(
            sql.Identifier(m))).fetchone()[0] for m in _marts(conn)}
        null_rows = conn.execute("select count(*) from marts.fct_deal_stage_history "
                                 "where business_id is null").fetchone()[0]
    with secured.connect(secured.reader) as conn:
        for mart, count in expected.items():  # every row, tenant-less ones included
            got = conn.execute(sql.SQL("select count(*) from marts.{}").format(
                sql.Identifier(mart))).fetchone()[0]
            assert got == count > 0, mart
        assert conn.execute("select count(*) from marts.fct_deal_stage_history "
                            "where business_id is null").fetchone()[0] == null_rows
        assert conn.execute("select count(*) from meta.pipeline_runs").fetchone()[0] == 2
        for statement in [
            "select count(*) from raw.contacts",
            "select count(*) from staging.stg_erp__contacts",
            "select count(*) from intermediate.int_crm_deals_with_state",
            "select count(*) from crm_access.tenant_roles",
            "insert into marts.v_crm_contact_summary (contact_pk) values (-1)",
            "update marts.v_crm_contact_summary set won_revenue = 0",
            "delete from marts.v_crm_contact_summary",
            "delete from meta.pipeline_runs",
            "create table marts.mine (x int)",
            "create table public.mine (x int)",
            "create schema mine",
            "drop table marts.v_crm_contact_summary",
        ]:
            _denied(conn, statement)
        # switching the read-only default off does not help: no privilege to write
        conn.execute("set default_transaction_read_only = off")
        _denied(conn, "delete from marts.v_crm_contact_summary")
        _denied(conn, "create table marts.mine (x int)")


def test_dashboards_work_as_the_reader(secured: Secured) -> None:
    """The dashboards' own queries, connected as the reader, give the superuser's numbers."""
    from crm_core.settings import Settings
    from dashboards import data

    def kpis(user: str) -> dict:
        env = {**secured.env, "CRM_WAREHOUSE_URL": secured.url(user)}
        settings = Settings.from_env(env, cwd=secured.work)
        src = data.Source(settings, version="", cached=False)
        return {**data.headline_kpis(settings), "as_of": data.data_as_of(src)["as_of_date"]}

    as_reader, as_admin = kpis(secured.reader), kpis(secured.admin)
    assert as_reader == as_admin and as_reader["won_revenue"] > 0
    assert as_reader["as_of"] == AS_OF


@pytest.mark.parametrize("which", ["a", "b"])
def test_analyst_sees_exactly_its_businesses(secured: Secured, which: str) -> None:
    role = secured.analyst_a if which == "a" else secured.analyst_b
    mine = set(ANALYST_A_BUSINESSES if which == "a" else ANALYST_B_BUSINESSES)
    # Independent: contacts per business straight from the source rows (tests/helpers/oracle.py).
    source = oracle.read_source(secured.url(secured.admin, secured.source_db,
                                            driver="postgresql+psycopg"))
    contacts = oracle.contact_summary(source)
    want_contacts = sum(1 for c in contacts.values() if c["business_id"] in mine)
    want_won = sum((c["won_revenue"] for c in contacts.values() if c["business_id"] in mine),
                   oracle.ZERO)
    with secured.connect(secured.admin) as conn:
        marts, untenanted = _marts(conn, tenant_keyed=True), _marts(conn, tenant_keyed=False)
        expected = {m: conn.execute(sql.SQL(
            "select count(*) filter (where business_id = any(%s)), "
            "count(*) filter (where not business_id = any(%s) or business_id is null) "
            "from marts.{}").format(sql.Identifier(m)), [list(mine), list(mine)]).fetchone()
            for m in marts}
    assert want_contacts > 0 and all(theirs > 0 for _, theirs in expected.values())

    with secured.connect(role) as conn:
        for mart in marts:
            ids = conn.execute(sql.SQL(
                "select business_id, count(*) from marts.{} group by 1").format(
                sql.Identifier(mart))).fetchall()
            seen = dict(ids)
            assert set(seen) == mine, (mart, seen)  # no other tenant, no tenant-less rows
            assert sum(seen.values()) == expected[mart][0] > 0, mart
        for mart in untenanted:  # e.g. the owner names: fail closed
            _denied(conn, f"select count(*) from marts.{mart}")
        got = conn.execute("select count(*), sum(won_revenue) "
                           "from marts.v_crm_contact_summary").fetchone()
        assert got == (want_contacts, want_won)
        # a view it makes itself runs with its own rights
        conn.execute("create temporary view everything as "
                     "select * from marts.v_crm_contact_summary")
        assert conn.execute("select count(*) from everything").fetchone()[0] == want_contacts
        # no way around the policies
        _denied(conn, "set row_security = off; select count(*) from marts.v_crm_contact_summary")
        conn.execute("reset row_security")
        for other in (secured.writer, secured.reader, secured.admin, "postgres"):
            _denied(conn, f'set role "{other}"')
        for statement in [
            "select count(*) from raw.contacts",
            "select count(*) from staging.stg_erp__contacts",
            "select count(*) from meta.pipeline_runs",
            "insert into marts.v_crm_contact_summary (contact_pk, business_id) values (-1, 1)",
            "update marts.v_crm_contact_summary set won_revenue = 0",
            "delete from marts.v_crm_contact_summary",
            "create table marts.mine (x int)",
            "insert into crm_access.tenant_roles values (current_user, 4)",
            "alter table marts.v_crm_contact_summary disable row level security",
            "drop policy crm_tenant_rows on marts.v_crm_contact_summary",
        ]:
            _denied(conn, statement)
        # it sees its own tenant mapping and nobody else's
        mapping = conn.execute("select role_name, business_id from crm_access.tenant_roles "
                               "order by 2").fetchall()
        assert mapping == [(role, b) for b in sorted(mine)]


def test_roles_refuses_a_duckdb_warehouse(tmp_path: Path) -> None:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
    proc = subprocess.run(CLI + ["roles"], cwd=tmp_path, capture_output=True, text=True,
                          env={**base, "CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/w.duckdb"},
                          timeout=120, check=False)
    assert_one_line_error(proc, "roles need a PostgreSQL warehouse")


@pytest.mark.parametrize("bad", ["crm_a", "crm_a=", "crm_a=x", "Robert'); drop=1"])
def test_roles_rejects_a_malformed_analyst(tmp_path: Path, bad: str) -> None:
    proc = subprocess.run(CLI + ["roles", "--analyst", bad], cwd=tmp_path, capture_output=True,
                          text=True, timeout=60, check=False)
    assert proc.returncode == 2 and "argument --analyst:" in proc.stderr
    assert "Traceback" not in proc.stderr


# ---------------------------------------------------------------------------------------------
# Secrets


def _files_with(needle: bytes, roots: list[Path], since: float | None = None
                ) -> tuple[list[Path], list[Path]]:
    """(files searched, files containing `needle`) under `roots`, bytes compared, so SQLite
    databases and compressed logs' plain parts count too."""
    searched, found = [], []
    for root in roots:
        for path in [root] if root.is_file() else root.rglob("*"):
            if not path.is_file() or (since is not None and path.stat().st_mtime < since):
                continue
            searched.append(path)
            if needle in path.read_bytes():
                found.append(path)
    return searched, found


def test_the_password_appears_nowhere_the_pipeline_writes(secured: Secured,
                                                           tmp_path: Path) -> None:
    needle = PASSWORD.encode()
    # The password was really in play: every URL the commands were given carries it, and the
    # writer's login (named only in such a URL) built the marts.
    assert PASSWORD in secured.env["CRM_SOURCE_URL"] and PASSWORD in secured.env[
        "CRM_WAREHOUSE_URL"]
    assert len(secured.procs) == 7
    # The search itself finds a planted copy.
    control = tmp_path / "control.bin"
    control.write_bytes(b"\x00prefix" + needle + b"suffix\x00")
    assert _files_with(needle, [control])[1] == [control]

    # 1. What every command printed.
    for what, proc in secured.procs:
        assert PASSWORD not in proc.stdout + proc.stderr, what
    failed = [what for what, proc in secured.procs if proc.returncode != 0]
    assert len(failed) == 3  # and one failed Dagster run (checked by the fixture)

    # 2. Files: the work folder (event landing, DAGSTER_HOME with its run and event storage
    #    and compute logs), dbt's target/ and logs/ written since the module started.
    since = secured.started
    dbt_files = [REPO_ROOT / "target", REPO_ROOT / "logs"]
    searched, found = _files_with(needle, [secured.work], None)
    dbt_searched, dbt_found = _files_with(needle, dbt_files, since)
    assert found == [] and dbt_found == []
    names = {p.name for p in dbt_searched}
    assert {"manifest.json", "run_results.json", "dbt.log"} <= names, sorted(names)[:20]
    assert sum(p.suffix == ".sql" for p in dbt_searched) >= 20  # compiled and run SQL
    dagster = [p for p in searched if secured.dagster_home in p.parents]
    assert any(p.suffix == ".db" for p in dagster) and len(dagster) >= 3, dagster
    assert len(searched) + len(dbt_searched) >= 100

    # 3. The warehouse: every table's every row as text, and the catalog where roles,
    #    functions and settings live.
    with secured.connect(secured.admin) as conn:
        tables = conn.execute(
            "select n.nspname, c.relname from pg_class c join pg_namespace n "
            "on n.oid = c.relnamespace where c.relkind in ('r', 'p') "
            "and n.nspname not in ('pg_catalog', 'information_schema', 'pg_toast')").fetchall()
        assert len(tables) >= 30
        for schema, table in tables:
            hits = conn.execute(sql.SQL(
                "select count(*) from {}.{} as t where strpos(t::text, %s) > 0").format(
                sql.Identifier(schema), sql.Identifier(table)), [PASSWORD]).fetchone()[0]
            assert hits == 0, f"{schema}.{table}"
        for catalog in ["select prosrc from pg_proc", "select description from pg_description",
                        "select setconfig::text from pg_db_role_setting",
                        "select rolname from pg_roles",
                        "select pg_get_expr(polqual, polrelid) from pg_policy"]:
            rows = conn.execute(catalog).fetchall()
            assert not any(PASSWORD in str(r[0]) for r in rows), catalog
