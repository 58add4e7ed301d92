"""The one job: the whole asset graph (sync → events → dbt), as `crm-analytics run` runs it."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

#: Ops that take the run's as-of date (`AsOfConfig`).
AS_OF_OPS: tuple[str, ...] = ("campaign_event_files", "crm_dbt_models")

crm_pipeline_job = define_asset_job(
    "crm_pipeline",
    selection=AssetSelection.all(),
    description="Sync the ERP tables, load new event files, build and test the dbt models.",
    # One writer per warehouse: dagster_home/dagster.yaml limits runs with this tag to one.
    tags={"crm/warehouse": "writer"},
)


def as_of_run_config(as_of_date: str) -> dict:
    """Run config that hands the as-of date to every op that uses it."""
    return {"ops": {op: {"config": {"as_of_date": as_of_date}} for op in AS_OF_OPS}}
