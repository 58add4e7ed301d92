"""Campaign event files, loaded exactly once into `raw.campaign_events` (group `ingestion`)."""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.

from collections.abc import Iterator
from datetime import date

from dagster import (
    AssetExecutionContext,
    AssetKey,
    AssetSpec,
    BackfillPolicy,
    MaterializeResult,
    multi_asset,
)

from ingestion.events.files import load_events
from orchestration.assets.erp import ERP_ASSET_KEYS
from orchestration.partitions import landing_date_partitions
from orchestration.resources import CrmSettingsResource
from orchestration.run_config import AsOfConfig

EVENT_TABLES = {
    "campaign_events": "Every valid delivered event line (duplicates kept; dbt keeps the first "
                       "landed copy of each (source, id)).",
    "rejected_events": "Lines that could not be loaded: file, line number, reason code, raw text.",
    "event_files": "The manifest: each loaded file's path, size and checksum.",
}


@multi_asset(
    name="campaign_event_files",
    # After the sync, not beside it: a run whose sync fails (source down, warehouse locked)
    # then writes nothing at all, instead of landing the events and failing anyway.
    specs=[AssetSpec(AssetKey(["raw", name]), group_name="ingestion", kinds={"json"},
                     description=text, deps=ERP_ASSET_KEYS)
           for name, text in EVENT_TABLES.items()],
    partitions_def=landing_date_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    pool="crm_warehouse",
)
def campaign_event_files(context: AssetExecutionContext, crm: CrmSettingsResource,
                         config: AsOfConfig) -> Iterator[MaterializeResult]:
    """Load the run's landing folders (its partition range, up to the as-of date) whose files
    are new or changed."""
    settings = crm.settings()
    landing_dates = [date.fromisoformat(key) for key in context.partition_keys]
    as_of = date.fromisoformat(config.as_of_date) if config.as_of_date else max(landing_dates)
    with crm.warehouse() as wh:
        report = load_events(settings.events_path, wh, as_of=as_of, landing_dates=landing_dates)
    context.log.info(f"event files: {report}")
    for name in EVENT_TABLES:
        yield MaterializeResult(asset_key=AssetKey(["raw", name]),
                                metadata={"as_of_date": as_of.isoformat()})
