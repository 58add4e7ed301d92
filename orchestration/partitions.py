"""Landing-date partitions of the event files, and the partition range a pipeline run covers.

The event asset is partitioned by landing date (one partition per `<CRM_EVENTS_PATH>/<date>`
folder) with a single-run backfill policy, so a date-range backfill is one run. Every pipeline
run — command line, schedule or sensor — covers the range from the earliest landing folder to
the as-of date: the manifest makes already-loaded files free, and a folder that lands late for
an old date is still picked up.
"""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from dagster import DailyPartitionsDefinition

from crm_core.errors import CrmError
from crm_core.landing import landing_folders

#: First possible landing date. Folders dated earlier are not loaded.
EVENTS_START_DATE = date(2020, 1, 1)

landing_date_partitions = DailyPartitionsDefinition(
    start_date=EVENTS_START_DATE.isoformat(), end_offset=1
)

RANGE_START_TAG = "dagster/asset_partition_range_start"
RANGE_END_TAG = "dagster/asset_partition_range_end"


def landing_range_tags(events_path: Path, as_of: date) -> dict[str, str]:
    """Run tags selecting landing dates from the earliest folder up to `as_of`."""
    last_partition = datetime.now(UTC).date() + timedelta(days=1)
    if as_of > last_partition:
        raise CrmError(f"as-of date {as_of.isoformat()} is in the future")
    if as_of < EVENTS_START_DATE:
        raise CrmError(f"as-of date {as_of.isoformat()} is before {EVENTS_START_DATE}")
    dated = [day for day, _ in landing_folders(events_path)]
    start = max(min([d for d in dated if d <= as_of], default=as_of), EVENTS_START_DATE)
    return {RANGE_START_TAG: start.isoformat(), RANGE_END_TAG: as_of.isoformat()}
