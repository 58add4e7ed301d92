"""Settings: environment, `.env`, defaults, URL parsing and password redaction."""

from pathlib import Path

import pytest

from crm_core.errors import CrmError
from crm_core.settings import Settings
from crm_core.spark import Lake
from crm_core.urls import parse_warehouse_url, redact_url


def test_defaults_are_relative_to_the_working_directory(tmp_path: Path) -> None:
    s = Settings.from_env(environ={}, cwd=tmp_path)
    assert s.source_url == f"sqlite:///{tmp_path}/data/erp_demo.sqlite"
    assert s.events_path == tmp_path / "data/landing/events"
    assert s.warehouse.is_duckdb and s.warehouse.duckdb_path == tmp_path / "data/warehouse.duckdb"
    assert s.reporting_tz == "UTC" and s.source_schema == "public"


def test_environment_wins_over_dotenv_which_wins_over_defaults(tmp_path: Path) -> None:
    (tmp_path / ".env").write_text(
        "# comment\nCRM_REPORTING_TZ='America/New_York'\nexport CRM_SOURCE_SCHEMA=erp\n"
        "CRM_EVENTS_PATH=from_dotenv\n"
    )
    s = Settings.from_env(environ={"CRM_EVENTS_PATH": "/abs/events"}, cwd=tmp_path)
    assert s.reporting_tz == "America/New_York"
    assert s.source_schema == "erp"
    assert s.events_path == Path("/abs/events")


@pytest.mark.parametrize("zone", ["Mars/Base", "posix/Europe/Berlin", "right/UTC", "localtime",
                                  "posixrules"])
def test_unknown_time_zone_is_one_clear_line(tmp_path: Path, zone: str) -> None:
    """Python finds the `posix/`, `right/` and `localtime` files on this machine too, but
    the warehouses do not know those names: refused here, not deep inside dbt."""
    with pytest.raises(CrmError, match=f"unknown IANA time zone '{zone}'"):
        Settings.from_env(environ={"CRM_REPORTING_TZ": zone}, cwd=tmp_path)
    assert Settings.from_env(environ={"CRM_REPORTING_TZ": "Etc/GMT+5"},
                             cwd=tmp_path).reporting_tz == "Etc/GMT+5"


@pytest.mark.parametrize(("name", "value", "message"), [
    ("CRM_REJECT_RATE_WARN", "2", "CRM_REJECT_RATE_WARN must be a share from 0 to 1"),
    ("CRM_REJECT_RATE_WARN", "nan", "CRM_REJECT_RATE_WARN must be a share from 0 to 1"),
    ("CRM_REJECT_RATE_WARN", "-0.1", "CRM_REJECT_RATE_WARN must be a share from 0 to 1"),
    ("CRM_REJECT_RATE_WARN", "lots", "CRM_REJECT_RATE_WARN must be a share from 0 to 1"),
    ("CRM_LANDING_DEADLINE_HOUR", "25", "CRM_LANDING_DEADLINE_HOUR must be a whole hour"),
    ("CRM_LANDING_DEADLINE_HOUR", "-1", "CRM_LANDING_DEADLINE_HOUR must be a whole hour"),
    ("CRM_LANDING_DEADLINE_HOUR", "6.5", "CRM_LANDING_DEADLINE_HOUR must be a whole hour"),
])
def test_check_thresholds_out_of_range_are_refused_by_name(tmp_path: Path, name: str, value: str,
                                                           message: str) -> None:
    with pytest.raises(CrmError, match=message) as err:
        Settings.from_env(environ={name: value}, cwd=tmp_path)
    assert f"(got {value!r})" in str(err.value)


def test_edge_thresholds_are_accepted(tmp_path: Path) -> None:
    s = Settings.from_env(environ={"CRM_REJECT_RATE_WARN": "1", "CRM_LANDING_DEADLINE_HOUR": "23"},
                          cwd=tmp_path)
    assert (s.reject_rate_warn, s.landing_deadline_hour) == (1.0, 23)
    s = Settings.from_env(environ={"CRM_REJECT_RATE_WARN": "0", "CRM_LANDING_DEADLINE_HOUR": "0"},
                          cwd=tmp_path)
    assert (s.reject_rate_warn, s.landing_deadline_hour) == (0.0, 0)


def test_a_dotenv_that_is_not_utf8_is_named(tmp_path: Path) -> None:
    (tmp_path / ".env").write_bytes(b"CRM_REPORTING_TZ=Europe/Berlin\nCRM_CURRENCY=\xff\n")
    with pytest.raises(CrmError, match=r"\.env: not UTF-8 text \(byte 0xff at offset 44\)"):
        Settings.from_env(environ={}, cwd=tmp_path)


def test_warehouse_url_query_parameters_are_refused_not_ignored() -> None:
    with pytest.raises(CrmError, match="query parameters are not read.*PGSSLMODE=require"):
        parse_warehouse_url("postgresql://ana@db/wh?sslmode=require", Path("."))


def test_postgres_warehouse_url_is_parsed_and_never_printed_with_its_password() -> None:
    t = parse_warehouse_url("postgresql+psycopg://ana:s3cr%40t@db.example:6543/wh", Path("."))
    assert (t.kind, t.host, t.port, t.user, t.password, t.dbname) == (
        "postgres", "db.example", 6543, "ana", "s3cr@t", "wh")
    assert "s3cr" not in t.describe()
    assert redact_url("postgresql://ana:s3cr@db:5432/wh") == "postgresql://ana:***@db:5432/wh"
    assert redact_url("sqlite:///x.sqlite") == "sqlite:///x.sqlite"


@pytest.mark.parametrize("url", ["foo://bar", "duckdb:///", "postgresql://u:hunter2@h:notaport/db"])
def test_malformed_warehouse_urls(url: str) -> None:
    with pytest.raises(CrmError,
                       match="CRM_WAREHOUSE_URL: (malformed URL|unsupported scheme)") as err:
        parse_warehouse_url(url, Path("."))
    assert "hunter2" not in str(err.value)


@pytest.mark.parametrize(("text", "seconds"), [
    (None, 600), ("90", 90), ("45s", 45), ("10m", 600), ("2h", 7200), (" 1.5M ", 90),
])
def test_sync_overlap(tmp_path: Path, text: str | None, seconds: int) -> None:
    environ = {"CRM_SYNC_OVERLAP": text} if text is not None else {}
    assert Settings.from_env(environ=environ, cwd=tmp_path).sync_overlap.total_seconds() == \
        seconds


@pytest.mark.parametrize("text", ["soon", "-5", "10d", "inf", "nan"])
def test_bad_sync_overlap_is_one_clear_line(tmp_path: Path, text: str) -> None:
    with pytest.raises(CrmError, match=r"^CRM_SYNC_OVERLAP must be a duration"):
        Settings.from_env(environ={"CRM_SYNC_OVERLAP": text}, cwd=tmp_path)


def test_currency_and_digest_settings(tmp_path: Path) -> None:
    settings = Settings.from_env({"CRM_CURRENCY": " eur ", "CRM_SMTP_URL": "smtp://u:pw@h",
                                  "CRM_DIGEST_STALE_DEALS": "0"}, cwd=tmp_path)
    assert (settings.currency, settings.digest_stale_deals) == ("EUR", 0)
    assert "pw" not in repr(settings)
    assert Settings.from_env({}, cwd=tmp_path).currency is None
    for env, message in (({"CRM_CURRENCY": "euro"}, "ISO 4217"),
                         ({"CRM_DIGEST_STALE_DEALS": "-1"}, "whole number")):
        with pytest.raises(CrmError, match=message):
            Settings.from_env(env, cwd=tmp_path)


def test_spark_warehouse_urls_choose_the_method_and_the_lake_is_absolute(tmp_path: Path) -> None:
    session = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark+session://"}, cwd=tmp_path)
    assert (session.warehouse.kind, session.warehouse.spark_method) == ("spark", "session")
    assert session.warehouse.describe() == "spark+session://"
    assert session.lake_path == str(tmp_path / "data/lake")
    thrift = parse_warehouse_url("spark://etl:pw@spark.example", Path("."))
    assert (thrift.spark_method, thrift.host, thrift.port, thrift.user) == (
        "thrift", "spark.example", 10000, "etl")
    assert "pw" not in thrift.describe()
    assert parse_warehouse_url("spark://h:10001", Path(".")).port == 10001
    lake = Settings.from_env(environ={"CRM_LAKE_PATH": "s3a://bucket/crm/"}, cwd=tmp_path)
    assert lake.lake_path == "s3a://bucket/crm"
    assert (lake.lake_mount, lake.lake.folder) == (None, None)
    assert session.lake == Lake(str(tmp_path / "data/lake"), tmp_path / "data/lake")


def test_a_clusters_lake_on_object_storage_is_written_through_its_mount(tmp_path: Path) -> None:
    mounted = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark://spark.example",
                                         "CRM_LAKE_PATH": "s3a://bucket/crm",
                                         "CRM_LAKE_MOUNT": "mnt/crm"}, cwd=tmp_path)
    assert mounted.lake == Lake("s3a://bucket/crm", tmp_path / "mnt/crm", mounted=True)
    with pytest.raises(CrmError, match=r"^CRM_LAKE_MOUNT .*mnt/crm is not a folder: mount "
                                       r"s3a://bucket/crm there first$"):
        mounted.lake.local()  # a mount that is down never fills the local disk
    (tmp_path / "mnt/crm").mkdir(parents=True)
    assert mounted.lake.url_of(tmp_path / "mnt/crm/raw/t") == "s3a://bucket/crm/raw/t"
    # Hadoop's one-slash URLs are URLs too; file: ones are folders here
    dbfs = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark://spark.example",
                                      "CRM_LAKE_PATH": "dbfs:/mnt/crm/",
                                      "CRM_LAKE_MOUNT": "/dbfs/mnt/crm"}, cwd=tmp_path)
    assert (dbfs.lake_path, dbfs.lake.folder) == ("dbfs:/mnt/crm", Path("/dbfs/mnt/crm"))
    assert Lake.of("file:/srv/lake").folder == Lake.of("file:///srv/lake").folder == \
        Path("/srv/lake")
    for env, message in (
            ({"CRM_WAREHOUSE_URL": "spark+http://token:t@h/sql/protocolv1/o/1/c",
              "CRM_LAKE_PATH": "abfss://lake@acct.dfs.core.windows.net/crm"},
             "^CRM_LAKE_PATH abfss://lake@acct.dfs.core.windows.net/crm is not a folder on "
             "this machine: .* set CRM_LAKE_MOUNT"),
            ({"CRM_WAREHOUSE_URL": "spark+session://", "CRM_LAKE_MOUNT": "mnt/crm"},
             "^spark\\+session:// runs Spark on this machine: CRM_LAKE_PATH must be a folder"),
            ({"CRM_WAREHOUSE_URL": "spark+session://", "CRM_LAKE_PATH": "s3a://b/crm"},
             "^spark\\+session:// runs Spark on this machine")):
        with pytest.raises(CrmError, match=message):
            Settings.from_env(environ=env, cwd=tmp_path)


def test_a_spark_warehouse_stages_raw_in_a_local_duckdb_file(tmp_path: Path) -> None:
    default = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark+session://"}, cwd=tmp_path)
    staging = default.warehouse.staging()
    assert staging.is_duckdb and staging.duckdb_path == tmp_path / "data/spark_staging.duckdb"
    assert default.warehouse.has_serving_copy and default.warehouse.is_spark
    moved = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark+session://",
                                       "CRM_SPARK_STAGING_PATH": "elsewhere/s.duckdb"},
                              cwd=tmp_path)
    assert moved.warehouse.staging().duckdb_path == tmp_path / "elsewhere/s.duckdb"
    duck = Settings.from_env(environ={"CRM_SPARK_STAGING_PATH": "ignored.duckdb"}, cwd=tmp_path)
    assert duck.warehouse.staging() == duck.warehouse  # only Spark stages elsewhere
    postgres = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "postgresql://u@h/db"},
                                 cwd=tmp_path)
    assert not postgres.warehouse.has_serving_copy
    (tmp_path / "folder").mkdir()
    with pytest.raises(CrmError, match="CRM_SPARK_STAGING_PATH .* is a folder"):
        Settings.from_env(environ={"CRM_WAREHOUSE_URL": "spark+session://",
                                   "CRM_SPARK_STAGING_PATH": "folder"}, cwd=tmp_path)


@pytest.mark.parametrize("url", ["spark+session://host", "spark+session:///path", "spark://",
                                 "spark://h:notaport"])
def test_malformed_spark_urls(url: str) -> None:
    with pytest.raises(CrmError, match="CRM_WAREHOUSE_URL: .*(malformed URL|takes no host)"):
        parse_warehouse_url(url, Path("."))


def test_a_databricks_cluster_is_its_https_endpoint_with_a_token() -> None:
    url = "spark+http://token:dapi%2Bsecret@adb-7.azuredatabricks.net/sql/protocolv1/o/77/0102-ab"
    target = parse_warehouse_url(url, Path("."))
    assert (target.spark_method, target.host, target.port, target.password) == (
        "http", "adb-7.azuredatabricks.net", 443, "dapi+secret")
    assert target.spark_cluster == ("77", "0102-ab")
    assert target.describe() == \
        "spark+http://adb-7.azuredatabricks.net:443/sql/protocolv1/o/77/0102-ab"
    assert "secret" not in repr(target)


@pytest.mark.parametrize(("url", "message"), [
    ("spark+http://token:t@h.example/sql/1.0/warehouses/abc", "needs the cluster's path"),
    ("spark+http://h.example/sql/protocolv1/o/1/c", "needs an access token"),
    ("spark+http:///sql/protocolv1/o/1/c", "no host after spark\\+http://"),
])
def test_malformed_https_endpoints_say_what_is_missing(url: str, message: str) -> None:
    with pytest.raises(CrmError, match=f"CRM_WAREHOUSE_URL: .*{message}") as caught:
        parse_warehouse_url(url, Path("."))
    assert ":t@" not in str(caught.value)
