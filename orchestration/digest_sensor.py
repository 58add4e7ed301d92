"""Sends the daily digest after each successful scheduled daily rollup.

The digest's own log (`dashboards.digest.DigestLog`) decides who still needs that day's
e-mail, so a sensor tick that repeats sends nothing twice, and a digest that failed is sent by
the next `crm-analytics digest` (or the next rollup's tick for its own day). Failures are
logged on the tick as one line each; the sensor itself never fails the run.
"""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.

from dagster import DagsterRunStatus, RunStatusSensorContext, SkipReason, run_status_sensor

from ingestion.errors import CrmError
from orchestration.jobs import crm_pipeline_job
from orchestration.settings import Settings


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[crm_pipeline_job],
                   name="daily_digest", minimum_interval_seconds=60,
                   description="After the daily rollup succeeds: e-mail each digest recipient "
                               "(access-file users with `digest: true`) through CRM_SMTP_URL.")
def daily_digest(context: RunStatusSensorContext):
    if context.dagster_run.tags.get("dagster/schedule_name") != "daily_rollup":
        return SkipReason("not the scheduled daily rollup")
    settings = Settings.from_env()
    if settings.access_file is None or settings.smtp_url is None:
        return SkipReason("no digest: CRM_ACCESS_FILE and CRM_SMTP_URL must both be set")
    from dashboards.digest import run_digest  # heavy: only when a digest is due

    try:
        outcome = run_digest(settings)
    except CrmError as exc:
        context.log.error(f"error: {exc}")
        return SkipReason(f"digest not sent: {exc}")
    for line in outcome.errors:
        context.log.error(f"error: {line}")
    return SkipReason(f"digest for {outcome.as_of}: sent {len(outcome.sent)}, already sent "
                      f"{len(outcome.skipped)}, failed {len(outcome.errors)}")
