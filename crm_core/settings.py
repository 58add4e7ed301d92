"""The one typed settings object: environment (and `./.env`) -> `Settings`.

Everything configurable comes through here (docs/contract.md section 1) so that resources, the CLI
and the dashboards agree on what the configuration is. Stdlib only: it is imported everywhere.
"""

from __future__ import annotations

import functools
import os
import re
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo, available_timezones

from crm_core.errors import CrmError
from crm_core.landing import MAX_LINE_BYTES, max_line_bytes_from
from crm_core.spark import URL_SCHEME, Lake, is_local_lake
from crm_core.urls import (
    WarehouseTarget,
    check_source_scheme,
    check_url,
    parse_warehouse_url,
    redact_url,
)

#: The repository root: the dbt project, profiles.yml and the Dagster code live here.
PROJECT_ROOT = Path(__file__).resolve().parents[1]

DEFAULTS: dict[str, str] = {
    "CRM_SOURCE_URL": "sqlite:///data/erp_demo.sqlite",
    "CRM_SOURCE_SCHEMA": "public",
    "CRM_EVENTS_PATH": "data/landing/events",
    "CRM_WAREHOUSE_URL": "duckdb:///data/warehouse.duckdb",
    "CRM_REPORTING_TZ": "UTC",
    # Spark warehouse (beyond the contract): where the raw Parquet tables and Spark's own
    # warehouse folder live (a folder, or a URL the Spark cluster reads).
    "CRM_LAKE_PATH": "data/lake",
    # Spark warehouse (beyond the contract): the folder where this machine mounts a lake whose
    # CRM_LAKE_PATH is a bucket URL (the files are written there, the cluster reads the bucket).
    "CRM_LAKE_MOUNT": "",
    # Spark warehouse (beyond the contract): the local DuckDB file the sync and the event
    # loader stage `raw` in (validation, dedup, manifest, rejects), published to the lake after
    # each load; the run log and the dashboards' serving copy live beside it.
    "CRM_SPARK_STAGING_PATH": "data/spark_staging.duckdb",
    # Operations (beyond the contract): asset-check thresholds.
    "CRM_REJECT_RATE_WARN": "0.01",
    "CRM_LANDING_DEADLINE_HOUR": "6",
    # Events (beyond the contract): the longest event line loaded; longer is `line_too_long`.
    "CRM_MAX_EVENT_LINE_BYTES": "1048576",
    # Sync (beyond the contract): how far before its cursor an incremental sync looks again.
    "CRM_SYNC_OVERLAP": "10m",
    # Sync (beyond the contract): the longest a statement on the ERP database may run.
    "CRM_SOURCE_STATEMENT_TIMEOUT": "15m",
    # Sync (beyond the contract): `readonly` (queries) or `cdc` (logical decoding), its slot,
    # and the retained WAL above which the slot's asset check warns.
    "CRM_SYNC_MODE": "readonly",
    "CRM_CDC_SLOT": "crm_analytics",
    "CRM_CDC_RETAINED_WAL_WARN": "1GB",
    # Dashboards (beyond the contract): who may see which tenant.
    "CRM_ACCESS_FILE": "",
    "CRM_AUTH": "auto",
    "CRM_AUTH_HEADER": "X-Forwarded-Email",
    # Security (beyond the contract): the key of the keyed hashes of phones and tax numbers.
    "CRM_PII_KEY": "",
    # Dashboards and digest (beyond the contract): ISO 4217 code money is shown in; empty =
    # plain numbers.
    "CRM_CURRENCY": "",
    # Daily digest (beyond the contract): SMTP server, sender, stale-deal alert threshold.
    "CRM_SMTP_URL": "",
    "CRM_DIGEST_FROM": "crm-analytics@localhost",
    "CRM_DIGEST_STALE_DEALS": "10",
}

#: How the ERP is synced: `readonly` reads the tables with queries only (cursors, xmin,
#: fingerprints; nothing is written to the ERP); `cdc` reads a logical replication slot the
#: pipeline owns on a PostgreSQL ERP (docs/cdc.md).
SYNC_MODES = ("readonly", "cdc")

#: Shortest accepted CRM_PII_KEY (characters): a random secret, not a word.
MIN_PII_KEY_LENGTH = 16

#: How the dashboards learn who is looking: `auto` = OIDC when Streamlit's `[auth]` secrets
#: are configured, otherwise demo mode; `oidc`; `header` (a trusted authenticating proxy);
#: `none` (demo mode: everything visible, badged "demo — not signed in").
AUTH_MODES = ("auto", "oidc", "header", "none")


def parse_duration(text: str, name: str) -> timedelta:
    """`600`, `600s`, `10m` or `1h` as a `timedelta` (a bare number is seconds)."""
    value = text.strip().lower()
    units = {"s": 1, "m": 60, "h": 3600}
    factor = units.get(value[-1:])
    number = value[:-1] if factor else value
    try:
        seconds = float(number) * (factor or 1)
    except ValueError:
        seconds = -1
    if not 0 <= seconds < 10**9:
        raise CrmError(f"{name} must be a duration such as 600, 600s, 10m or 1h "
                       f"(got {text!r})")
    return timedelta(seconds=seconds)


def parse_bytes(text: str, name: str) -> int:
    """`1073741824`, `512MB` or `1GB` (binary units) as a number of bytes."""
    value = text.strip().upper().removesuffix("B")
    units = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}
    factor = units.get(value[-1:], 1)
    try:
        number = float(value[:-1] if value[-1:] in units else value) * factor
    except ValueError:
        number = -1
    if not 0 < number < 1 << 60:
        raise CrmError(f"{name} must be a size such as 512MB or 1GB (got {text!r})")
    return int(number)


def _positive(value: timedelta, name: str) -> timedelta:
    """A duration that must be above zero (PostgreSQL reads a 0 timeout as "no timeout")."""
    if value <= timedelta(0):
        raise CrmError(f"{name} must be above zero (got {value.total_seconds():g}s)")
    return value


@functools.cache
def _warehouse_time_zones() -> frozenset[str]:
    """The IANA zone names every warehouse knows: Python's list, which leaves out the
    `posix/` and `right/` copies, less `localtime` (this machine's zone, unknown to DuckDB)."""
    return frozenset(available_timezones() - {"localtime"})


def read_dotenv(path: Path) -> dict[str, str]:
    """Parse a simple `.env` file (KEY=VALUE, # comments, optional quotes)."""
    values: dict[str, str] = {}
    if not path.is_file():
        return values
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError as exc:
        raise CrmError(f"{path}: not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset "
                       f"{exc.start}); save it as UTF-8") from None
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#") or "=" not in line:
            continue
        key, _, value = line.partition("=")
        key = key.strip().removeprefix("export ").strip()
        value = value.strip()
        if len(value) >= 2 and value[0] == value[-1] and value[0] in "\"'":
            value = value[1:-1]
        values[key] = value
    return values


def _absolute_sqlite_url(url: str, cwd: Path) -> str:
    """SQLAlchemy resolves `sqlite:///rel` against the process cwd; pin it to `cwd` now."""
    prefix = "sqlite:///"
    if url.startswith(prefix) and not url.startswith(prefix + "/") and ":memory:" not in url:
        return prefix + str((cwd / url[len(prefix):]).resolve())
    return url


def _lake_path(text: str, cwd: Path) -> str:
    """A URL (`s3a://bucket/crm`, `dbfs:/mnt/crm`, `file:///...`) as it is; a folder made
    absolute."""
    text = text.strip() or DEFAULTS["CRM_LAKE_PATH"]
    if URL_SCHEME.match(text):
        return text.rstrip("/")
    return str((cwd / text).resolve())


def _lake_mount(text: str, lake_path: str, warehouse_url: str, cwd: Path) -> Path | None:
    """The folder a cluster's lake is mounted at here (absolute, as written: a mount point is
    not resolved through links), if any. A Spark warehouse whose lake is a URL this machine
    cannot write needs one; an in-process Spark reads the lake from this machine, so for it the
    lake is the folder itself."""
    mount = text.strip()
    if warehouse_url.startswith("spark+session:"):
        if mount or not is_local_lake(lake_path):
            raise CrmError("spark+session:// runs Spark on this machine: CRM_LAKE_PATH must be "
                           "a folder here, and CRM_LAKE_MOUNT is for a cluster's lake only")
    elif warehouse_url.startswith("spark") and not mount and not is_local_lake(lake_path):
        raise CrmError(f"CRM_LAKE_PATH {lake_path} is not a folder on this machine: mount the "
                       "same storage here and set CRM_LAKE_MOUNT to that folder "
                       "(docs/spark.md)")
    return (cwd / mount).absolute() if mount else None


def _with_staging(target: WarehouseTarget, staging: str, cwd: Path) -> WarehouseTarget:
    """A Spark warehouse with its local DuckDB staging file (absolute); others unchanged."""
    if not target.is_spark:
        return target
    path = (cwd / (staging.strip() or DEFAULTS["CRM_SPARK_STAGING_PATH"])).resolve()
    if path.is_dir():
        raise CrmError(f"CRM_SPARK_STAGING_PATH {path} is a folder: it must name a DuckDB file")
    return replace(target, duckdb_path=path)


@dataclass(frozen=True)
class Settings:
    """Resolved configuration. Paths are absolute; URLs keep their passwords (never print them:
    use `redact_url`)."""

    source_url: str
    source_schema: str
    events_path: Path
    warehouse_url: str
    reporting_tz: str
    warehouse: WarehouseTarget = field(repr=False)
    #: Spark warehouses: the lake as Spark names it (an absolute folder, or a URL such as
    #: s3a://bucket/crm).
    lake_path: str = ""
    #: Spark warehouses: where this machine mounts a lake whose `lake_path` is a URL.
    lake_mount: Path | None = None
    #: Share of rejected event lines above which the reject-rate check warns.
    reject_rate_warn: float = 0.01
    #: Local hour by which yesterday's landing folder should exist (freshness check).
    landing_deadline_hour: int = 6
    #: How far before its cursor an incremental sync reads again: rows whose transaction
    #: committed up to this long after a later-stamped one are still caught.
    sync_overlap: timedelta = timedelta(minutes=10)
    #: The statement timeout every source connection sets: a sync never holds the ERP's
    #: database (or waits on one of its locks) for longer.
    source_statement_timeout: timedelta = timedelta(minutes=15)
    #: `readonly` or `cdc` (`SYNC_MODES`).
    sync_mode: str = "readonly"
    #: Name of the replication slot and publication the `cdc` mode owns on the source.
    cdc_slot: str = "crm_analytics"
    #: WAL the slot may keep on the source (bytes) before its asset check warns.
    cdc_retained_wal_warn: int = 1 << 30
    #: YAML file: user -> the business and branch ids they may see (dashboards).
    access_file: Path | None = None
    #: One of `AUTH_MODES`.
    auth: str = "auto"
    #: Request header carrying the signed-in user when `auth` is `header`.
    auth_header: str = "X-Forwarded-Email"
    #: Key of the HMAC-SHA256 digests staging keeps instead of phones and tax numbers
    #: (orchestration/pii.py); None: no key, the digests are NULL. Never printed.
    pii_key: str | None = field(default=None, repr=False)
    #: Longest event line in bytes; a longer one is rejected as `line_too_long`.
    max_event_line_bytes: int = MAX_LINE_BYTES
    #: ISO 4217 code of the money the ERP records (upper case); None: no currency shown.
    currency: str | None = None
    #: smtp://[user:password@]host[:port] (or smtps://, or smtp+starttls://) the daily digest
    #: is sent through; None: the digest can only be printed (`--dry-run`). Never printed.
    smtp_url: str | None = field(default=None, repr=False)
    #: The digest's From address.
    digest_from: str = "crm-analytics@localhost"
    #: The digest alerts when a recipient's scope has more stale deals than this.
    digest_stale_deals: int = 10
    #: The Dagster instance's folder when `DAGSTER_HOME` is set (environment or `./.env`);
    #: None: `orchestration.instance.dagster_home_path` places it beside the warehouse's data.
    dagster_home: Path | None = None

    @property
    def lake(self) -> Lake:
        """The Spark warehouse's lake: Spark's name for it and the folder this machine writes."""
        return Lake.of(self.lake_path, self.lake_mount)

    @classmethod
    def from_env(cls, environ: dict[str, str] | None = None, cwd: Path | None = None) -> Settings:
        """Environment wins over `./.env`, which wins over the defaults."""
        cwd = (cwd or Path.cwd()).resolve()
        env = dict(DEFAULTS)
        dotenv = read_dotenv(cwd / ".env")
        env.update({k: v for k, v in dotenv.items() if k in DEFAULTS})
        source = os.environ if environ is None else environ
        env.update({k: source[k] for k in DEFAULTS if source.get(k)})
        # Dagster's own variable: not one of ours (no default here), but read the same way.
        dagster_home = (source.get("DAGSTER_HOME") or dotenv.get("DAGSTER_HOME") or "").strip()

        tz = env["CRM_REPORTING_TZ"].strip()
        if tz not in _warehouse_time_zones():
            raise CrmError(f"CRM_REPORTING_TZ: unknown IANA time zone {tz!r} (a name such as "
                           "UTC or Europe/Berlin)")

        source_url = env["CRM_SOURCE_URL"].strip()
        if "://" not in source_url:
            raise CrmError("CRM_SOURCE_URL: malformed URL (expected e.g. sqlite:///path or "
                           "postgresql+psycopg://user@host:5432/db)")
        check_source_scheme(source_url)
        warehouse_url = env["CRM_WAREHOUSE_URL"].strip()
        check_url("CRM_SOURCE_URL", source_url)
        check_url("CRM_WAREHOUSE_URL", warehouse_url)
        smtp_url = env["CRM_SMTP_URL"].strip()
        if smtp_url:
            check_url("CRM_SMTP_URL", smtp_url)
        events_path = (cwd / env["CRM_EVENTS_PATH"]).resolve()
        if events_path.exists() and not events_path.is_dir():
            raise CrmError(f"CRM_EVENTS_PATH {events_path} is a file: it must be a folder "
                           "(the landing folder holding one YYYY-MM-DD folder per day)")
        try:
            reject_rate_warn = float(env["CRM_REJECT_RATE_WARN"])
        except ValueError:
            reject_rate_warn = -1.0
        if not 0 <= reject_rate_warn <= 1:  # NaN too
            raise CrmError("CRM_REJECT_RATE_WARN must be a share from 0 to 1, such as 0.01 "
                           f"(got {env['CRM_REJECT_RATE_WARN']!r})")
        deadline_text = env["CRM_LANDING_DEADLINE_HOUR"].strip()
        if not re.fullmatch(r"[0-9]{1,2}", deadline_text) or int(deadline_text) > 23:
            raise CrmError("CRM_LANDING_DEADLINE_HOUR must be a whole hour from 0 to 23 "
                           f"(got {env['CRM_LANDING_DEADLINE_HOUR']!r})")
        deadline = int(deadline_text)
        auth = env["CRM_AUTH"].strip().lower() or "auto"
        if auth not in AUTH_MODES:
            raise CrmError(f"CRM_AUTH must be one of {', '.join(AUTH_MODES)}, not {auth!r}")
        access_file = env["CRM_ACCESS_FILE"].strip()
        sync_mode = env["CRM_SYNC_MODE"].strip().lower() or "readonly"
        if sync_mode not in SYNC_MODES:
            raise CrmError(f"CRM_SYNC_MODE must be one of {', '.join(SYNC_MODES)}, "
                           f"not {sync_mode!r}")
        cdc_slot = env["CRM_CDC_SLOT"].strip()
        if not re.fullmatch(r"[a-z0-9_]{1,63}", cdc_slot):
            raise CrmError("CRM_CDC_SLOT must be 1-63 lower-case letters, digits or "
                           f"underscores (a replication slot name), not {cdc_slot!r}")
        pii_key = env["CRM_PII_KEY"].strip()
        if pii_key and len(pii_key) < MIN_PII_KEY_LENGTH:
            raise CrmError(f"CRM_PII_KEY must be at least {MIN_PII_KEY_LENGTH} characters (a "
                           "random secret, e.g. from `openssl rand -hex 32`)")
        currency = env["CRM_CURRENCY"].strip().upper()
        if currency and not (len(currency) == 3 and currency.isascii() and currency.isalpha()):
            raise CrmError(f"CRM_CURRENCY must be an ISO 4217 code such as EUR or USD (got "
                           f"{env['CRM_CURRENCY']!r})")
        try:
            stale_deals = int(env["CRM_DIGEST_STALE_DEALS"])
        except ValueError:
            stale_deals = -1
        if stale_deals < 0:
            raise CrmError("CRM_DIGEST_STALE_DEALS must be a whole number of deals, 0 or more "
                           f"(got {env['CRM_DIGEST_STALE_DEALS']!r})")
        lake_path = _lake_path(env["CRM_LAKE_PATH"], cwd)
        return cls(
            source_url=_absolute_sqlite_url(source_url, cwd),
            source_schema=env["CRM_SOURCE_SCHEMA"].strip() or "public",
            events_path=events_path,
            warehouse_url=warehouse_url,
            reporting_tz=tz,
            warehouse=_with_staging(parse_warehouse_url(warehouse_url, cwd),
                                    env["CRM_SPARK_STAGING_PATH"], cwd),
            lake_path=lake_path,
            lake_mount=_lake_mount(env["CRM_LAKE_MOUNT"], lake_path, warehouse_url, cwd),
            reject_rate_warn=reject_rate_warn,
            landing_deadline_hour=deadline,
            sync_overlap=parse_duration(env["CRM_SYNC_OVERLAP"], "CRM_SYNC_OVERLAP"),
            source_statement_timeout=_positive(parse_duration(
                env["CRM_SOURCE_STATEMENT_TIMEOUT"], "CRM_SOURCE_STATEMENT_TIMEOUT"),
                "CRM_SOURCE_STATEMENT_TIMEOUT"),
            sync_mode=sync_mode,
            cdc_slot=cdc_slot,
            cdc_retained_wal_warn=parse_bytes(env["CRM_CDC_RETAINED_WAL_WARN"],
                                              "CRM_CDC_RETAINED_WAL_WARN"),
            access_file=(cwd / access_file).resolve() if access_file else None,
            auth=auth,
            auth_header=env["CRM_AUTH_HEADER"].strip() or "X-Forwarded-Email",
            pii_key=pii_key or None,
            max_event_line_bytes=max_line_bytes_from(env["CRM_MAX_EVENT_LINE_BYTES"].strip()),
            currency=currency or None,
            smtp_url=smtp_url or None,
            digest_from=env["CRM_DIGEST_FROM"].strip() or "crm-analytics@localhost",
            digest_stale_deals=stale_deals,
            dagster_home=(cwd / dagster_home).resolve() if dagster_home else None,
        )

    def today(self) -> date:
        """Today in the reporting time zone: the default as-of date."""
        return datetime.now(ZoneInfo(self.reporting_tz)).date()


__all__ = ["PROJECT_ROOT", "Settings", "redact_url"]
