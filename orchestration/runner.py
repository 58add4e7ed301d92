"""Running the Dagster job in this process, recorded in the persistent instance
(`orchestration/instance.py`), and turning a failed run into one line."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import sys
import warnings
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

from crm_core.errors import CrmError
from crm_core.settings import Settings
from orchestration.run_lock import warehouse_write_lock


@dataclass
class RunOutcome:
    """A successful run: its id, and one line per check that warned (dbt tests with severity
    warn, the reject-rate and freshness checks): the run still succeeded, but a person should
    look."""

    run_id: str
    warnings: list[str] = field(default_factory=list)


def run_pipeline(settings: Settings, as_of: date, *, verbose: bool = False,
                 quiet: bool = False) -> RunOutcome:
    """Materialize the whole asset graph for `as_of`; returns the run id and its warnings.

    The run is recorded in the persistent Dagster instance, and each step prints one line as it
    finishes (a live display on a terminal; nothing when `quiet`). Raises
    `CrmError("step <op> failed: <cause>")` when a step fails, and refuses to start while
    another run writes the same warehouse. A first run that fails leaves nothing behind: no
    warehouse file, no lock file, no Dagster home, no `data/` folder it created."""
    from ingestion.erp.source import require_sqlite_file
    from orchestration.instance import dagster_home_path
    from orchestration.partitions import landing_range_tags

    require_sqlite_file(settings.source_url)  # before anything is created
    tags = landing_range_tags(settings.events_path, as_of)
    home = dagster_home_path(settings)
    created = _absent([home, *_warehouse_files(settings)])
    try:
        with warehouse_write_lock(settings.warehouse):
            return _execute(as_of, tags, verbose, quiet, home)
    except BaseException:
        if settings.warehouse.is_duckdb and settings.warehouse.duckdb_path in created:
            _remove(created)
        raise


def _warehouse_files(settings: Settings) -> list[Path]:
    """The DuckDB file, its WAL and every folder above it a run would create."""
    path = settings.warehouse.duckdb_path
    if path is None:
        return []
    return [path, path.with_name(path.name + ".wal"), *path.parents]


def _absent(paths: list[Path]) -> list[Path]:
    return [p for p in paths if not p.exists()]


def _remove(paths: list[Path]) -> None:
    """Remove what a failed first run created: files, then folders deepest first (a folder
    only when empty after that, so nothing else is ever lost)."""
    import shutil

    for path in paths:
        if path.is_file():
            path.unlink(missing_ok=True)
        elif path.name == "dagster_home" and path.is_dir():
            shutil.rmtree(path, ignore_errors=True)
    for path in sorted((p for p in paths if p.is_dir()), key=lambda p: -len(p.parts)):
        with contextlib.suppress(OSError):
            path.rmdir()


def _execute(as_of: date, tags: dict[str, str], verbose: bool, quiet: bool,
             home: Path) -> RunOutcome:
    from orchestration.dbt_project import ensure_manifest

    ensure_manifest()
    from orchestration import progress
    from orchestration.definitions import defs
    from orchestration.instance import LAUNCHED_BY_TAG, dagster_instance, fail_orphaned_cli_runs
    from orchestration.jobs import as_of_run_config

    _log_mirrors_in_their_own_process_group()
    run_config: dict[str, Any] = as_of_run_config(as_of.isoformat())
    log_level = "INFO" if verbose else "CRITICAL"
    run_config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    if not verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("dagster").setLevel(logging.CRITICAL)
    job = defs.resolve_job_def("crm_pipeline")
    # dagster-dbt echoes dbt's log to stdout; keep it for --verbose only.
    reporter = progress.reporter_for(sys.stdout, quiet=quiet, verbose=verbose)
    hush = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with dagster_instance(home) as instance, progress.reporting(reporter), hush:
        fail_orphaned_cli_runs(instance)  # we hold the write lock: no other CLI run is alive
        result = job.execute_in_process(run_config=run_config, instance=instance,
                                        tags={**tags, LAUNCHED_BY_TAG: "cli",
                                              "crm/as_of_date": as_of.isoformat()},
                                        raise_on_error=False)
    if not result.success:
        if _interrupted(result):  # Ctrl-C: Dagster's own SIGINT handler made it a failure
            raise KeyboardInterrupt
        raise CrmError(describe_failure(result))
    return RunOutcome(result.run_id, describe_warnings(result))


class _OwnProcessGroup:
    """`subprocess` as Dagster's compute-log module sees it: every process it starts gets a
    process group of its own."""

    def __getattr__(self, name: str) -> Any:
        import subprocess

        return getattr(subprocess, name)

    @staticmethod
    def Popen(*args: Any, **kwargs: Any) -> Any:  # noqa: N802 (subprocess's name)
        import subprocess

        kwargs.setdefault("process_group", 0)
        return subprocess.Popen(*args, **kwargs)


def _log_mirrors_in_their_own_process_group() -> None:
    """Each step of an in-process run starts helpers that mirror its captured output to the
    terminal (`tail`, and a Python watcher that stops it if this process dies). In this
    process's group, a Ctrl-C at the terminal reaches them too, and each watcher prints a
    KeyboardInterrupt traceback. In their own group, only this process sees the Ctrl-C; Dagster
    stops them when the step ends, interrupted or not (SIGTERM: silent)."""
    from dagster._core.execution import compute_logs

    if not isinstance(getattr(compute_logs, "subprocess", None), _OwnProcessGroup):
        compute_logs.subprocess = _OwnProcessGroup()  # type: ignore[attr-defined]


def _interrupted(result: Any) -> bool:
    """Whether the run stopped because the process was interrupted (SIGINT)."""
    for event in result.all_events:
        error = getattr(event.event_specific_data, "error", None)
        while error is not None:
            if error.cls_name == "DagsterExecutionInterruptedError":
                return True
            error = error.cause or error.context
    return False


def describe_warnings(result: Any) -> list[str]:
    """'<asset>: check <name> warned (<n> failing rows)' for every check that did not pass."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        failures = evaluation.metadata.get("dagster_dbt/failed_row_count")
        count = f" ({failures.value} failing rows)" if failures is not None else ""
        summary = evaluation.metadata.get("summary")
        said = f": {summary.value}" if summary is not None and summary.value else ""
        lines.append(f"{evaluation.asset_key.to_user_string()}: check "
                     f"{evaluation.check_name} warned{count}{said}")
    return sorted(lines)


def describe_failure(result: Any) -> str:
    """'step <op> failed: <cause>' from the first failed step; our own `CrmError` message when
    the cause is one, otherwise the innermost error's first line (never a traceback)."""
    for event in result.all_events:
        if event.is_step_failure:
            error = event.step_failure_data.error
            return f"step {event.step_key} failed: {_root_cause(error)}"
    for event in result.all_events:
        if event.is_failure and event.event_specific_data is not None:
            error = getattr(event.event_specific_data, "error", None)
            if error is not None:
                return f"run failed: {_root_cause(error)}"
    return "run failed (no step reported an error)"


def _root_cause(error: Any) -> str:
    """Our own `CrmError` message when one is in the chain, else the innermost error's first
    line, without its `package.module.Class: ` prefix."""
    chain = []
    while error is not None:
        chain.append(error)
        error = error.cause or error.context
    ours = [err for err in chain if err.cls_name == "CrmError"]
    err = ours[0] if ours else chain[-1]
    lines = [ln for ln in err.message.strip().splitlines() if ln.strip()]
    text = lines[0] if lines else err.cls_name
    return re.sub(r"^[\w.]*" + re.escape(err.cls_name) + r": ", "", text)
