"""The one Dagster instance every run is recorded in: the command line's runs, the schedule's
and the sensor's, so the UI shows all of them with their materializations, checks and logs.

Where it lives (`dagster_home_path`): `DAGSTER_HOME` when set; otherwise a `dagster_home`
folder beside the warehouse's data — next to the DuckDB file (Spark: its staging file), or,
for a PostgreSQL warehouse (which has no local folder), `data/dagster_home` under the working
directory, where the demo keeps its data too. A home without a `dagster.yaml` gets the project's
(`dagster_home/dagster.yaml`: one writer per warehouse, no telemetry); an existing one is
never touched, so a deployment's own settings (e.g. storage in PostgreSQL) stay in charge.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING

from crm_core.errors import CrmError, first_line
from crm_core.settings import PROJECT_ROOT, Settings

if TYPE_CHECKING:
    from dagster import DagsterInstance

#: The instance settings a new home starts with.
TEMPLATE_YAML = PROJECT_ROOT / "dagster_home" / "dagster.yaml"

#: Tag on runs the command line executes in its own process, so a run whose process died
#: (killed, power cut) can be told apart from one the daemon launched.
LAUNCHED_BY_TAG = "crm/launched_by"


def dagster_home_path(settings: Settings, cwd: Path | None = None) -> Path:
    """`DAGSTER_HOME` (environment or `./.env`), else `dagster_home` beside the warehouse's
    data (see the module doc)."""
    if settings.dagster_home is not None:
        return settings.dagster_home
    if settings.warehouse.duckdb_path is not None:  # DuckDB, or Spark's staging file
        return settings.warehouse.duckdb_path.parent / "dagster_home"
    return (cwd or Path.cwd()).resolve() / "data" / "dagster_home"


def ensure_dagster_home(home: Path) -> Path:
    """Create the home with the project's `dagster.yaml` unless it has one already."""
    try:
        home.mkdir(parents=True, exist_ok=True)
        config = home / "dagster.yaml"
        if not config.exists():
            shutil.copyfile(TEMPLATE_YAML, config)
    except OSError as exc:
        raise CrmError(f"Dagster home {home} cannot be created: {first_line(exc)} "
                       "(set DAGSTER_HOME to a writable folder)") from None
    return home


@contextmanager
def dagster_instance(home: Path) -> Iterator[DagsterInstance]:
    """The persistent instance in `home` (`DAGSTER_HOME` points at it while it is open, so
    `DagsterInstance.get()` — which Dagster's own code calls — finds the same one)."""
    from dagster import DagsterInstance

    ensure_dagster_home(home)
    previous = os.environ.get("DAGSTER_HOME")
    os.environ["DAGSTER_HOME"] = str(home)
    try:
        try:
            instance = DagsterInstance.get()
        except Exception as exc:  # YAML, config and storage errors have no common base
            raise CrmError(f"the Dagster instance in {home} cannot be opened: "
                           f"{_instance_problem(exc)} (check {home / 'dagster.yaml'})") from None
        try:
            yield instance
        finally:
            instance.dispose()
    finally:
        if previous is None:
            os.environ.pop("DAGSTER_HOME", None)
        else:
            os.environ["DAGSTER_HOME"] = previous


def _instance_problem(exc: BaseException) -> str:
    """The line that names what is wrong: a YAML error's problem and place; Dagster's config
    errors put it on the second line ("Error 1: Value at path root:run_storage must be dict…"),
    after a generic first one."""
    mark = getattr(exc, "problem_mark", None)  # YAML: what and where
    if mark is not None:
        problem = getattr(exc, "problem", None) or getattr(exc, "context", None) or "not YAML"
        return f"{problem} at line {mark.line + 1}, column {mark.column + 1}"
    details = [line.strip() for line in str(exc).splitlines() if line.strip()]
    named = [line for line in details if line.startswith("Error 1:")]
    line = named[0].removeprefix("Error 1: ") if named else first_line(exc)
    # Dagster quotes the value it refused, which may be a password: its path says enough.
    line = _ORIGINAL_VALUE.sub("", _QUOTED_VALUE.sub("The value, of type", line))
    return line.removeprefix("Failure condition: ")  # how Dagster's internal checks start


#: `Value "<the value>" of type`, as Dagster's config errors quote what they refused.
_QUOTED_VALUE = re.compile(r'Value ".*" of type')
#: `… of original value {…}` / `got {…}`: the rest of such a line quotes it whole.
_ORIGINAL_VALUE = re.compile(r"\s*(of original value|got)\s*[{\[(\"'].*$")


def fail_orphaned_cli_runs(instance: DagsterInstance) -> list[str]:
    """Mark as failed the command-line runs still recorded as started, and free their op
    slots. Call it only while holding the warehouse's write lock: then no other command-line
    run is alive, so such a run's process died. Left alone it would count against the
    one-writer limit forever and the daemon would queue every later run behind it."""
    from dagster import DagsterRunStatus, RunsFilter

    orphans = instance.get_runs(RunsFilter(
        statuses=[DagsterRunStatus.STARTED, DagsterRunStatus.STARTING],
        tags={LAUNCHED_BY_TAG: "cli"}))
    for run in orphans:
        instance.report_run_failed(run, "the command-line process running it ended without "
                                        "finishing it (killed or crashed)")
        instance.event_log_storage.free_concurrency_slots_for_run(run.run_id)
    return [run.run_id for run in orphans]
