"""Spark for the tests: whether it can run here, one world built on DuckDB as the reference,
the jobs that need their own process, a local Thrift server, and comparing rows with DuckDB's.

The in-process Spark of `spark+session://` keeps its catalog in an embedded Derby database that
admits one process at a time, and a JVM cannot be restarted inside a Python process; so
publishing `raw` and reading the built relations back each run as `python -m
tests.helpers.spark <job> ...`, one after the other, never beside dbt; a test with many jobs
sends them to one such process (`spark_jobs`).
"""

from __future__ import annotations

import importlib.util
import json
import math
import os
import select
import shutil
import signal
import socket
import subprocess
import sys
import time
import traceback
from collections import Counter
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import duckdb
import pytest

from tests.helpers.cli import CLI, clean_env
from tests.helpers.paths import REPO_ROOT

AS_OF = "2026-03-31"
PII_KEY = "spark-test-key-0123456789"

#: The Thrift server (HiveServer2 over Spark SQL) that pyspark's jars ship.
THRIFT_SERVER_CLASS = "org.apache.spark.sql.hive.thriftserver.HiveThriftServer2"


def require_spark(*, thrift: bool = False) -> None:
    """Skip (fail under CRM_REQUIRE_SPARK=1) without pyspark and dbt-spark, or without Java;
    with `thrift`, also without the PyHive client dbt-spark's thrift method uses."""
    reason = ""
    if not (_installed("pyspark") and _installed("dbt.adapters.spark")):
        reason = "pyspark or dbt-spark is not installed (pip install -e '.[spark]')"
    elif thrift and not _installed("pyhive"):
        reason = "PyHive is not installed (pip install -e '.[spark]')"
    elif shutil.which("java") is None:
        reason = "no Java runtime (`java`) for pyspark (apt-get install openjdk-17-jre-headless)"
    if reason:
        if os.environ.get("CRM_REQUIRE_SPARK") == "1":
            pytest.fail(f"CRM_REQUIRE_SPARK=1 but {reason}")
        pytest.skip(reason)


def _installed(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except ModuleNotFoundError:
        return False


@dataclass(frozen=True)
class SparkWorld:
    """A `small` world generated for AS_OF with the PII key set, and one `crm-analytics run` of
    it on DuckDB (`duckdb`): the reference every Spark build is compared with."""

    work: Path
    duckdb: Path


@pytest.fixture(scope="session")
def spark_world(tmp_path_factory: pytest.TempPathFactory) -> SparkWorld:
    """Built once per session, shared by the Spark tests (generate and run cost minutes)."""
    require_spark()
    work = tmp_path_factory.mktemp("spark_world")
    env = {"CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite", "CRM_EVENTS_PATH": str(work / "ev"),
           "CRM_WAREHOUSE_URL": f"duckdb:///{work}/wh.duckdb", "CRM_PII_KEY": PII_KEY}
    for args in (["generate", "--scale", "small", "--end-date", AS_OF, "--quiet"],
                 ["run", "--date", AS_OF]):
        proc = subprocess.run([*CLI, *args], cwd=work, env=clean_env(**env), capture_output=True,
                              text=True, timeout=1800, check=False)
        assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    return SparkWorld(work, work / "wh.duckdb")


def dbt(args: list[str], env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """The real dbt CLI on the project, with `env` (a warehouse's dbt environment) added."""
    return subprocess.run([str(Path(sys.executable).with_name("dbt")), *args, "--profiles-dir",
                           str(REPO_ROOT)], cwd=REPO_ROOT, capture_output=True, text=True,
                          timeout=3600, check=False,
                          env={**os.environ, "DBT_SEND_ANONYMOUS_USAGE_STATS": "false", **env})


def spark_dbt_env(url: str, lake: str, work: Path) -> dict[str, str]:
    """What the pipeline hands dbt for the Spark warehouse at `url` on `lake` (the PII key's
    pads included), with dbt's log under `work`."""
    from crm_core.urls import parse_warehouse_url
    from orchestration.dbt_project import dbt_environment
    from orchestration.pii import dbt_secret_environment

    return {**dbt_environment(parse_warehouse_url(url, work), "UTC", lake),
            **dbt_secret_environment(PII_KEY, postgres=False, spark=True),
            "DBT_LOG_PATH": str(work / "logs")}


def spark_job(job: str, lake: str, *args: str, env: dict[str, str]) -> None:
    """Run one job of this module on `lake` in a child process; assert it succeeded."""
    proc = subprocess.run([sys.executable, "-m", "tests.helpers.spark", job, lake, *args],
                          cwd=REPO_ROOT,
                          env={**os.environ, **env}, capture_output=True, text=True,
                          timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]


@contextmanager
def spark_jobs(lake: str, log: Path, timeout: float = 900) -> Iterator[Callable[..., None]]:
    """One child process with one Spark session on `lake`, running the jobs of this module it
    is sent, one at a time, as `run(job, *args)`; the caller may change files between jobs.
    Starting Spark costs seconds per process, so a test with many jobs pays it once. Each job
    must answer within `timeout` seconds. The child's own output (Spark's too) goes to `log`;
    its stdout carries only the replies."""
    with log.open("w") as err:
        proc = subprocess.Popen([sys.executable, "-m", "tests.helpers.spark", "jobs", lake],
                                cwd=REPO_ROOT, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                stderr=err, encoding="utf-8")
    assert proc.stdin is not None and proc.stdout is not None
    commands, replies = proc.stdin, proc.stdout

    def run(job: str, *args: str) -> None:
        try:
            commands.write(json.dumps([job, *args]) + "\n")
            commands.flush()
        except BrokenPipeError:
            pytest.fail(f"the Spark job process exited ({proc.wait(60)}) before {job}: "
                        f"{_tail(log)}")
        ready, _, _ = select.select([replies], [], [], timeout)
        if not ready:
            proc.kill()
            pytest.fail(f"{job} took over {timeout:.0f} s: {_tail(log)}")
        reply = replies.readline().strip()
        if not reply:
            pytest.fail(f"the Spark job process exited ({proc.wait(60)}) during {job}: "
                        f"{_tail(log)}")
        assert reply == "ok", f"{job} failed: {reply}\n{_tail(log)}"

    try:
        yield run
    finally:
        with suppress(BrokenPipeError):
            commands.close()  # end of input: the child stops its session and exits
        try:
            proc.wait(timeout=120)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(60)
        replies.close()
    # every job answered: the process must also have stopped Spark cleanly
    assert proc.returncode == 0, f"the Spark job process ended with {proc.returncode}: " \
        f"{_tail(log)}"


# --- a local Thrift server -------------------------------------------------------------------


@dataclass(frozen=True)
class Https:
    """What a Thrift server needs to serve Thrift over HTTPS as a Databricks cluster does:
    its key and certificate (`keystore`, PKCS12), the certificate for clients to trust
    (`certificate`, PEM, for `SSL_CERT_FILE`) and the endpoint's path."""

    keystore: Path
    certificate: Path
    path: str = "/sql/protocolv1/o/0/crm-test"
    password: str = "crm-test"


def self_signed_https(folder: Path) -> Https:
    """A key and a certificate for 127.0.0.1, valid for a day, made with the JRE's `keytool`
    (Spark's own requirement, so nothing more to install)."""
    https = Https(folder / "server.p12", folder / "server.pem")
    keytool = ["keytool", "-storetype", "PKCS12", "-keystore", str(https.keystore),
               "-storepass", https.password]
    subprocess.run([*keytool, "-genkeypair", "-alias", "crm", "-keyalg", "RSA", "-keysize",
                    "2048", "-validity", "1", "-dname", "CN=127.0.0.1", "-keypass",
                    https.password, "-ext", "SAN=ip:127.0.0.1"], check=True, capture_output=True)
    subprocess.run([*keytool, "-exportcert", "-alias", "crm", "-rfc", "-file",
                    str(https.certificate)], check=True, capture_output=True)
    return https


@contextmanager
def thrift_server(lake: str, port: int, log: Path, conf: dict[str, str] | None = None,
                  timeout: float = 300, https: Https | None = None) -> Iterator[int]:
    """A Spark Thrift server on 127.0.0.1:`port` with the in-process settings of `lake`
    (its catalog in `<lake>/metastore`, its tables in `<lake>/warehouse`) and `conf` over
    them, started by pyspark's own `spark-submit`; with `https`, Thrift over HTTPS at its
    path. Yields its process id once it accepts connections and stops it (SIGTERM, then
    SIGKILL) on the way out. Output goes to `log`."""
    import pyspark

    from crm_core.spark import session_conf

    home = Path(pyspark.__file__).parent
    args = [str(home / "bin" / "spark-submit"), "--class", THRIFT_SERVER_CLASS,
            "--name", "crm-analytics-test-thrift"]
    for key, value in {**session_conf(lake), **(conf or {})}.items():
        args += ["--conf", f"{key}={value}"]
    hive = {"hive.server2.thrift.port": port, "hive.server2.thrift.bind.host": "127.0.0.1",
            "hive.server2.enable.doAs": "false"}
    if https is not None:
        hive |= {"hive.server2.transport.mode": "http", "hive.server2.thrift.http.port": port,
                 "hive.server2.thrift.http.path": https.path.strip("/"),
                 "hive.server2.use.SSL": "true",
                 "hive.server2.keystore.path": https.keystore,
                 "hive.server2.keystore.password": https.password}
    for key, value in hive.items():
        args += ["--hiveconf", f"{key}={value}"]
    env = {k: v for k, v in os.environ.items() if k != "PYSPARK_SUBMIT_ARGS"}
    env["SPARK_HOME"] = str(home)
    with log.open("wb") as out:
        # its own process group: spark-submit execs the JVM, whose children go with it
        proc = subprocess.Popen(args, stdout=out, stderr=subprocess.STDOUT, env=env,
                                cwd=log.parent, start_new_session=True)
    try:
        _wait_accepting(proc, port, log, timeout)
        yield proc.pid
    finally:
        _stop(proc)


def _wait_accepting(proc: subprocess.Popen[bytes], port: int, log: Path,
                    timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            pytest.fail(f"the Thrift server exited ({proc.returncode}): {_tail(log)}")
        with socket.socket() as probe:
            probe.settimeout(2)
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(1)
    pytest.fail(f"the Thrift server took over {timeout:.0f} s to listen: {_tail(log)}")


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=30)


def _tail(log: Path) -> str:
    return log.read_text(errors="replace")[-3000:]


@contextmanager
def thrift_sql(port: int, https: Https | None = None) -> Iterator[Callable[[str], list[tuple]]]:
    """`ingestion.spark_lake.thrift_sql` on the local server (`http_sql`, with a token, when it
    serves `https`), the first connection retried for a minute: the server listens a little
    before it serves sessions. For HTTPS, `SSL_CERT_FILE` must name `https.certificate`."""
    from ingestion.spark_lake import http_sql
    from ingestion.spark_lake import thrift_sql as binary

    def connect() -> Any:
        if https is not None:
            return http_sql("127.0.0.1", port, https.path, "test-token")
        return binary("127.0.0.1", port, "crm")

    deadline = time.monotonic() + 60
    while True:
        try:
            with connect():
                break
        except Exception:  # noqa: BLE001 - thrift's transport errors have no common base
            if time.monotonic() > deadline:
                raise
            time.sleep(2)
    with connect() as run:
        yield run


# --- comparing with DuckDB -------------------------------------------------------------------


def _normal(value: Any, is_float: bool) -> Any:
    if value is None:
        return None
    if is_float:
        return float(value)
    if isinstance(value, Decimal):
        return value.normalize()
    return value


def normal_rows(rows: Sequence[Sequence[Any]], float_columns: Sequence[bool]) -> list[tuple]:
    """Rows with DOUBLE columns as floats and decimals without trailing zeros."""
    return [tuple(_normal(v, f) for v, f in zip(row, float_columns, strict=True))
            for row in rows]


def same_rows(mine: list[tuple], theirs: list[tuple]) -> bool:
    """The same multiset of rows; floats to a relative 1e-9 (Spark and DuckDB may sum them in
    another order), everything else exactly."""
    if not any(isinstance(x, float) for row in mine + theirs for x in row):
        return Counter(mine) == Counter(theirs)
    if len(mine) != len(theirs):
        return False
    key = lambda row: tuple((x is None, str(type(x)), x if not isinstance(x, float)  # noqa: E731
                             else round(x, 6)) for x in row)
    for left, right in zip(sorted(mine, key=key), sorted(theirs, key=key), strict=True):
        for x, y in zip(left, right, strict=True):
            if isinstance(x, float) and isinstance(y, float):
                if not math.isclose(x, y, rel_tol=1e-9, abs_tol=1e-12):
                    return False
            elif x != y:
                return False
    return True


def spark_models(work: Path) -> set[str]:
    """The models a Spark warehouse builds (the `spark` selector), as dbt itself lists them."""
    proc = dbt(["ls", "--selector", "spark", "--resource-type", "model", "--output", "name",
                "--quiet", "--target-path", str(work / "ls")],
               {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(work / "ls.duckdb")})
    assert proc.returncode == 0, proc.stdout
    return {line.strip() for line in proc.stdout.splitlines() if line.strip()}


def row_counts_if_different(con: duckdb.DuckDBPyConnection, expected: str,
                            actual: str) -> tuple[int, int] | None:
    """None when `actual` holds the same rows as `expected` (by `expected`'s columns, which
    `actual` must have), else the two row counts."""
    described = con.execute(f"describe select * from {expected}").fetchall()
    columns = [d[0] for d in described]
    floats = [d[1] in ("DOUBLE", "FLOAT") for d in described]
    select = ", ".join(f'"{c}"' for c in columns)
    mine = normal_rows(con.execute(f"select {select} from {expected}").fetchall(), floats)
    theirs = normal_rows(con.execute(f"select {select} from {actual}").fetchall(), floats)
    return None if same_rows(mine, theirs) else (len(mine), len(theirs))


def assert_marts_equal(spark_copy: Path, duck_copy: Path, models: set[str]) -> None:
    """Spark's copy has every mart of DuckDB's: those of the `spark` selector with DuckDB's
    columns and rows, the others (not built on Spark) empty with DuckDB's columns."""
    con = duckdb.connect()
    try:
        con.execute(f"attach '{spark_copy}' as s (read_only)")
        con.execute(f"attach '{duck_copy}' as d (read_only)")

        def marts(catalog: str) -> set[str]:
            return {r[0] for r in con.execute(
                "select table_name from information_schema.tables "
                "where table_catalog = ? and table_schema = 'marts'", [catalog]).fetchall()}

        spark_marts, duck_marts = marts("s"), marts("d")
        assert spark_marts == duck_marts, sorted(spark_marts ^ duck_marts)
        built = duck_marts & models
        assert len(built) >= 15, sorted(built)
        differing = []
        for mart in sorted(spark_marts):
            columns = [[r[0] for r in con.execute(f"describe {c}.marts.{mart}").fetchall()]
                       for c in ("s", "d")]
            assert sorted(columns[0]) == sorted(columns[1]), mart
            if mart not in built:
                assert con.execute(f"select count(*) from s.marts.{mart}").fetchone() == (0,)
                continue
            counts = row_counts_if_different(con, f"d.marts.{mart}", f"s.marts.{mart}")
            if counts:
                differing.append(f"{mart} ({counts[0]} rows on DuckDB, {counts[1]} on Spark)")
        assert not differing, differing
    finally:
        con.close()


# --- the child-process jobs ------------------------------------------------------------------


def _publish(spark: Any, lake: str, duckdb_path: str) -> None:
    from ingestion.spark_lake import publish_raw, session_sql

    publish_raw(Path(duckdb_path), lake, session_sql(spark))


def _export(spark: Any, _lake: str, out: str, *databases: str) -> None:
    """Every table and view of `databases`, as `<out>/<database>.<name>.parquet`."""
    import pyarrow.parquet as pq

    for database in databases:
        for row in spark.sql(f"show tables in {database}").collect():
            table = spark.table(f"{database}.{row.tableName}").toArrow()
            pq.write_table(table, f"{out}/{database}.{row.tableName}.parquet")


_JOBS: dict[str, Callable[..., None]] = {"publish": _publish, "export": _export}


def _main(job: str, lake: str, *args: str) -> None:
    """`<job> <lake> <args>`: one job in its own session. `jobs <lake>`: every job read from
    stdin (a JSON list per line) until stdin ends, each answered on stdout with `ok` or its
    error, while everything else written to stdout (Spark's JVM inherits it) goes to stderr."""
    from orchestration.spark_steps import spark_session

    if job != "jobs" and job not in _JOBS:
        raise SystemExit(f"unknown job {job!r}")  # before Spark takes seconds to start
    replies = os.fdopen(os.dup(sys.stdout.fileno()), "w", buffering=1, encoding="utf-8",
                        errors="backslashreplace")
    os.dup2(sys.stderr.fileno(), sys.stdout.fileno())
    spark = spark_session(lake)
    try:
        if job != "jobs":
            _JOBS[job](spark, lake, *args)
            return
        for line in sys.stdin:
            name, *rest = json.loads(line)
            try:
                _JOBS[name](spark, lake, *rest)
                reply = "ok"
            except Exception as exc:  # noqa: BLE001 - the test reports it, with the log
                traceback.print_exc()
                reply = " ".join(f"{type(exc).__name__}: {exc}".splitlines())
            print(reply, file=replies)
    finally:
        spark.stop()


if __name__ == "__main__":
    _main(*sys.argv[1:])
