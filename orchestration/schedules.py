"""The daily performance rollup: every day at 01:00 in `CRM_REPORTING_TZ`, a full pipeline run
(sync, events, dbt) for the day before — the last complete day."""

from datetime import timedelta

from dagster import RunRequest, ScheduleDefinition, ScheduleEvaluationContext, schedule

from crm_core.settings import Settings
from orchestration.jobs import as_of_run_config, crm_pipeline_job
from orchestration.partitions import landing_range_tags

DAILY_ROLLUP_CRON = "0 1 * * *"


def build_daily_rollup(reporting_tz: str) -> ScheduleDefinition:
    """The schedule in a given zone (the definitions pass the configured one)."""

    @schedule(name="daily_rollup", job=crm_pipeline_job, cron_schedule=DAILY_ROLLUP_CRON,
              execution_timezone=reporting_tz,
              description="01:00 local: roll up the previous day (sync, events, dbt).")
    def daily_rollup(context: ScheduleEvaluationContext) -> RunRequest:
        as_of = context.scheduled_execution_time.date() - timedelta(days=1)
        tags = landing_range_tags(Settings.from_env().events_path, as_of)
        return RunRequest(run_key=f"daily_rollup:{as_of}",
                          run_config=as_of_run_config(as_of.isoformat()),
                          tags={"crm/as_of_date": as_of.isoformat(), **tags})

    return daily_rollup


def daily_rollup_from_env() -> ScheduleDefinition:
    return build_daily_rollup(Settings.from_env().reporting_tz)
