"""The top-level `--help`'s list of configuration variables, with their defaults."""

from __future__ import annotations

from crm_core.settings import DEFAULTS

#: What each variable of `Settings` means, in a few words (docs/contract.md section 1, README).
MEANINGS: dict[str, str] = {
    "CRM_SOURCE_URL": "the ERP database (sqlite:///path or postgresql+psycopg://user:pw@host/db)",
    "CRM_SOURCE_SCHEMA": "schema of the ERP tables (PostgreSQL)",
    "CRM_EVENTS_PATH": "landing folder of the campaign event files",
    "CRM_WAREHOUSE_URL": "the warehouse (duckdb:///path, postgresql://user:pw@host/db, "
                         "spark://host:port or spark+session://)",
    "CRM_LAKE_PATH": "Spark warehouse: folder or URL of the raw Parquet tables and Spark's own",
    "CRM_LAKE_MOUNT": "Spark cluster: folder where this machine mounts a CRM_LAKE_PATH URL",
    "CRM_SPARK_STAGING_PATH": "Spark warehouse: local DuckDB file raw is staged in (and served "
                              "beside)",
    "CRM_REPORTING_TZ": "IANA zone in which timestamps become dates",
    "CRM_REJECT_RATE_WARN": "share of rejected event lines the reject_rate check warns above",
    "CRM_LANDING_DEADLINE_HOUR": "local hour by which yesterday's landing folder is due",
    "CRM_SYNC_OVERLAP": "how far before its cursor an incremental sync reads again",
    "CRM_SOURCE_STATEMENT_TIMEOUT": "longest a statement on the ERP database may run",
    "CRM_ACCESS_FILE": "dashboards: YAML file of who may see which tenant",
    "CRM_AUTH": "dashboards: auto, oidc, header or none (demo mode)",
    "CRM_AUTH_HEADER": "dashboards: header carrying the signed-in user (CRM_AUTH=header)",
    "CRM_PII_KEY": "secret key of the hashes staging keeps of phones and tax numbers",
    "CRM_MAX_EVENT_LINE_BYTES": "longest event line in bytes; longer is rejected (line_too_long)",
    "CRM_SYNC_MODE": "how the ERP is read: readonly (queries) or cdc (logical decoding)",
    "CRM_CDC_SLOT": "name of the replication slot and publication CRM_SYNC_MODE=cdc reads",
    "CRM_CDC_RETAINED_WAL_WARN": "WAL the slot keeps above which cdc_retained_wal warns",
    "CRM_CURRENCY": "ISO 4217 code the dashboards and the digest show money in",
    "CRM_SMTP_URL": "smtp://[user:pw@]host[:port] the daily digest is sent through",
    "CRM_DIGEST_FROM": "the digest's From address",
    "CRM_DIGEST_STALE_DEALS": "stale deals in a scope above which the digest alerts",
}

DAGSTER_HOME_DEFAULT = ("dagster_home beside the DuckDB file (Spark: the staging file); "
                        "data/dagster_home for PostgreSQL")


def configuration_epilog() -> str:
    """Every variable with its meaning and default, for `crm-analytics --help`."""
    rows = [(name, MEANINGS.get(name, ""), DEFAULTS[name] or "unset") for name in DEFAULTS]
    rows.append(("DAGSTER_HOME", "the Dagster instance that records every run",
                 DAGSTER_HOME_DEFAULT))
    lines = ["configuration (environment variables, or KEY=VALUE lines in ./.env; the "
             "environment wins):"]
    for name, meaning, default in rows:
        lines.append(f"  {name:<29} {meaning}")
        lines.append(f"  {'':<29} default: {default}")
    return "\n".join(lines)
