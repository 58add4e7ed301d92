"""`crm-analytics`: the commands of docs/contract.md section 4.

Every command prints `error: <one line>` and exits 1 on failure: no traceback, no password.
Heavy imports (Dagster, dbt, Streamlit) happen inside the command that needs them, so `--help`
is instant.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path

from crm_cli import digest_command
from crm_core.errors import CrmError, first_line
from crm_core.settings import PROJECT_ROOT, Settings


def _parse_date(text: str) -> date:
    try:
        return date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date (YYYY-MM-DD)") from None


def _positive_int(text: str) -> int:
    value = int(text)
    if value <= 0:
        raise argparse.ArgumentTypeError("must be a positive whole number")
    return value


def _role_name(text: str) -> str:
    from orchestration.warehouse_roles import check_role_name

    try:
        return check_role_name(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def _analyst(text: str) -> tuple[str, tuple[int, ...]]:
    from orchestration.warehouse_roles import parse_analyst

    try:
        return parse_analyst(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="crm-analytics",
        description="CRM analytics pipeline: ERP tables and campaign events -> dbt marts -> "
                    "dashboards. Configured by CRM_* environment variables (or ./.env).",
    )
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write a synthetic ERP database and event files",
                         description="Write a realistic, deterministic synthetic ERP database "
                                     "to CRM_SOURCE_URL and campaign event files to "
                                     "CRM_EVENTS_PATH (existing ERP tables are replaced).")
    gen.add_argument("--scale", choices=["small", "medium", "large"], default="small",
                     help="small: demo (~3k contacts); medium: ~100k; large: ~1M contacts, "
                          "10M events (default: small)")
    gen.add_argument("--days", type=_positive_int, default=90,
                     help="days of history (default: 90)")
    gen.add_argument("--seed", type=int, default=42, help="random seed (default: 42)")
    gen.add_argument("--end-date", type=_parse_date, default=None,
                     help="last day of generated data (default: today); fix it for "
                          "reproducible output")
    gen.add_argument("--quiet", action="store_true", help="no progress bar")

    run = sub.add_parser("run", help="one pipeline run: sync, events, dbt build and tests",
                         description="Sync the ERP tables, load every new or changed landing "
                                     "folder dated on or before --date, then build and test "
                                     "the dbt models, through the Dagster definitions.")
    run.add_argument("--date", type=_parse_date, default=None,
                     help="as-of date YYYY-MM-DD (default: today in CRM_REPORTING_TZ)")
    run.add_argument("--verbose", action="store_true", help="show Dagster's and dbt's logs")

    sub.add_parser("sync", help="only copy the ERP tables into the warehouse schema raw",
                   description="Copy every ERP table into the warehouse schema raw, "
                               "replacing the previous copy atomically.")

    demo = sub.add_parser("demo", help="generate demo data if absent, run, print headlines",
                          description="On the embedded defaults: generate the small demo "
                                      "dataset if there is none, run the pipeline, print the "
                                      "headline numbers and how to open the dashboards.")
    demo.add_argument("--date", type=_parse_date, default=None,
                      help="as-of date (default: today in CRM_REPORTING_TZ)")

    roles = sub.add_parser(
        "roles", help="PostgreSQL warehouse: create the writer, reader and analyst roles",
        description="On a PostgreSQL warehouse, create or update (idempotently) the pipeline "
                    "writer (owns every schema the pipeline writes), the dashboard reader "
                    "(reads marts and meta only) and tenant-scoped analysts (row-level security "
                    "on business_id in every mart). Run it as a superuser; then run the "
                    "pipeline as the writer. Missing roles are created as logins without a "
                    "password.")
    roles.add_argument("--writer", type=_role_name, default="crm_writer",
                       help="pipeline writer role (default: crm_writer)")
    roles.add_argument("--reader", type=_role_name, default="crm_reader",
                       help="dashboard reader role (default: crm_reader)")
    roles.add_argument("--analyst", type=_analyst, action="append", default=[],
                       metavar="ROLE=BUSINESS_ID[,BUSINESS_ID...]",
                       help="an analyst role and the businesses whose rows it may read; "
                            "repeat for more analysts")

    dash = sub.add_parser("dashboard", help="serve the Streamlit dashboards",
                          description="Serve the Streamlit dashboards over CRM_WAREHOUSE_URL.")
    dash.add_argument("--port", type=int, default=8501, help="port (default: 8501)")

    digest_command.add_parser(sub, _parse_date)
    return parser


def cmd_generate(settings: Settings, args: argparse.Namespace) -> None:
    from crm_demo.generator import generate

    report = generate(
        settings.source_url, settings.events_path, scale=args.scale, days=args.days,
        seed=args.seed, end_date=args.end_date, schema=settings.source_schema,
        progress=not args.quiet,
    )
    total = sum(report.rows.values())
    print(f"generated {total:,} ERP rows and {report.event_lines:,} event lines "
          f"in {report.event_files:,} files")


def cmd_sync(settings: Settings, _args: argparse.Namespace) -> None:
    from ingestion.erp.sync import sync_configured
    from ingestion.warehouse import open_warehouse
    from orchestration.run_lock import warehouse_write_lock

    with warehouse_write_lock(settings.warehouse):
        wh = open_warehouse(settings.warehouse)
        try:
            report = sync_configured(settings, wh)
        finally:
            wh.close()
    print(f"synced {len(report.rows)} tables, {sum(report.rows.values()):,} rows "
          f"into {settings.warehouse.describe()} in {report.seconds:.1f}s")


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from orchestration.runner import run_pipeline

    as_of = args.date or settings.today()
    outcome = run_pipeline(settings, as_of, verbose=args.verbose)
    print(f"pipeline run for {as_of.isoformat()} succeeded; marts are in "
          f"{settings.warehouse.describe()} (schema marts)")
    for line in outcome.warnings:  # warn-severity checks: the data loaded, but look at this
        print(f"warning: {line}")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
    import logging

    from streamlit.logger import get_logger

    # The headline numbers reuse the dashboards' cached queries; outside a Streamlit server the
    # cache warns that it has no runtime, which means nothing on the command line.
    get_logger("streamlit.runtime.caching.cache_data_api").setLevel(logging.ERROR)
    from crm_demo.generator import generate
    from dashboards.data import headline_numbers
    from orchestration.runner import run_pipeline

    source_file = settings.source_url.removeprefix("sqlite:///")
    has_demo = settings.source_url.startswith("sqlite:///") and Path(source_file).is_file()
    if not has_demo and settings.source_url.startswith("sqlite:///"):
        print("generating the demo ERP database and event files (small scale)...")
        generate(settings.source_url, settings.events_path, scale="small",
                 schema=settings.source_schema, progress=False)
    as_of = args.date or settings.today()
    print(f"running the pipeline for {as_of.isoformat()}...")
    run_pipeline(settings, as_of)
    print()
    for label, value in headline_numbers(settings):
        print(f"  {label:<28} {value}")
    print()
    print("Open the dashboards:  crm-analytics dashboard   (then http://localhost:8501)")


def cmd_roles(settings: Settings, args: argparse.Namespace) -> None:
    from orchestration.run_lock import warehouse_write_lock
    from orchestration.warehouse_roles import RoleSpec, apply_roles

    analysts: dict[str, tuple[int, ...]] = {}
    for role, ids in args.analyst:
        analysts[role] = tuple(sorted({*analysts.get(role, ()), *ids}))
    spec = RoleSpec(writer=args.writer, reader=args.reader, analysts=analysts)
    if settings.warehouse.is_duckdb:
        apply_roles(settings.warehouse, spec)  # raises: DuckDB has no roles
    with warehouse_write_lock(settings.warehouse):
        lines = apply_roles(settings.warehouse, spec)
    print(f"roles ready in {settings.warehouse.describe()}:")
    for line in lines:
        print(f"  {line}")
    print(f"Run the pipeline as {spec.writer} (CRM_WAREHOUSE_URL=postgresql://{spec.writer}:"
          "<password>@host:port/db).")


def cmd_dashboard(settings: Settings, args: argparse.Namespace) -> None:
    app = PROJECT_ROOT / "dashboards" / "app.py"
    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
            "--server.port", str(args.port), "--browser.gatherUsageStats", "false",
            "--client.toolbarMode", "minimal"]
    os.execv(sys.executable, argv)


COMMANDS = {
    "generate": cmd_generate,
    "run": cmd_run,
    "sync": cmd_sync,
    "demo": cmd_demo,
    "roles": cmd_roles,
    "dashboard": cmd_dashboard,
    "digest": digest_command.cmd_digest,
}


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        settings = Settings.from_env()
        COMMANDS[args.command](settings, args)
    except CrmError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:  # last resort: still one line, still no secrets
        from crm_core.urls import redact_url

        message = first_line(exc)
        for url in (os.environ.get("CRM_SOURCE_URL", ""), os.environ.get("CRM_WAREHOUSE_URL", "")):
            if url:
                message = message.replace(url, redact_url(url))
        print(f"error: unexpected {type(exc).__name__}: {message}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
