"""`crm-analytics run` on an in-process Spark (`spark+session://`), through the same Dagster
definitions as DuckDB: the loaders stage `raw` in a local DuckDB file, the dbt step publishes it
to the lake, builds the `spark` selector and reads Spark's marts back into the dashboards'
serving copy, which the dashboards and the digest read.

One world at `small` (ERP and events generated up to DAY, PII key set), run on a DuckDB
warehouse as the reference (the day before; DAY when a test needs it), and on Spark in the
order the tests below follow: the day before (module fixture), then dbt's unit tests on its
models; DAY with a broken ERP column, which fails the build; DAY again with the ERP repaired.
Each Spark run is a real Spark and a real dbt build, so the tests share the world and each one
advances it. Before the world moves
on to DAY, dbt runs through a local Thrift server against the DuckDB reference. `make test` runs
the first four (`spark_full` marks the others, which `make test-spark` adds).
"""

from __future__ import annotations

import json
import math
import shutil
import subprocess
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest
from streamlit.testing.v1 import AppTest

from crm_core.serving_copy import serving_path
from crm_core.settings import Settings
from dashboards import data
from dashboards.access import EVERYTHING
from ingestion.spark_lake import publish_raw
from orchestration.spark_steps import lake_tables, publish_lake_raw, publish_spark_serving_copy
from tests.helpers import oracle
from tests.helpers.cli import CLI, assert_one_line_error, clean_env, free_port, listening_addresses
from tests.helpers.faults import overflow_numeric
from tests.helpers.paths import REPO_ROOT
from tests.helpers.pipeline import AS_OF, check_all_marts
from tests.helpers.spark import (
    PII_KEY,
    assert_marts_equal,
    dbt,
    normal_rows,
    require_spark,
    same_rows,
    self_signed_https,
    spark_dbt_env,
    spark_models,
    thrift_server,
    thrift_sql,
)

pytestmark = [pytest.mark.slow, pytest.mark.spark]

DAY = AS_OF
PREVIOUS_DAY = DAY - timedelta(days=1)
OVERVIEW = str(REPO_ROOT / "dashboards" / "pages" / "overview.py")
ACCESS = "users:\n  ana@example.com:\n    businesses: [1]\n    digest: true\n"


@dataclass(frozen=True)
class SparkWorld:
    work: Path
    source: Path  # the ERP (SQLite)
    spark_env: dict[str, str]
    duck_env: dict[str, str]
    #: the staging file at its default place, `data/spark_staging.duckdb` under the cwd
    staging: Path
    #: DuckDB's serving copy of the day before
    duck_copy: Path
    #: DuckDB's headline KPIs and digest (dry run) the day before
    duck_kpis: dict[str, Any]
    duck_digest: str
    #: the models the `spark` selector builds
    models: set[str]

    def spark_copy(self) -> Path:
        return serving_path(self.staging).resolve()


def _crm(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(CLI + args, cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=3600, check=False)


def _ok(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    proc = _crm(args, cwd, env)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return proc


def _settings(env: dict[str, str], work: Path) -> Settings:
    data.CACHE.clear()
    return Settings.from_env(env, cwd=work)


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> SparkWorld:
    require_spark()
    work = tmp_path_factory.mktemp("spark_pipeline")
    base = {"CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite", "CRM_EVENTS_PATH": str(work / "ev"),
            "CRM_PII_KEY": PII_KEY, "CRM_ACCESS_FILE": str(work / "access.yml")}
    (work / "access.yml").write_text(ACCESS)
    _ok(["generate", "--scale", "small", "--end-date", DAY.isoformat(), "--quiet"], work, base)

    duck_env = {**base, "CRM_WAREHOUSE_URL": f"duckdb:///{work}/duck/wh.duckdb"}
    _ok(["run", "--date", PREVIOUS_DAY.isoformat()], work, duck_env)
    duck_kpis = data.headline_kpis(_settings(duck_env, work))
    duck_digest = _ok(["digest", "--dry-run"], work, duck_env).stdout
    first_copy = serving_path(work / "duck" / "wh.duckdb").resolve()

    spark_env = {**base, "CRM_WAREHOUSE_URL": "spark+session://",
                 "CRM_LAKE_PATH": str(work / "lake")}
    _ok(["run", "--date", PREVIOUS_DAY.isoformat()], work, spark_env)
    return SparkWorld(work=work, source=work / "erp.sqlite", spark_env=spark_env,
                      duck_env=duck_env, staging=work / "data" / "spark_staging.duckdb",
                      duck_copy=first_copy,
                      duck_kpis=duck_kpis, duck_digest=duck_digest, models=spark_models(work))


def _same_kpis(got: dict[str, Any], expected: dict[str, Any]) -> bool:
    """Equal, floats (rates) to a relative 1e-9: Spark may sum in another order."""
    return got.keys() == expected.keys() and all(
        math.isclose(got[k], expected[k], rel_tol=1e-9) if isinstance(expected[k], float)
        else got[k] == expected[k] for k in expected)


def _runs(copy: Path) -> list[date]:
    con = duckdb.connect(str(copy), read_only=True)
    try:
        return [r[0] for r in con.execute(
            "select as_of_date from meta.pipeline_runs order by finished_at").fetchall()]
    finally:
        con.close()


def test_the_run_serves_sparks_marts_equal_to_duckdbs(world: SparkWorld) -> None:
    link = serving_path(world.staging)
    assert link.is_symlink() and world.spark_copy().name == "spark_staging.serving.1.duckdb"
    assert (world.work / "data" / "dagster_home").is_dir()  # beside the staging file
    versions = list((world.work / "lake" / "raw" / "contacts").iterdir())
    assert len(versions) == 1 and list(versions[0].glob("*.parquet")), versions
    assert (world.work / "lake" / "metastore").is_dir()
    assert_marts_equal(world.spark_copy(), world.duck_copy, world.models)
    assert _runs(world.spark_copy()) == [PREVIOUS_DAY]


def test_the_dashboards_and_the_digest_read_the_serving_copy(
        world: SparkWorld, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**world.spark_env, "CRM_SPARK_STAGING_PATH": str(world.staging)}
    settings = _settings(env, world.work)
    assert _same_kpis(data.headline_kpis(settings), world.duck_kpis)
    deals = oracle.deal_states(oracle.read_source(world.spark_env["CRM_SOURCE_URL"]))
    totals = data.pipeline_totals(data.Source(settings, "", cached=False), EVERYTHING,
                                  data.Filters())
    for state in ("open", "won"):
        expected = sum((oracle.money(d["amount"]) for d in deals if d["state"] == state),
                       Decimal(0))
        assert totals[f"{state}_amount"] == expected, state

    for key, value in env.items():
        monkeypatch.setenv(key, value)
    for key in ("CRM_AUTH", "CRM_ACCESS_FILE", "DAGSTER_HOME"):
        monkeypatch.delenv(key, raising=False)
    at = AppTest.from_file(OVERVIEW, default_timeout=120)
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    assert f"Data as of **{PREVIOUS_DAY.isoformat()}**" in at.caption[0].value

    digest = _ok(["digest", "--dry-run"], world.work, world.spark_env).stdout
    assert "Deals at risk (" in digest and digest == world.duck_digest


def test_the_unit_tests_pass_on_spark(world: SparkWorld, tmp_path: Path) -> None:
    """The run leaves the unit tests out (they check the SQL on fixed rows, not the data), so
    they run here: Spark's SQL is its own (`spark__` dispatches, type names chosen by
    `target.type`). They need the built models, whose columns dbt reads for their inputs."""
    lake = world.spark_env["CRM_LAKE_PATH"]
    env = spark_dbt_env("spark+session://", lake, tmp_path)
    dbt_vars = {"as_of_date": PREVIOUS_DAY.isoformat(), "reporting_tz": "UTC"}
    proc = dbt(["test", "--selector", "spark", "--resource-type", "unit_test",
                "--target-path", str(tmp_path / "target"), "--vars", json.dumps(dbt_vars)], env)
    assert proc.returncode == 0, proc.stdout[-4000:]
    results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
    assert {r["unique_id"].split(".")[0] for r in results} == {"unit_test"}
    assert len(results) >= 40 and {r["status"] for r in results} == {"pass"}


SELECT = ["+fct_deal_stage_history", "+fct_open_pipeline_daily", "stg_erp__contacts"]
#: what is read back and compared: two tables and a view with the keyed hashes
COMPARED = ("marts.fct_deal_stage_history", "marts.fct_open_pipeline_daily",
            "staging.stg_erp__contacts")


def _coerce(value: object, duck_type: str) -> object:
    """A value as the Thrift protocol hands it (dates, decimals and timestamps may come as
    text; a timestamp is the session's UTC time without zone) in the Python type DuckDB gives
    the same column."""
    if value is None:
        return None
    if duck_type.startswith("DECIMAL"):
        return Decimal(str(value))
    if duck_type == "DATE":
        return value if isinstance(value, date) else date.fromisoformat(str(value)[:10])
    if duck_type.startswith("TIMESTAMP"):
        moment = value if isinstance(value, datetime) else datetime.fromisoformat(str(value))
        return moment.replace(tzinfo=UTC) if duck_type.endswith("TIME ZONE") else moment
    return value


def test_dbt_runs_through_a_thrift_server(world: SparkWorld, tmp_path: Path) -> None:
    """A local Thrift server (pyspark's own HiveThriftServer2, on a free port, in a zone other
    than UTC) gets DuckDB's `raw` published through a Thrift connection (the same code as
    in-process); dbt runs the deal history and the history marts through it (the incremental
    `crm_deal_versions`, views, tables, a date series, the contacts' keyed PII hashes); read
    back through the server, they equal DuckDB's row for row."""
    require_spark(thrift=True)
    reference = world.work / "duck" / "wh.duckdb"  # the day before
    lake = str(tmp_path / "lake")
    port = free_port()
    url = f"spark://127.0.0.1:{port}"
    # the server's own zone is not UTC: the session settings dbt hands it (profiles.yml's
    # server_side_parameters: UTC, the PII key's pads) must reach the session it runs in
    with thrift_server(lake, port, tmp_path / "thrift.log",
                       conf={"spark.sql.session.timeZone": "America/New_York"}):
        with thrift_sql(port) as sql:
            publish_raw(reference, lake, sql)
        env = spark_dbt_env(url, lake, tmp_path)
        assert env["CRM_SPARK_METHOD"] == "thrift" and "PYSPARK_SUBMIT_ARGS" not in env
        dbt_vars = {"as_of_date": PREVIOUS_DAY.isoformat(), "reporting_tz": "UTC"}
        proc = dbt(["run", "--select", *SELECT, "--target-path", str(tmp_path / "target"),
                    "--vars", json.dumps(dbt_vars)], env)
        assert proc.returncode == 0, proc.stdout[-4000:]
        results = json.loads((tmp_path / "target" / "run_results.json").read_text())["results"]
        assert {r["status"] for r in results} == {"success"}
        assert "model.crm_analytics.crm_deal_versions" in {r["unique_id"] for r in results}
        with thrift_sql(port) as sql:
            spark_rows = {relation: sql(f"select * from {relation}") for relation in COMPARED}
            spark_columns = {relation: [str(r[0]) for r in sql(f"describe {relation}")]
                             for relation in COMPARED}
    assert "127.0.0.1" not in listening_addresses(port)  # the server is gone
    _assert_equal_to_duckdb(reference, spark_rows, spark_columns)


def test_dbt_and_the_pipelines_jobs_reach_a_databricks_style_https_endpoint(
        world: SparkWorld, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A Databricks cluster's endpoint as dbt-spark's `http` method and the pipeline reach it:
    Thrift over HTTPS at `/sql/protocolv1/o/<org>/<cluster>`, an access token as basic
    authentication. Here it is a local Thrift server in HTTP mode with a self-signed
    certificate, trusted through `SSL_CERT_FILE`. The pipeline's own publish job puts DuckDB's
    `raw` into the lake and the catalog through it (the token handed over in its environment),
    dbt builds the contacts' staging model through it (the keyed PII hashes: the session
    settings reach the server over HTTP too), and read back it equals DuckDB's; the serve job
    has the server write a mart into the lake and DuckDB read it into the serving copy.

    The lake is the cluster's URL of the storage (`file://<lake>`, as `s3a://...` would be)
    with this machine's mount of it (`CRM_LAKE_MOUNT`, here another name of the same folder):
    the files go through the mount, the catalog and the server's writes use the URL."""
    require_spark(thrift=True)
    https = self_signed_https(tmp_path)
    monkeypatch.setenv("SSL_CERT_FILE", str(https.certificate))
    reference = world.work / "duck" / "wh.duckdb"  # the day before
    staging = tmp_path / "staging.duckdb"  # its serving copy is published beside it
    shutil.copyfile(reference, staging)
    lake, mount = tmp_path / "lake", tmp_path / "mnt"
    lake.mkdir()
    mount.symlink_to(lake, target_is_directory=True)
    port = free_port()
    url = f"spark+http://token:test-token@127.0.0.1:{port}{https.path}"
    settings = Settings.from_env({"CRM_WAREHOUSE_URL": url, "CRM_LAKE_PATH": f"file://{lake}",
                                  "CRM_LAKE_MOUNT": str(mount),
                                  "CRM_SPARK_STAGING_PATH": str(staging)}, cwd=tmp_path)
    assert settings.lake.folder == mount  # the files go through the link, not its target
    relation = "staging.stg_erp__contacts"
    with thrift_server(str(lake), port, tmp_path / "https.log", https=https):
        with thrift_sql(port, https):  # it serves sessions
            pass
        assert publish_lake_raw(settings) == len(lake_tables())
        env = {**spark_dbt_env(url, str(lake), tmp_path), "SSL_CERT_FILE": str(https.certificate)}
        assert env["CRM_SPARK_METHOD"] == "http"
        dbt_vars = {"as_of_date": PREVIOUS_DAY.isoformat(), "reporting_tz": "UTC"}
        proc = dbt(["run", "--select", "stg_erp__contacts", "--target-path",
                    str(tmp_path / "target"), "--vars", json.dumps(dbt_vars)], env)
        assert proc.returncode == 0, proc.stdout[-4000:]
        assert "test-token" not in proc.stdout + proc.stderr
        with thrift_sql(port, https) as sql:
            spark_rows = {relation: sql(f"select * from {relation}")}
            spark_columns = {relation: [str(r[0]) for r in sql(f"describe {relation}")]}
            location = {str(r[0]).strip(): str(r[1]) for r in sql(
                "describe formatted raw.contacts")}["Location"]
            sql("create database if not exists marts")
            sql(f"create table marts.contacts_probe using parquet as select * from {relation}")
        copy = publish_spark_serving_copy(settings)
        # nor in anything dbt or the server wrote: logs, compiled SQL, run results
        written = [p for p in tmp_path.rglob("*") if p.is_file() and p.stat().st_size < 50e6]
        assert len(written) > 10
        assert [p for p in written if b"test-token" in p.read_bytes()] == []
    _assert_equal_to_duckdb(reference, spark_rows, spark_columns)
    newest = max(p.name for p in (mount / "raw" / "contacts").iterdir())
    assert location.endswith(f"{lake}/raw/contacts/{newest}"), location
    assert location.startswith("file:") and str(mount) not in location
    with duckdb.connect(str(copy), read_only=True) as con:
        served = con.execute("select count(*) from marts.contacts_probe").fetchone()[0]
    assert served == len(spark_rows[relation]) > 0
    assert not list((lake / "serving").iterdir())  # the Parquet handed over is gone


def _assert_equal_to_duckdb(reference: Path, spark_rows: dict[str, list[tuple]],
                            spark_columns: dict[str, list[str]]) -> None:
    """Each relation read back from Spark has DuckDB's columns and rows (and the contacts'
    keyed hashes are there, not NULL on both sides)."""
    con = duckdb.connect(str(reference), read_only=True)
    try:
        for relation, rows in spark_rows.items():
            duck = con.execute(f"describe {relation}").fetchall()
            columns = [d[0] for d in duck]
            assert spark_columns[relation][:len(columns)] == columns, relation
            floats = [d[1] in ("DOUBLE", "FLOAT") for d in duck]
            mine = normal_rows(con.execute(f"select * from {relation}").fetchall(), floats)
            theirs = normal_rows([tuple(_coerce(v, d[1]) for v, d in zip(row, duck, strict=True))
                                  for row in rows], floats)
            assert mine, relation
            assert same_rows(mine, theirs), (relation, len(mine), len(theirs))
        hashed = con.execute("select count(phone_hash) from staging.stg_erp__contacts").fetchone()
        assert hashed[0] > 0
    finally:
        con.close()


@pytest.fixture(scope="module")
def duck_day_copy(world: SparkWorld) -> Path:
    """DuckDB's serving copy of DAY, the reference of the Spark run of DAY (only the slower
    tests below need it)."""
    _ok(["run", "--date", DAY.isoformat()], world.work, world.duck_env)
    return serving_path(world.work / "duck" / "wh.duckdb").resolve()


@pytest.mark.spark_full
def test_a_failed_build_leaves_the_last_good_copy_to_the_dashboards(
        world: SparkWorld, tmp_path: Path) -> None:
    env = {**world.spark_env, "CRM_SPARK_STAGING_PATH": str(world.staging)}
    before = world.spark_copy()
    version = data.data_version(_settings(env, world.work))
    shutil.copy(world.source, tmp_path / "erp.sqlite")
    try:
        # a contact the marts read (not soft-deleted)
        overflow_numeric(world.source, "contacts", "credit_limit", where="is_deleted = 0")
        proc = _crm(["run", "--date", DAY.isoformat()], world.work, world.spark_env)
    finally:
        shutil.copy(tmp_path / "erp.sqlite", world.source)
    line = assert_one_line_error(proc, "step crm_dbt_models failed", "stg_erp__contacts")
    assert "cannot be represented as decimal(14, 2)" in line, line
    assert world.spark_copy() == before and _runs(before) == [PREVIOUS_DAY]
    assert not [p for p in before.parent.iterdir() if p.name.endswith(".tmp")]
    settings = _settings(env, world.work)
    assert data.data_version(settings) == version
    assert _same_kpis(data.headline_kpis(settings), world.duck_kpis)


@pytest.mark.spark_full
def test_the_next_day_adds_its_files_once_and_matches_duckdb_and_the_oracle(
        world: SparkWorld, duck_day_copy: Path) -> None:
    """DAY's folder was loaded into the staging file by the failed run (the loaders commit
    before dbt runs); this run loads nothing again, republishes `raw` and builds. First the
    repaired ERP is synced on its own, which publishes the ERP tables to the lake."""
    contacts = world.work / "lake" / "raw" / "contacts"
    newest = max(p.name for p in contacts.iterdir())
    synced = _ok(["sync"], world.work, world.spark_env).stdout
    assert synced.startswith("synced ") and "into spark+session://" in synced, synced
    versions = sorted(p.name for p in contacts.iterdir())
    assert len(versions) == 2 and versions[0] == newest, versions  # a new one; older pruned
    _ok(["run", "--date", DAY.isoformat()], world.work, world.spark_env)
    con = duckdb.connect(str(world.staging), read_only=True)
    try:
        loads = con.execute(
            "select count(distinct load_id) filter (where landing_date = $1), "
            "count(distinct load_id) filter (where landing_date < $1), "
            "count(*) filter (where landing_date = $1 and load_id in "
            "  (select load_id from raw.event_files where landing_date < $1)), "
            "count(*) - count(distinct file_path) from raw.event_files", [DAY]).fetchone()
    finally:
        con.close()
    assert loads == (1, 1, 0, 0), loads  # one load per run that found files, none twice
    copy = world.spark_copy()
    assert copy.name == "spark_staging.serving.2.duckdb" and _runs(copy) == [PREVIOUS_DAY, DAY]
    assert len(list((world.work / "lake" / "raw" / "campaign_events").iterdir())) == 2
    assert_marts_equal(copy, duck_day_copy, world.models)
    check_all_marts(world.spark_env["CRM_SOURCE_URL"], None, Path(world.spark_env[
        "CRM_EVENTS_PATH"]), f"duckdb:///{copy}", "UTC")

