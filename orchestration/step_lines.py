"""The one-line summary of each finished pipeline step, as `crm-analytics run` prints it."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping
from typing import Any

from ingestion.erp.sync import SyncReport
from ingestion.events.files import EventLoadReport
from orchestration.progress import plural


def sync_line(report: SyncReport) -> str:
    """`8 tables (6 full, 2 incremental), 1,234 rows read`."""
    kinds = Counter(report.load_kind.values())
    how = ", ".join(f"{kinds[kind]} {kind}" for kind in ("full", "incremental") if kinds[kind])
    return (f"{plural(len(report.rows), 'table')} ({how or 'none'}), "
            f"{plural(sum(report.rows_read.values()), 'row')} read")


def events_line(report: EventLoadReport) -> str:
    """`3 folders, 6 files loaded (2 unchanged), 1,234 lines, 5 rejected`."""
    unchanged = f", {report.files_skipped:,} unchanged" if report.files_skipped else ""
    replaced = f", {report.files_replaced:,} replaced" if report.files_replaced else ""
    return (f"{plural(len(report.landing_dates), 'folder')}, "
            f"{plural(report.files_loaded, 'file')} loaded{replaced}{unchanged}, "
            f"{plural(report.lines, 'line')}, {report.rejected:,} rejected")


def dbt_counts(results: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """From dbt's run_results: nodes built (models, seeds) and tests by outcome (data tests,
    and unit tests when the build runs them)."""
    counts = {"models": 0, "seeds": 0, "passed": 0, "warned": 0, "failed": 0, "not built": 0}
    for result in results:
        kind = str(result.get("unique_id", "")).split(".", 1)[0]
        status = result.get("status")
        if kind in {"test", "unit_test"}:
            key = {"pass": "passed", "warn": "warned"}.get(status, "failed")
            if status == "skipped":
                continue
            counts[key] += 1
        elif kind in {"model", "seed"}:
            if status == "success":
                counts[f"{kind}s"] += 1
            else:
                counts["not built"] += 1
    return counts


def dbt_line(counts: Mapping[str, int]) -> str:
    """`18 models built (+1 seed); tests: 109 passed, 2 warned, 0 failed`."""
    built_too = f" (+{plural(counts['seeds'], 'seed')})" if counts.get("seeds") else ""
    not_built = f", {counts['not built']:,} not built" if counts["not built"] else ""
    return (f"{plural(counts['models'], 'model')} built{built_too}{not_built}; tests: "
            f"{counts['passed']:,} passed, {counts['warned']:,} warned, "
            f"{counts['failed']:,} failed")
