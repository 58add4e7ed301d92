"""The daily digest, sent for real: `crm-analytics digest` against an SMTP server (aiosmtpd)
on 127.0.0.1, over the warehouse the real pipeline built. Each recipient's numbers are checked
against values worked out in plain Python from the generated rows for their own scope; no
recipient reads another tenant's numbers; a failed send is one `error:` line and the next run
sends it (and only it)."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult

from dashboards import formats
from tests.helpers import cockpit_truth, oracle
from tests.helpers.dashboard import AS_OF, DashboardWarehouse, run_cli

ACCESS = """
users:
  boss@example.com: {all: true, digest: true}
  ana@example.com:
    businesses: [1]
    digest: true
  bo@example.com:
    businesses: [2]
    digest: true
  quiet@example.com:
    businesses: [3]
"""


@dataclass
class Inbox:
    """What the SMTP server accepted; `refuse` makes it reject these recipients (550)."""

    messages: list[EmailMessage] = field(default_factory=list)
    refuse: set[str] = field(default_factory=set)

    async def handle_RCPT(self, server: Any, session: Any, envelope: Any, address: str,
                          rcpt_options: list[str]) -> str:
        if address.lower() in self.refuse:
            return "550 mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.messages.append(email.message_from_bytes(  # type: ignore[arg-type]
            envelope.original_content or envelope.content, policy=email.policy.default))
        return "250 Message accepted for delivery"

    def to(self, address: str) -> list[EmailMessage]:
        return [m for m in self.messages if m["To"] == address]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp() -> Iterator[tuple[Inbox, int]]:
    inbox = Inbox()
    port = _free_port()
    controller = Controller(inbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield inbox, port
    finally:
        controller.stop()


@pytest.fixture(scope="module")
def truth(dashboard_warehouse: DashboardWarehouse) -> dict[str, Any]:
    src = oracle.read_source(dashboard_warehouse.source_url)
    events = oracle.read_events(dashboard_warehouse.events_path, AS_OF)
    return {"src": src, "deals": cockpit_truth.deals(src, events, AS_OF, "UTC")}


def _env(warehouse: DashboardWarehouse, tmp_path: Path, port: int) -> dict[str, str]:
    access = tmp_path / "access.yml"
    access.write_text(ACCESS)
    return {**warehouse.env, "CRM_ACCESS_FILE": str(access),
            "CRM_SMTP_URL": f"smtp://127.0.0.1:{port}", "CRM_DIGEST_FROM": "crm@example.com",
            "CRM_DIGEST_STALE_DEALS": "5"}


def _text(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("plain",))
    assert part is not None
    return part.get_content()


def _html(message: EmailMessage) -> str:
    part = message.get_body(preferencelist=("html",))
    assert part is not None
    return part.get_content()


def _expected(truth: dict[str, Any], business: int | None) -> dict[str, str]:
    deals = [d for d in truth["deals"] if business is None or d["business_id"] == business]
    risky = cockpit_truth.at_risk(truth["deals"], AS_OF, business)
    open_amount = sum((d["money"] for d in deals if d["state"] == "open"), Decimal(0))
    won = cockpit_truth.bookings(truth["deals"], AS_OF.replace(day=1), AS_OF, business)
    return {
        "open": f"- Open pipeline: {formats.money_exact(open_amount)} "
                f"({formats.count(sum(d['state'] == 'open' for d in deals))} open deals)",
        "bookings": f"- Bookings, November so far: {formats.money_exact(won['won'])}",
        "risk": f"Deals at risk ({len(risky):,}):",
        "stale": f"{sum(d['is_stale'] for d in risky):,} open deals are stale",
        "risky_ids": {d["id"] for d in risky},
    }


def test_each_recipient_gets_their_own_scope_and_a_failed_send_is_retried(
        dashboard_warehouse: DashboardWarehouse, truth: dict[str, Any],
        smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    env = _env(dashboard_warehouse, tmp_path, port)
    log = dashboard_warehouse.warehouse_file.parent / "digests_sent.jsonl"
    log.unlink(missing_ok=True)

    # ana's mailbox refuses: one error line naming her, the others are sent
    inbox.refuse = {"ana@example.com"}
    proc = run_cli(dashboard_warehouse.work, env, "digest", "--date", AS_OF.isoformat())
    assert proc.returncode == 1
    errors = [line for line in proc.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and errors[0].startswith("error: digest to ana@example.com not "
                                                     "sent"), proc.stderr
    assert "Traceback" not in proc.stderr
    assert sorted(m["To"] for m in inbox.messages) == ["bo@example.com", "boss@example.com"]

    # the next run sends only what failed
    inbox.refuse = set()
    proc = run_cli(dashboard_warehouse.work, env, "digest")
    assert proc.returncode == 0, proc.stderr
    assert "sent to ana@example.com" in proc.stdout
    assert "already sent to boss@example.com" in proc.stdout
    assert sorted(m["To"] for m in inbox.messages) == [
        "ana@example.com", "bo@example.com", "boss@example.com"]
    assert not inbox.to("quiet@example.com")  # not marked digest: true

    # a third run sends nothing again
    proc = run_cli(dashboard_warehouse.work, env, "digest")
    assert proc.returncode == 0 and len(inbox.messages) == 3

    names = {b["id"]: b["name"] for b in truth["src"]["businesses"]}
    for user, business in (("boss@example.com", None), ("ana@example.com", 1),
                           ("bo@example.com", 2)):
        (message,) = inbox.to(user)
        assert message["From"] == "crm@example.com"
        text, html = _text(message), _html(message)
        want = _expected(truth, business)
        for key in ("open", "bookings", "risk", "stale"):
            assert want[key] in text, (user, key, text)
        assert "<table>" in html and formats.count(len(want["risky_ids"])) in html
        listed = {int(line.split()[2]) for line in text.splitlines()
                  if line.startswith("- Deal ")}
        assert listed and listed <= want["risky_ids"], user
        if business is not None:
            # nothing of another tenant: not its deals, not its totals
            others = cockpit_truth.at_risk(truth["deals"], AS_OF)
            foreign = {d["id"] for d in others if d["business_id"] != business}
            assert not listed & foreign
            assert _expected(truth, None)["open"] not in text
            for other, name in names.items():
                if other != business:
                    assert name not in text and name not in html


def test_dry_run_prints_without_sending_or_recording(
        dashboard_warehouse: DashboardWarehouse, truth: dict[str, Any],
        smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    inbox, port = smtp
    env = _env(dashboard_warehouse, tmp_path, port)
    log = dashboard_warehouse.warehouse_file.parent / "digests_sent.jsonl"
    before = log.read_text() if log.exists() else ""
    proc = run_cli(dashboard_warehouse.work, env, "digest", "--dry-run", "--to",
                   "quiet@example.com")
    assert proc.returncode == 0, proc.stderr
    assert _expected(truth, 3)["open"] in proc.stdout
    assert not inbox.messages and (log.read_text() if log.exists() else "") == before


def test_bad_input_is_one_error_line(dashboard_warehouse: DashboardWarehouse,
                                     smtp: tuple[Inbox, int], tmp_path: Path) -> None:
    _inbox, port = smtp
    env = _env(dashboard_warehouse, tmp_path, port)
    cases = [
        (["digest", "--date", "2026-10-01"], "holds data as of 2026-11-01"),
        (["digest", "--to", "mallory@example.com"], "mallory@example.com is not a user"),
    ]
    for args, message in cases:
        proc = run_cli(dashboard_warehouse.work, env, *args)
        assert proc.returncode == 1
        assert proc.stderr.count("\n") == 1 and message in proc.stderr, proc.stderr
    # an SMTP server that is not there: every due digest fails, the last line says so
    dead = {**env, "CRM_SMTP_URL": f"smtp://user:s3cret@127.0.0.1:{_free_port()}"}
    (dashboard_warehouse.warehouse_file.parent / "digests_sent.jsonl").unlink(missing_ok=True)
    proc = run_cli(dashboard_warehouse.work, dead, "digest")
    assert proc.returncode == 1
    assert all(line.startswith("error: ") for line in proc.stderr.splitlines())
    assert "cannot reach the SMTP server" in proc.stderr and "s3cret" not in proc.stderr
    # a server that is there but refuses the login: said as such, the password never shown
    def refuse(server: Any, session: Any, envelope: Any, mechanism: str,
               auth_data: Any) -> AuthResult:
        return AuthResult(success=False, handled=False)

    strict = Controller(Inbox(), hostname="127.0.0.1", port=_free_port(),
                        authenticator=refuse, auth_require_tls=False)
    strict.start()
    try:
        proc = run_cli(dashboard_warehouse.work,
                       {**env, "CRM_SMTP_URL": f"smtp://user:s3cret@127.0.0.1:{strict.port}"},
                       "digest")
    finally:
        strict.stop()
    assert proc.returncode == 1
    assert all(line.startswith("error: ") for line in proc.stderr.splitlines()), proc.stderr
    assert f"the SMTP server 127.0.0.1:{strict.port} refused the login of 'user'" in proc.stderr
    assert "535" in proc.stderr and "s3cret" not in proc.stderr, proc.stderr


def test_the_daily_digest_sensor_sends_after_the_scheduled_rollup_only(
        dashboard_warehouse: DashboardWarehouse, smtp: tuple[Inbox, int], tmp_path: Path,
        monkeypatch: pytest.MonkeyPatch) -> None:
    """The Dagster sensor (which runs `crm-analytics digest` in a child process, the layer
    rule keeping Dagster's definitions from importing the dashboards) sends each recipient's
    digest once, after a run tagged with the daily_rollup schedule, and skips other runs."""
    from dagster import DagsterInstance, build_run_status_sensor_context, job, op

    from orchestration.digest_sensor import daily_digest

    inbox, port = smtp
    for key, value in _env(dashboard_warehouse, tmp_path, port).items():
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(dashboard_warehouse.work)
    (dashboard_warehouse.warehouse_file.parent / "digests_sent.jsonl").unlink(missing_ok=True)

    @op
    def step() -> None:
        pass

    @job
    def rollup() -> None:
        step()

    instance = DagsterInstance.ephemeral()

    def tick(tags: dict[str, str]) -> Any:
        result = rollup.execute_in_process(instance=instance, tags=tags)
        return daily_digest(build_run_status_sensor_context(
            sensor_name="daily_digest", dagster_event=result.get_run_success_event(),
            dagster_instance=instance, dagster_run=result.dagster_run))

    assert "not the scheduled daily rollup" in tick({}).skip_message
    assert not inbox.messages
    outcome = tick({"dagster/schedule_name": "daily_rollup"})
    assert "exit 0" in outcome.skip_message, outcome.skip_message
    assert sorted(m["To"] for m in inbox.messages) == [
        "ana@example.com", "bo@example.com", "boss@example.com"]
    tick({"dagster/schedule_name": "daily_rollup"})  # a repeated tick sends nothing twice
    assert len(inbox.messages) == 3


def test_a_non_ascii_smtp_login_is_refused_before_connecting() -> None:
    from crm_core.errors import CrmError
    from dashboards.digest import _smtp

    port = _free_port()  # nothing listens: the check comes before any connection
    with pytest.raises(CrmError, match="ASCII user and password only"):
        _smtp(f"smtp://j%C3%BCrgen:s3cret@127.0.0.1:{port}")
