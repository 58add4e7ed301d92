"""`crm-analytics`: the commands of docs/contract.md section 4.

Every command prints `error: <one line>` and exits 1 on failure: no traceback, no password.
Heavy imports (Dagster, dbt, Streamlit) happen inside the command that needs them, so `--help`
is instant.
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import sys
from collections.abc import Sequence
from datetime import date
from pathlib import Path
from typing import NoReturn

from crm_cli import digest_command
from crm_core.errors import CrmError, first_line, redact
from crm_core.settings import Settings

#: The days `generate` may write: its events must be ones the loader accepts (not before
#: 1970), and ten years of history is beyond any demo or benchmark.
GENERATE_FIRST_DAY = date(1970, 1, 1)
GENERATE_LAST_DAY = date(2999, 12, 31)
GENERATE_MAX_DAYS = 3660


def _parse_date(text: str) -> date:
    from crm_core.landing import strict_date

    parsed = strict_date(text.strip())
    if parsed is None:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date: write a real calendar day as YYYY-MM-DD")
    return parsed


def _whole_number(text: str, low: int, high: int) -> int:
    try:
        value = int(text.strip())
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not accepted: a whole number from {low} to {high}")
    return value


def _positive_int(text: str) -> int:
    return _whole_number(text, 1, GENERATE_MAX_DAYS)


def _seed(text: str) -> int:
    return _whole_number(text, 0, 2**32 - 1)


def _port(text: str) -> int:
    return _whole_number(text, 1, 65535)


def _workers(text: str) -> int:
    return _whole_number(text, 1, 32)


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


class _Parser(argparse.ArgumentParser):
    """Usage mistakes as one line too (`error: ...`, exit 2), like every other error."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    from crm_cli.help import configuration_epilog

    parser = _Parser(
        prog="crm-analytics",
        description="CRM analytics pipeline: ERP tables and campaign events -> dbt marts -> "
                    "dashboards. Configured by CRM_* environment variables (or ./.env).",
        epilog=configuration_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    gen = sub.add_parser("generate", help="write a synthetic ERP database and event files",
                         description="Write a realistic, deterministic synthetic ERP database "
                                     "to CRM_SOURCE_URL and campaign event files to "
                                     "CRM_EVENTS_PATH. The existing ERP tables and every "
                                     "YYYY-MM-DD folder of CRM_EVENTS_PATH are replaced "
                                     "once all is written: interrupted, it leaves the folders "
                                     "and a SQLite ERP as they were.")
    gen.add_argument("--scale", choices=["small", "medium", "large"], default="small",
                     help="small: demo (~3k contacts); medium: ~100k; large: ~1M contacts, "
                          "10M events (default: small)")
    gen.add_argument("--days", type=_positive_int, default=90,
                     help=f"days of history, 1 to {GENERATE_MAX_DAYS} (default: 90)")
    gen.add_argument("--seed", type=_seed, default=42,
                     help="random seed, 0 to 4294967295 (default: 42)")
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
    talk = run.add_mutually_exclusive_group()
    talk.add_argument("--verbose", action="store_true", help="show Dagster's and dbt's logs")
    talk.add_argument("--quiet", action="store_true",
                      help="no step lines or progress: only the outcome, warnings and errors")

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

    cdc = sub.add_parser(
        "cdc", help="PostgreSQL source: set up, inspect or drop change data capture",
        description="Manage the publication and logical replication slot (named "
                    "CRM_CDC_SLOT) that CRM_SYNC_MODE=cdc reads on the ERP's PostgreSQL "
                    "database. setup needs the REPLICATION attribute, CREATE on the database "
                    "and ownership of the ERP tables; drop releases the WAL the slot keeps.")
    cdc.add_argument("action", choices=["setup", "status", "drop"])

    dash = sub.add_parser("dashboard", help="serve the Streamlit dashboards",
                          description="Serve the Streamlit dashboards over CRM_WAREHOUSE_URL. "
                                      "In demo mode (no sign-in configured) they listen on "
                                      "127.0.0.1 only unless --host says otherwise.")
    dash.add_argument("--port", type=_port, default=8501, help="port, 1 to 65535 (default: 8501)")
    dash.add_argument("--host", default=None,
                      help="address to listen on (default: 127.0.0.1 in demo mode, else all)")
    dash.add_argument("--workers", type=_workers, default=1,
                      help="Streamlit processes to run behind nginx, 1 to 32 (default: 1, "
                           "no proxy); more than one needs nginx installed")

    serve = sub.add_parser("serve", help="serve the Dagster UI and daemon on the run history",
                           description="Serve the Dagster UI and its daemon on the instance "
                                       "`run` records into (DAGSTER_HOME, else dagster_home "
                                       "beside the warehouse's data). The daily rollup "
                                       "schedule and the landing sensor are on.")
    serve.add_argument("--port", type=_port, default=3000,
                       help="port, 1 to 65535 (default: 3000)")
    serve.add_argument("--host", default="127.0.0.1",
                       help="address to listen on (default: 127.0.0.1)")

    digest_command.add_parser(sub, _parse_date)
    return parser


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("crm-analytics")
    except PackageNotFoundError:  # run from a checkout that was never installed
        return "unknown (not installed)"


def cmd_generate(settings: Settings, args: argparse.Namespace) -> None:
    from datetime import UTC, datetime

    from crm_demo.generator import generate

    end = args.end_date or datetime.now(UTC).date()  # as `generate` defaults it
    if not (GENERATE_FIRST_DAY <= end <= GENERATE_LAST_DAY
            and (end - GENERATE_FIRST_DAY).days + 1 >= args.days):
        raise CrmError(f"--end-date {end.isoformat()} with --days {args.days} is out of range: "
                       f"the generated days must lie from {GENERATE_FIRST_DAY.isoformat()} to "
                       f"{GENERATE_LAST_DAY.isoformat()}")

    report = generate(
        settings.source_url, settings.events_path, scale=args.scale, days=args.days,
        seed=args.seed, end_date=args.end_date, schema=settings.source_schema,
        progress=not args.quiet,
    )
    total = sum(report.rows.values())
    print(f"generated {total:,} ERP rows and {report.event_lines:,} event lines "
          f"in {report.event_files:,} files")


def cmd_sync(settings: Settings, _args: argparse.Namespace) -> None:
    from ingestion.erp.source import require_sqlite_file
    from ingestion.erp.sync import sync_configured
    from ingestion.warehouse import open_warehouse
    from orchestration.run_lock import warehouse_write_lock

    require_sqlite_file(settings.source_url)  # before the warehouse file is created
    with warehouse_write_lock(settings.warehouse):
        wh = open_warehouse(settings.warehouse)
        try:
            report = sync_configured(settings, wh)
        finally:
            wh.close()
        if settings.warehouse.is_spark:  # staged locally: now the lake's raw
            from orchestration.spark_steps import publish_lake_raw

            publish_lake_raw(settings, tables=list(report.rows))
    print(f"synced {len(report.rows)} tables, {sum(report.rows.values()):,} rows "
          f"into {settings.warehouse.describe()} in {report.seconds:.1f}s")
    for line in report.warnings:
        print(f"warning: {line}")


def cmd_cdc(settings: Settings, args: argparse.Namespace) -> None:
    from ingestion.erp.cdc_slot import run_command
    from ingestion.erp.source import ErpSource
    from ingestion.erp.sync import timeout_ms

    timeout = timeout_ms(settings.source_statement_timeout)
    source = ErpSource(settings.source_url, settings.source_schema, timeout)
    if source.backend != "postgresql":
        raise CrmError(f"cdc needs a PostgreSQL source (CRM_SOURCE_URL is {source.backend})")
    tables: list[str] = []
    if args.action == "setup":
        with source.snapshot() as conn:
            tables = [t.name for t in source.tables(conn)]
    for line in run_command(args.action, settings.source_url, settings.source_schema,
                            settings.cdc_slot, timeout, tables):
        print(line)


def cmd_run(settings: Settings, args: argparse.Namespace) -> None:
    from orchestration.runner import run_pipeline

    as_of = args.date or settings.today()
    outcome = run_pipeline(settings, as_of, verbose=args.verbose, quiet=args.quiet)
    print(f"pipeline run for {as_of.isoformat()} succeeded; marts are in "
          f"{settings.warehouse.describe()} (schema marts)")
    for line in outcome.warnings:  # warn-severity checks: the data loaded, but look at this
        print(f"warning: {line}")


def cmd_demo(settings: Settings, args: argparse.Namespace) -> None:
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
    outcome = run_pipeline(settings, as_of)
    for line in outcome.warnings:  # e.g. demo data generated days ago: no folder for yesterday
        print(f"warning: {line}")
    print()
    print("All data, every business (the dashboards open on the last 90 days):")
    for label, value in headline_numbers(settings):
        print(f"  {label:<28} {value}")
    print()
    command = _command_name()
    print(f"Open the dashboards:  {command} dashboard   (then http://localhost:8501)")
    print(f"See the runs:         {command} serve       (then http://localhost:3000)")


def _command_name() -> str:
    """How to type this command from here: its bare name when the shell finds it, else the
    console script beside the running Python (`.venv/bin/crm-analytics` after `make demo`,
    whose virtualenv is not on PATH)."""
    import shutil

    if shutil.which("crm-analytics"):
        return "crm-analytics"
    script = Path(sys.executable).parent / "crm-analytics"
    if not script.is_file():
        return "crm-analytics"
    try:
        return str(script.relative_to(Path.cwd()))
    except ValueError:
        return str(script)


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
    from crm_cli.serve import serve_dashboards

    serve_dashboards(settings, args.host, args.port, args.workers)


def cmd_serve(settings: Settings, args: argparse.Namespace) -> None:
    from crm_cli.serve import serve_dagster

    serve_dagster(settings, args.host, args.port)


COMMANDS = {
    "generate": cmd_generate,
    "run": cmd_run,
    "sync": cmd_sync,
    "demo": cmd_demo,
    "roles": cmd_roles,
    "dashboard": cmd_dashboard,
    "cdc": cmd_cdc,
    "serve": cmd_serve,
    "digest": digest_command.cmd_digest,
}

#: The commands that work with a Spark CRM_WAREHOUSE_URL, in-process or a Thrift server.
#: `roles` manages PostgreSQL roles; on Spark, access is granted in the cluster's own catalog.
SPARK_COMMANDS = ("generate", "run", "sync", "demo", "dashboard", "serve", "digest")


def _check_spark_command(settings: Settings, command: str) -> None:
    if command == "roles":
        raise CrmError(f"CRM_WAREHOUSE_URL {settings.warehouse.describe()}: `crm-analytics "
                       "roles` creates PostgreSQL roles; on Spark, grant access in the "
                       "cluster's catalog instead (docs/spark.md)")
    if command not in SPARK_COMMANDS:
        raise CrmError(f"CRM_WAREHOUSE_URL {settings.warehouse.describe()}: `crm-analytics "
                       f"{command}` does not drive a Spark warehouse (docs/spark.md)")
    if command not in SPARK_DRIVING_COMMANDS:
        return
    missing = [module for module in SPARK_MODULES if importlib.util.find_spec(module) is None]
    if missing:
        raise CrmError(f"CRM_WAREHOUSE_URL {settings.warehouse.describe()}: the Spark extra is "
                       f"not installed (no {', '.join(missing)}): pip install "
                       "'crm-analytics[spark]' (docs/spark.md)")


#: What the `spark` extra brings: the in-process session, the Thrift client, dbt's adapter.
SPARK_MODULES = ("pyspark", "pyhive", "dbt.adapters.spark")
#: The commands that run Spark steps (the rest read the local serving copy or write the ERP).
SPARK_DRIVING_COMMANDS = ("run", "sync", "demo", "serve")


def _refused_by_database(exc: BaseException) -> str | None:
    """A privilege the database refused (SQLSTATE 42501), from psycopg or from a driver
    SQLAlchemy wraps, as one line that says which role to look at; None for anything else."""
    for error in (exc, getattr(exc, "orig", None), exc.__cause__, exc.__context__):
        sqlstate = getattr(error, "sqlstate", None) or getattr(error, "pgcode", None)
        if error is not None and sqlstate == "42501":
            return (f"the database refused: {first_line(error)} (a role in CRM_WAREHOUSE_URL or "
                    "CRM_SOURCE_URL lacks the privilege; `crm-analytics roles` sets up the "
                    "warehouse's writer: docs/operations.md)")
    return None


#: The settings whose values may carry a password (URLs), masked in any unexpected error.
SECRET_URL_SETTINGS = ("CRM_SOURCE_URL", "CRM_WAREHOUSE_URL", "CRM_SMTP_URL")


def _without_secrets(message: str) -> str:
    """`message` with every URL setting (from the environment or ./.env, even one the
    settings could not parse) shown without its passwords, and those passwords masked
    wherever else they appear."""
    from crm_core.settings import read_dotenv
    from crm_core.urls import redact_url, url_passwords

    try:
        dotenv = read_dotenv(Path.cwd() / ".env")
    except (OSError, ValueError):
        dotenv = {}
    for name in SECRET_URL_SETTINGS:
        for url in {os.environ.get(name, ""), dotenv.get(name, "")} - {""}:
            message = redact(message.replace(url, redact_url(url)), url_passwords(url))
    return message


class _Interrupts:
    """Whether Ctrl-C (SIGINT) arrived. A library may turn the KeyboardInterrupt into an
    error of its own (Dagster: a step interrupted; a module half-imported when it struck:
    an ImportError later); whatever surfaces, an interrupted command says so."""

    seen = False

    @classmethod
    def install(cls) -> None:
        import signal

        if signal.getsignal(signal.SIGINT) is signal.default_int_handler:
            signal.signal(signal.SIGINT, cls._handler)

    @classmethod
    def _handler(cls, signum: int, frame: object) -> None:
        cls.seen = True
        raise KeyboardInterrupt


def _quiet_library_logs() -> None:
    """SQLAlchemy logs a connection it could not close (a Ctrl-C mid-query) with a traceback
    through Python's last-resort handler; the command's own line says what happened."""
    import logging

    pool = logging.getLogger("sqlalchemy.pool")
    pool.addHandler(logging.NullHandler())
    pool.propagate = False


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    _Interrupts.install()
    _quiet_library_logs()
    # "Exception ignored in …" (a library's generator closed by a Ctrl-C, say) is by definition
    # nothing the user can act on; the command's own line says what happened.
    sys.unraisablehook = lambda _unraisable: None
    try:
        settings = Settings.from_env()
        if settings.warehouse.is_spark:
            _check_spark_command(settings, args.command)
        COMMANDS[args.command](settings, args)
    except KeyboardInterrupt:
        print("error: interrupted", file=sys.stderr)
        return 130
    except CrmError as exc:
        if _Interrupts.seen:
            print("error: interrupted", file=sys.stderr)
            return 130
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except Exception as exc:  # last resort: still one line, still no secrets
        if _Interrupts.seen:
            print("error: interrupted", file=sys.stderr)
            return 130
        line = _refused_by_database(exc) or f"unexpected {type(exc).__name__}: {first_line(exc)}"
        print(f"error: {_without_secrets(line)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
