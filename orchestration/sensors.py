"""A sensor that starts a pipeline run when a landing file appears or changes.

It fingerprints the landing folders (path, size, modification time) without opening the
warehouse — a run may be writing it — and asks for a run when the fingerprint moves. The run
itself compares checksums with the manifest, so a touched-but-identical file loads nothing.
"""
# No `from __future__ import annotations`: Dagster reads the parameter annotations at runtime.

import hashlib
from pathlib import Path

from dagster import RunRequest, SensorEvaluationContext, SkipReason, sensor

from crm_core.landing import is_event_file, landing_folders
from crm_core.settings import Settings
from orchestration.jobs import as_of_run_config, crm_pipeline_job
from orchestration.partitions import landing_range_tags


def landing_fingerprint(events_path: Path) -> str:
    """A digest of every event file's path, size and mtime in dated landing folders."""
    digest = hashlib.sha256()
    for _, folder in landing_folders(events_path):
        for path in sorted(folder.iterdir()):
            if is_event_file(path) and path.is_file():
                stat = path.stat()
                digest.update(f"{folder.name}/{path.name}|{stat.st_size}|"
                              f"{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()


@sensor(job=crm_pipeline_job, minimum_interval_seconds=60,
        description="Runs the pipeline (as of today) when a landing file is new or changed.")
def new_landing_files(context: SensorEvaluationContext):
    settings = Settings.from_env()
    fingerprint = landing_fingerprint(settings.events_path)
    if fingerprint == context.cursor:
        return SkipReason("no new or changed landing files")
    context.update_cursor(fingerprint)
    as_of = settings.today()
    return RunRequest(run_key=f"landing:{fingerprint[:16]}",
                      run_config=as_of_run_config(as_of.isoformat()),
                      tags={"crm/as_of_date": as_of.isoformat(),
                            "crm/trigger": "new_landing_files",
                            **landing_range_tags(settings.events_path, as_of)})
