"""A small table of successful runs in the warehouse (`meta.pipeline_runs`), so the dashboards
can say "data as of <date>, last run <time>" without asking Dagster."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pyarrow as pa

from ingestion.warehouse import Warehouse

RUN_LOG_SCHEMA = pa.schema([
    pa.field("run_id", pa.string()),
    pa.field("as_of_date", pa.date32()),
    pa.field("finished_at", pa.timestamp("us", tz="UTC")),
])


def record_successful_run(wh: Warehouse, *, as_of: date, run_id: str) -> None:
    with wh.transaction():
        if not wh.table_exists("meta", "pipeline_runs"):
            wh.create_table("meta", "pipeline_runs", RUN_LOG_SCHEMA)
        row = pa.table({"run_id": [run_id], "as_of_date": [as_of],
                        "finished_at": [datetime.now(UTC)]}, schema=RUN_LOG_SCHEMA)
        wh.append("meta", "pipeline_runs", row)
