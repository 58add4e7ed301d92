"""The one `Definitions` of the CRM pipeline, assembled from small modules.

`dagster dev` (from the repository root) and `crm-analytics run` load this same object.
"""

from __future__ import annotations

from dagster import Definitions

from orchestration.assets.dbt import crm_dbt_models
from orchestration.assets.erp import erp_tables
from orchestration.assets.events import campaign_event_files
from orchestration.checks import cdc_retained_wal, landing_folders, landing_freshness, reject_rate
from orchestration.dbt_project import dbt_resource
from orchestration.digest_sensor import daily_digest
from orchestration.jobs import crm_pipeline_job
from orchestration.resources import CrmSettingsResource
from orchestration.schedules import daily_rollup_from_env
from orchestration.sensors import new_landing_files

defs = Definitions(
    assets=[erp_tables, campaign_event_files, crm_dbt_models],
    asset_checks=[reject_rate, landing_freshness, landing_folders, cdc_retained_wal],
    jobs=[crm_pipeline_job],
    schedules=[daily_rollup_from_env()],
    sensors=[new_landing_files, daily_digest],
    resources={
        "crm": CrmSettingsResource(),
        "dbt": dbt_resource(),
    },
)
