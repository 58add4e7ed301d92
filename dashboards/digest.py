"""The daily digest: one e-mail per recipient with their own scope's KPIs and deltas, the deals
at risk and alerts, after the daily rollup.

- **Recipients** are the access-file users marked `digest: true` (`dashboards.access`); each
  e-mail is computed with that user's `Scope` through the same `dashboards.data` queries the
  pages run, so nobody reads another tenant's numbers.
- **Content** (as of the warehouse's as-of date A): open pipeline; bookings and new pipeline in
  A's month so far beside last month's; the win rate of A's month against last month's; campaign
  revenue and spend over the 7 days to A against the 7 before. A delta is shown only when data
  covers the earlier period (as on the cards). Then the deals at risk (most overdue first) and
  the alerts: an active campaign with ROI below 0, a campaign that spent more than its budget,
  more stale deals than CRM_DIGEST_STALE_DEALS.
- **Sending** is SMTP (CRM_SMTP_URL), HTML with a plain-text part. Each digest that was accepted
  by the server is recorded in a log file (`DigestLog`, JSON lines beside the warehouse); a run
  sends only what the log lacks for that as-of date, so a failed send is retried by the next
  run and a digest is never sent twice.
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import smtplib
import ssl
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit

import polars as pl

from crm_core.errors import CrmError, first_line
from crm_core.settings import Settings
from dashboards import data, formats
from dashboards.access import Scope, digest_recipients

#: How many deals at risk an e-mail lists (the rest are counted).
RISK_ROWS = 10
#: Days in the campaign comparison windows.
WINDOW_DAYS = 7


@dataclass(frozen=True)
class Kpi:
    label: str
    value: str
    #: The delta ("+12.0%", "+1.5 pp") or why there is none ("no data before 2 Sep").
    note: str = ""


@dataclass(frozen=True)
class Digest:
    """One recipient's e-mail, before it is rendered."""

    recipient: str
    as_of: date
    kpis: list[Kpi]
    risk: pl.DataFrame
    risk_total: int
    alerts: list[str]
    currency: str | None = None

    @property
    def subject(self) -> str:
        count = f" · {len(self.alerts)} alert{'s' if len(self.alerts) != 1 else ''}" \
            if self.alerts else ""
        return f"CRM digest {self.as_of:%d %b %Y}{count}"


# --------------------------------------------------------------------------------------------
# Building


def _month_start(day: date) -> date:
    return day.replace(day=1)


def _previous_month(first: date) -> date:
    return (first - timedelta(days=1)).replace(day=1)


def _delta(current: Any, previous: Any, first_data: date | None, period_start: date, *,
           rate: bool = False) -> str:
    if first_data is None or period_start < first_data:
        return formats.no_comparison(first_data)
    return formats.change(current, previous, rate=rate) or \
        "0 in the period before"


def build_digest(src: data.Source, recipient: str, scope: Scope, as_of: date,
                 stale_threshold: int) -> Digest:
    """The digest of one recipient's scope as of `as_of` (the warehouse's as-of date)."""
    currency = src.settings.currency
    covered = data.coverage(src, scope)
    everything = data.Filters()
    this_month = data.Filters(start=_month_start(as_of), end=as_of)
    last_month_start = _previous_month(this_month.start)  # type: ignore[arg-type]
    last_month = data.Filters(start=last_month_start,
                              end=this_month.start - timedelta(days=1))  # type: ignore[operator]
    window = data.Filters(start=as_of - timedelta(days=WINDOW_DAYS - 1), end=as_of)
    before = window.previous_period()

    pipe = data.pipeline_totals(src, scope, everything)
    sales_now = data.sales_totals(src, scope, this_month)
    sales_then = data.sales_totals(src, scope, last_month)
    camp_now = data.campaign_totals(src, scope, window)
    camp_then = data.campaign_totals(src, scope, before)
    risk_sum = data.risk_totals(src, scope, everything)

    def money(value: Any) -> str:
        return formats.money_exact(value, currency)

    last = f"last month {money(sales_then['won_amount'])}"
    kpis = [
        Kpi("Open pipeline", money(pipe["open_amount"]),
            f"{formats.count(pipe['open_deals'])} open deals"),
        Kpi(f"Bookings, {as_of:%B} so far", money(sales_now["won_amount"]),
            last if covered.deals and last_month_start >= covered.deals
            else formats.no_comparison(covered.deals)),
        Kpi(f"New pipeline, {as_of:%B} so far", money(sales_now["new_pipeline"]),
            f"last month {money(sales_then['new_pipeline'])}"
            if covered.deals and last_month_start >= covered.deals
            else formats.no_comparison(covered.deals)),
        Kpi(f"Win rate, {as_of:%B} so far", formats.pct(sales_now["win_rate"]),
            _delta(sales_now["win_rate"], sales_then["win_rate"], covered.deals,
                   last_month_start, rate=True)),
        Kpi(f"Campaign revenue, last {WINDOW_DAYS} days", money(camp_now["revenue"]),
            _delta(camp_now["revenue"], camp_then["revenue"], covered.campaigns,
                   before.start)),  # type: ignore[arg-type]
        Kpi(f"Campaign spend, last {WINDOW_DAYS} days", money(camp_now["spend"]),
            _delta(camp_now["spend"], camp_then["spend"], covered.campaigns,
                   before.start)),  # type: ignore[arg-type]
        Kpi("Deals at risk", formats.count(risk_sum["deals"]),
            f"{money(risk_sum['amount'])}; {formats.count(risk_sum['overdue_deals'])} overdue, "
            f"{formats.count(risk_sum['stale_deals'])} stale"),
    ]
    risk = data.deals_at_risk(src, scope, everything, limit=RISK_ROWS)
    return Digest(recipient, as_of, kpis, risk, risk_sum["deals"],
                  alerts(src, scope, stale_threshold, risk_sum["stale_deals"], currency),
                  currency)


def alerts(src: data.Source, scope: Scope, stale_threshold: int, stale_deals: Any,
           currency: str | None) -> list[str]:
    """Active campaigns losing money or over budget (spend to date above the budget, to the
    cent), more stale deals than the threshold."""
    out: list[str] = []
    for row in data.campaign_alerts(src, scope).iter_rows(named=True):
        name = f"{row['campaign_name']} (campaign #{row['campaign_id']})"
        if row["roi"] is not None and row["roi"] < 0:
            out.append(f"{name} is active with ROI {formats.pct(row['roi'])} "
                       f"(spend {formats.money_exact(row['spend'], currency)}, revenue "
                       f"{formats.money_exact(row['revenue'], currency)}).")
        if row["over_budget"]:
            out.append(f"{name} has used {formats.pct(row['budget_used'])} of its "
                       f"budget ({formats.money_exact(row['budget'], currency)}).")
    if int(stale_deals or 0) > stale_threshold:
        out.append(f"{formats.count(stale_deals)} open deals are stale (no update in 30 days), "
                   f"more than the threshold of {stale_threshold}.")
    return out


# --------------------------------------------------------------------------------------------
# Rendering

RISK_COLUMNS = [("deal_id", "Deal"), ("owner_name", "Owner"), ("stage_name", "Stage"),
                ("amount", "Amount"), ("close_date", "Close date"),
                ("days_overdue", "Days overdue"), ("days_since_update", "Days since update")]


def _cell(column: str, value: Any, currency: str | None) -> str:
    if value is None:
        return "–"
    if column == "amount":
        return formats.money_exact(value, currency)
    if column in ("days_overdue", "days_since_update"):
        return formats.count(value)
    return str(value)


def render_text(digest: Digest) -> str:
    lines = [digest.subject, "", f"Numbers as of {digest.as_of:%d %b %Y}, for the businesses "
             "and branches you may see.", ""]
    lines += [f"- {k.label}: {k.value}" + (f" ({k.note})" if k.note else "")
              for k in digest.kpis]
    lines += ["", "Alerts:" if digest.alerts else "No alerts."]
    lines += [f"- {a}" for a in digest.alerts]
    lines += ["", f"Deals at risk ({formats.count(digest.risk_total)}):"
              if digest.risk_total else "No deals at risk."]
    for row in digest.risk.iter_rows(named=True):
        flags = ", ".join(word for word, on in (("overdue", row["is_overdue"]),
                                                ("stale", row["is_stale"]),
                                                ("slipped", row["is_slipped"])) if on)
        lines.append(f"- Deal {row['deal_id']} · {row['owner_name']} · "
                     f"{row['stage_name'] or 'no stage'} · "
                     f"{_cell('amount', row['amount'], digest.currency)} · {flags}")
    if digest.risk_total > digest.risk.height:
        lines.append(f"  … and {digest.risk_total - digest.risk.height:,} more on the "
                     "Forecast & risk page.")
    return "\n".join(lines) + "\n"


def render_html(digest: Digest) -> str:
    e = html.escape
    kpis = "".join(
        f"<tr><td style='padding:4px 12px 4px 0'>{e(k.label)}</td>"
        f"<td style='padding:4px 12px;font-weight:600;text-align:right'>{e(k.value)}</td>"
        f"<td style='padding:4px 0;color:#6b7280'>{e(k.note)}</td></tr>" for k in digest.kpis)
    alert_items = "".join(f"<li>{e(a)}</li>" for a in digest.alerts)
    alerts_html = f"<h3>Alerts</h3><ul>{alert_items}</ul>" if digest.alerts else \
        "<p>No alerts.</p>"
    head = "".join(f"<th style='text-align:left;padding:4px 8px'>{e(label)}</th>"
                   for _c, label in RISK_COLUMNS)
    rows = "".join(
        "<tr>" + "".join(f"<td style='padding:4px 8px'>{e(_cell(c, row[c], digest.currency))}"
                         "</td>" for c, _label in RISK_COLUMNS) + "</tr>"
        for row in digest.risk.iter_rows(named=True))
    more = (f"<p>… and {digest.risk_total - digest.risk.height:,} more on the Forecast &amp; "
            "risk page.</p>") if digest.risk_total > digest.risk.height else ""
    risk_html = (f"<h3>Deals at risk ({digest.risk_total:,})</h3><table>"
                 f"<tr>{head}</tr>{rows}</table>{more}") if digest.risk_total else \
        "<p>No deals at risk.</p>"
    return (f"<html><body style='font-family:sans-serif;color:#1f2937'>"
            f"<h2>{e(digest.subject)}</h2><p>Numbers as of {digest.as_of:%d %b %Y}, for the "
            f"businesses and branches you may see.</p><table>{kpis}</table>{alerts_html}"
            f"{risk_html}</body></html>")


def to_message(digest: Digest, sender: str) -> EmailMessage:
    message = EmailMessage()
    message["Subject"] = digest.subject
    message["From"] = sender
    message["To"] = digest.recipient
    message["Date"] = formatdate(localtime=False)
    message["Message-ID"] = make_msgid(domain="crm-analytics")
    message.set_content(render_text(digest))
    message.add_alternative(render_html(digest), subtype="html")
    return message


# --------------------------------------------------------------------------------------------
# Sending and the log of what was sent


class DigestLog:
    """JSON lines, one per digest the SMTP server accepted: {"as_of", "to", "sent_at"}.
    Appended and fsynced after each accepted send, so a crash loses no record."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def sent(self, as_of: date) -> set[str]:
        if not self.path.is_file():
            return set()
        out = set()
        for line in self.path.read_text(encoding="utf-8").splitlines():
            try:
                record = json.loads(line)
            except json.JSONDecodeError:
                continue  # a torn last line from a crash: that send is not recorded
            if record.get("as_of") == as_of.isoformat():
                out.add(str(record.get("to", "")).lower())
        return out

    def record(self, as_of: date, recipient: str) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        line = json.dumps({"as_of": as_of.isoformat(), "to": recipient,
                           "sent_at": datetime.now(UTC).isoformat(timespec="seconds")})
        with self.path.open("a", encoding="utf-8") as handle:
            handle.write(line + "\n")
            handle.flush()
            os.fsync(handle.fileno())


def log_path(settings: Settings) -> Path:
    """Beside the data: next to the DuckDB file (Spark: its staging file), or in ./data for a
    PostgreSQL warehouse."""
    target = settings.warehouse
    if target.duckdb_path is not None:
        return target.duckdb_path.parent / "digests_sent.jsonl"
    return Path.cwd() / "data" / "digests_sent.jsonl"


def _reply(reply: bytes | str) -> str:
    text = reply.decode("utf-8", "replace") if isinstance(reply, bytes) else str(reply)
    return " ".join(text.split())


def _smtp(url: str) -> smtplib.SMTP:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps", "smtp+starttls") or not parts.hostname:
        raise CrmError("CRM_SMTP_URL must look like smtp://[user:password@]host[:port] "
                       "(or smtps://, smtp+starttls://)")
    port = parts.port or {"smtp": 25, "smtps": 465, "smtp+starttls": 587}[scheme]
    if not (unquote(parts.username or "") + unquote(parts.password or "")).isascii():
        raise CrmError("CRM_SMTP_URL: the SMTP login takes an ASCII user and password only "
                       "(Python's smtplib encodes them as ASCII)")
    try:
        client: smtplib.SMTP = (smtplib.SMTP_SSL(parts.hostname, port, timeout=30)
                                if scheme == "smtps" else
                                smtplib.SMTP(parts.hostname, port, timeout=30))
        if scheme == "smtp+starttls":
            client.starttls(context=ssl.create_default_context())
        if parts.username:
            client.login(unquote(parts.username), unquote(parts.password or ""))
    except smtplib.SMTPAuthenticationError as exc:  # reached, and it said no
        client.close()
        raise CrmError(f"the SMTP server {parts.hostname}:{port} refused the login of "
                       f"{unquote(parts.username or '')!r} (check CRM_SMTP_URL's user and "
                       f"password): {exc.smtp_code} {_reply(exc.smtp_error)}") from None
    except (OSError, smtplib.SMTPException) as exc:
        raise CrmError(f"cannot reach the SMTP server {parts.hostname}:{port}: "
                       f"{first_line(exc)}") from None
    return client


@dataclass
class DigestRun:
    """What a digest run did: sent, already sent earlier (skipped), failed (one line each)."""

    as_of: date | None = None
    sent: list[str] = field(default_factory=list)
    skipped: list[str] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    printed: list[str] = field(default_factory=list)


def warehouse_as_of(src: data.Source) -> date:
    row = data.data_as_of(src)
    if row is None:
        raise CrmError("no successful pipeline run recorded yet: run `crm-analytics run` "
                       "before sending the digest")
    return row["as_of_date"]


def run_digest(settings: Settings, *, on: date | None = None, only: str | None = None,
               dry_run: bool = False) -> DigestRun:
    """Build and send (or, with `dry_run`, only render) every due digest. `only` limits it
    to one access-file user (who need not be marked `digest: true`)."""
    if settings.access_file is None:
        raise CrmError("CRM_ACCESS_FILE is not set: the digest goes to its users marked "
                       "`digest: true`")
    src = data.Source(settings, "", cached=False)
    as_of = warehouse_as_of(src)
    if on is not None and on != as_of:
        raise CrmError(f"the warehouse holds data as of {as_of.isoformat()}, not "
                       f"{on.isoformat()}: run `crm-analytics run --date {on.isoformat()}` "
                       "first")
    recipients = _recipients(settings.access_file, only)
    outcome = DigestRun(as_of)
    log = DigestLog(log_path(settings))
    already = set() if dry_run or only else log.sent(as_of)
    due = [(user, scope) for user, scope in recipients.items() if user not in already]
    outcome.skipped = sorted(set(recipients) & already)
    if not due:
        return outcome
    if not dry_run and settings.smtp_url is None:
        raise CrmError("CRM_SMTP_URL is not set: nowhere to send the digest (use --dry-run "
                       "to print it)")
    digests = [build_digest(src, user, scope, as_of, settings.digest_stale_deals)
               for user, scope in due]
    if dry_run:
        outcome.printed = [f"To: {d.recipient}\n{render_text(d)}" for d in digests]
        return outcome
    _send_all(settings, digests, log, outcome)
    return outcome


def _recipients(access_file: Path, only: str | None) -> dict[str, Scope]:
    from dashboards.access import load_access_file

    if only is None:
        return digest_recipients(access_file)
    user = only.strip().lower()
    scope = load_access_file(access_file).get(user)
    if scope is None or scope.is_empty:
        raise CrmError(f"{only} is not a user with access in CRM_ACCESS_FILE {access_file}")
    return {user: scope}


def _send_all(settings: Settings, digests: list[Digest], log: DigestLog,
              outcome: DigestRun) -> None:
    assert settings.smtp_url is not None
    try:
        client = _smtp(settings.smtp_url)
    except CrmError as exc:
        outcome.errors = [f"digest to {d.recipient} not sent: {exc}" for d in digests]
        return
    try:
        for index, digest in enumerate(digests):
            try:
                refused = client.send_message(to_message(digest, settings.digest_from))
            except smtplib.SMTPRecipientsRefused as exc:
                code, reply = next(iter(exc.recipients.values()))
                outcome.errors.append(f"digest to {digest.recipient} not sent: refused by "
                                      f"the SMTP server ({code} {_reply(reply)})")
                continue
            except smtplib.SMTPResponseException as exc:
                outcome.errors.append(f"digest to {digest.recipient} not sent: "
                                      f"{exc.smtp_code} {_reply(exc.smtp_error)}")
                continue
            except OSError as exc:  # the connection is gone: nothing after this is sent
                outcome.errors.append(f"digest to {digest.recipient} not sent: "
                                      f"{first_line(exc)}")
                outcome.errors += [f"digest to {d.recipient} not sent: the SMTP connection "
                                   "was lost" for d in digests[index + 1:]]
                return
            if refused:
                code, reply = next(iter(refused.values()))
                outcome.errors.append(f"digest to {digest.recipient} not sent: refused by "
                                      f"the SMTP server ({code} {_reply(reply)})")
                continue
            log.record(digest.as_of, digest.recipient)
            outcome.sent.append(digest.recipient)
    finally:
        with contextlib.suppress(OSError, smtplib.SMTPException):
            client.quit()


