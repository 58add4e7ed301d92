"""Sends the daily digest after each successful scheduled daily rollup.

The digest is built from the dashboards' queries (`dashboards.digest`), a layer Dagster's
definitions may not import (docs/contributing.md, "Layers"). So the sensor runs the command
line's `crm-analytics digest` in a child process with the same environment: one code path for
the digest whether a person or the schedule asks for it, and nothing of Streamlit loaded into
the Dagster daemon.

The digest's own log (`dashboards.digest.DigestLog`) decides who still needs that day's
e-mail, so a sensor tick that repeats sends nothing twice, and a digest that failed is sent by
the next `crm-analytics digest` (or the next rollup's tick for its own day). Failures are
logged on the tick as one line each; the sensor itself never fails the run.
"""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.

import subprocess
import sys

from dagster import DagsterRunStatus, RunStatusSensorContext, SkipReason, run_status_sensor

from crm_core.errors import CrmError
from crm_core.settings import Settings
from orchestration.jobs import crm_pipeline_job

#: The command line's entry module: a process boundary, not an import.
CLI_MODULE = "crm_cli.cli"
#: Longest a digest run may take before the tick gives up (the next tick retries).
DIGEST_TIMEOUT_SECONDS = 600


@run_status_sensor(run_status=DagsterRunStatus.SUCCESS, monitored_jobs=[crm_pipeline_job],
                   name="daily_digest", minimum_interval_seconds=60,
                   description="After the daily rollup succeeds: e-mail each digest recipient "
                               "(access-file users with `digest: true`) through CRM_SMTP_URL.")
def daily_digest(context: RunStatusSensorContext):
    if context.dagster_run.tags.get("dagster/schedule_name") != "daily_rollup":
        return SkipReason("not the scheduled daily rollup")
    try:
        settings = Settings.from_env()
    except CrmError as exc:
        context.log.error(f"error: {exc}")
        return SkipReason(f"digest not sent: {exc}")
    if settings.access_file is None or settings.smtp_url is None:
        return SkipReason("no digest: CRM_ACCESS_FILE and CRM_SMTP_URL must both be set")
    try:
        proc = subprocess.run([sys.executable, "-m", CLI_MODULE, "digest"],
                              capture_output=True, text=True, timeout=DIGEST_TIMEOUT_SECONDS,
                              check=False)
    except subprocess.TimeoutExpired:
        context.log.error(f"error: the digest took over {DIGEST_TIMEOUT_SECONDS} s")
        return SkipReason("digest not finished in time; the next run retries it")
    errors = [line for line in proc.stderr.splitlines() if line.startswith("error: ")]
    for line in errors:
        context.log.error(line)
    summary = "; ".join(proc.stdout.splitlines()[-3:]) or "no output"
    return SkipReason(f"digest exit {proc.returncode}: {summary}"
                      + (f" ({len(errors)} error(s) logged)" if errors else ""))
