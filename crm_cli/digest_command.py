"""`crm-analytics digest`: the daily digest by hand (the logic is `dashboards.digest`).

Kept apart from `crm_cli.cli` so the CLI only registers it; the dashboards' modules are
imported when the command runs, never for `--help`.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable
from datetime import date

from crm_core.errors import CrmError
from crm_core.settings import Settings


def add_parser(sub: argparse._SubParsersAction, parse_date: Callable[[str], date]) -> None:
    digest = sub.add_parser(
        "digest", help="send (or print) the daily digest e-mails",
        description="Send each access-file user marked `digest: true` an e-mail with their "
                    "scope's KPIs, deals at risk and alerts, as of the warehouse's last run, "
                    "through CRM_SMTP_URL. Digests already sent for that date are skipped; a "
                    "failed one is retried by the next run.")
    digest.add_argument("--date", type=parse_date, default=None,
                        help="the as-of date the digest is for (must be the warehouse's)")
    digest.add_argument("--to", default=None, metavar="EMAIL",
                        help="only this access-file user (sent even when already sent)")
    digest.add_argument("--dry-run", action="store_true",
                        help="print the plain-text digests instead of sending them")


def cmd_digest(settings: Settings, args: argparse.Namespace) -> None:
    from dashboards.digest import run_digest

    outcome = run_digest(settings, on=args.date, only=args.to, dry_run=args.dry_run)
    for text in outcome.printed:
        print(text)
    for user in outcome.sent:
        print(f"digest for {outcome.as_of} sent to {user}")
    for user in outcome.skipped:
        print(f"digest for {outcome.as_of} already sent to {user}")
    if not (outcome.printed or outcome.sent or outcome.skipped or outcome.errors):
        print("no digest recipients (mark access-file users with `digest: true`)")
    for line in outcome.errors[:-1]:
        print(f"error: {line}", file=sys.stderr)
    if outcome.errors:
        raise CrmError(f"{outcome.errors[-1]} ({len(outcome.errors)} not sent; the next run "
                       "retries them)" if len(outcome.errors) > 1 else
                       f"{outcome.errors[-1]} (the next run retries it)")
