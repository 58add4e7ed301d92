"""Running the Dagster job in this process, and turning a failed run into one line."""

from __future__ import annotations

import contextlib
import io
import logging
import re
import warnings
from dataclasses import dataclass, field
from datetime import date
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


def run_pipeline(settings: Settings, as_of: date, *, verbose: bool = False) -> RunOutcome:
    """Materialize the whole asset graph for `as_of`; returns the run id and its warnings.

    Raises `CrmError("step <op> failed: <cause>")` when a step fails, and refuses to start while
    another run writes the same warehouse."""
    from orchestration.partitions import landing_range_tags

    tags = landing_range_tags(settings.events_path, as_of)
    with warehouse_write_lock(settings.warehouse):
        return _execute(as_of, tags, verbose)


def _execute(as_of: date, tags: dict[str, str], verbose: bool) -> RunOutcome:
    from orchestration.dbt_project import ensure_manifest

    ensure_manifest()
    from dagster import DagsterInstance

    from orchestration.definitions import defs
    from orchestration.jobs import as_of_run_config

    run_config: dict[str, Any] = as_of_run_config(as_of.isoformat())
    log_level = "INFO" if verbose else "CRITICAL"
    run_config["loggers"] = {"console": {"config": {"log_level": log_level}}}
    if not verbose:
        warnings.filterwarnings("ignore")
        logging.getLogger("dagster").setLevel(logging.CRITICAL)
    job = defs.resolve_job_def("crm_pipeline")
    # dagster-dbt echoes dbt's log to stdout; keep it for --verbose only.
    quiet = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(io.StringIO())
    with DagsterInstance.ephemeral() as instance, quiet:
        result = job.execute_in_process(run_config=run_config, instance=instance, tags=tags,
                                        raise_on_error=False)
    if not result.success:
        raise CrmError(describe_failure(result))
    return RunOutcome(result.run_id, describe_warnings(result))


def describe_warnings(result: Any) -> list[str]:
    """'<asset>: check <name> warned (<n> failing rows)' for every check that did not pass."""
    lines = []
    for evaluation in result.get_asset_check_evaluations():
        if evaluation.passed:
            continue
        failures = evaluation.metadata.get("dagster_dbt/failed_row_count")
        count = f" ({failures.value} failing rows)" if failures is not None else ""
        lines.append(f"{evaluation.asset_key.to_user_string()}: check "
                     f"{evaluation.check_name} warned{count}")
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
