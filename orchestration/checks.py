"""Asset checks on the event files (too many rejected lines, a missing landing folder, landing
entries that are not loaded: a folder name that is not a date, a symlink out of the landing
folder) and on the CDC slot (too much WAL kept on the ERP). All warn (they never fail a run):
the data that did load is still good."""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.

from datetime import datetime, timedelta
from zoneinfo import ZoneInfo

from dagster import AssetCheckResult, AssetCheckSeverity, AssetKey, asset_check

from crm_core.landing import scan_landing
from orchestration.resources import CrmSettingsResource

#: Metadata key whose text the command line prints after a check's warning line.
SUMMARY_KEY = "summary"


@asset_check(asset=AssetKey(["raw", "rejected_events"]), name="reject_rate",
             description="Warns when the share of rejected lines in the files loaded by the "
                         "latest load exceeds CRM_REJECT_RATE_WARN (default 1%).",
             # it opens the warehouse, which DuckDB lets one process write at a time: in the
             # pool, it waits for the dbt step instead of failing on the file's lock
             pool="crm_warehouse")
def reject_rate(crm: CrmSettingsResource) -> AssetCheckResult:
    settings = crm.settings()
    with crm.warehouse() as wh:
        rows = wh.fetchall("""
            select coalesce(sum(lines), 0), coalesce(sum(rejected), 0)
            from raw.event_files
            where load_id = (select load_id from raw.event_files
                             order by loaded_at desc limit 1)
        """)
    lines, rejected = (int(v) for v in rows[0]) if rows else (0, 0)  # PostgreSQL: Decimal
    rate = rejected / lines if lines else 0.0
    passed = rate <= settings.reject_rate_warn
    said = "" if passed else (f"{rejected:,} of {lines:,} lines rejected in the latest load "
                              f"({rate:.1%}, above {settings.reject_rate_warn:.1%}): "
                              "see raw.rejected_events")
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.WARN,
        metadata={"lines": int(lines), "rejected": int(rejected), "reject_rate": rate,
                  "threshold": settings.reject_rate_warn, SUMMARY_KEY: said},
    )


@asset_check(asset=AssetKey(["raw", "campaign_events"]), name="landing_freshness",
             description="Warns when yesterday's landing folder is missing after "
                         "CRM_LANDING_DEADLINE_HOUR (local, default 06:00).")
def landing_freshness(crm: CrmSettingsResource) -> AssetCheckResult:
    settings = crm.settings()
    now = datetime.now(ZoneInfo(settings.reporting_tz))
    yesterday = (now - timedelta(days=1)).date()
    folder = settings.events_path / yesterday.isoformat()
    due = now.hour >= settings.landing_deadline_hour
    present = folder.is_dir()
    passed = present or not due
    said = "" if passed else (f"no landing folder {folder} for {yesterday.isoformat()} after "
                              f"{settings.landing_deadline_hour:02d}:00 "
                              f"{settings.reporting_tz}")
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.WARN,
        metadata={"expected_folder": str(folder), "present": present, "deadline_passed": due,
                  SUMMARY_KEY: said},
    )


@asset_check(asset=AssetKey(["raw", "crm_deals"]), name="cdc_retained_wal",
             description="CRM_SYNC_MODE=cdc: warns when the replication slot keeps more WAL "
                         "on the ERP's disk than CRM_CDC_RETAINED_WAL_WARN (default 1GB): "
                         "syncs are not keeping up, or have stopped.")
def cdc_retained_wal(crm: CrmSettingsResource) -> AssetCheckResult:
    settings = crm.settings()
    if settings.sync_mode != "cdc":
        return AssetCheckResult(passed=True, severity=AssetCheckSeverity.WARN,
                                metadata={"sync_mode": settings.sync_mode})
    from ingestion.erp.cdc_slot import retained_wal
    from ingestion.erp.sync import timeout_ms

    retained = retained_wal(settings.source_url, settings.source_schema, settings.cdc_slot,
                            timeout_ms(settings.source_statement_timeout))
    passed = retained is not None and retained <= settings.cdc_retained_wal_warn
    if retained is None:
        said = f"replication slot {settings.cdc_slot} is missing or lost on the ERP"
    else:
        said = "" if passed else (f"replication slot {settings.cdc_slot} keeps "
                                  f"{retained:,} bytes of WAL on the ERP (above "
                                  f"CRM_CDC_RETAINED_WAL_WARN, {settings.cdc_retained_wal_warn:,})")
    return AssetCheckResult(
        passed=passed, severity=AssetCheckSeverity.WARN,
        metadata={"slot": settings.cdc_slot, "slot_usable": retained is not None,
                  "retained_wal_bytes": retained or 0,
                  "threshold_bytes": settings.cdc_retained_wal_warn, SUMMARY_KEY: said},
    )


@asset_check(asset=AssetKey(["raw", "campaign_events"]), name="landing_folders",
             description="Warns when CRM_EVENTS_PATH holds entries that are not loaded: a "
                         "sub-folder whose name is not a real YYYY-MM-DD date, or a symlink "
                         "leading outside the landing folder.")
def landing_folders(crm: CrmSettingsResource) -> AssetCheckResult:
    scan = scan_landing(crm.settings().events_path)
    lines = scan.warnings()
    return AssetCheckResult(
        passed=not lines, severity=AssetCheckSeverity.WARN,
        metadata={"not_dates": scan.ignored, "outside": scan.outside,
                  SUMMARY_KEY: "; ".join(lines)},
    )
