"""Passwords never reach a person, in any spelling: raw, escaped the way libpq and DuckDB quote
a connection string, SQL-doubled, JSON-escaped, URL-encoded. The forms are built here from the
password itself (not by the helper under test), for passwords with quotes, backslashes, `@`,
`%`, `:`, spaces and non-ASCII letters; then the real failure paths are driven: DuckDB's
attach of an unreachable PostgreSQL source, psycopg, and the command line."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path
from urllib.parse import quote, quote_plus

import duckdb
import pytest

from crm_core.errors import CrmError, redact, redacted_line
from crm_core.urls import check_url, redact_url, url_password
from ingestion.erp.postgres_scan import attached_source

PASSWORDS = ["s3cr3t'XYZ", "back\\slash\\", "at@sign:colon", "per%25cent%", "with space s",
             "ünïcödé-пароль", "mix'\\@%: é"]


def spellings(password: str) -> set[str]:
    """How the password can appear in a message, written out independently."""
    libpq = password.replace("\\", "\\\\").replace("'", "\\'")
    forms = {password, libpq, password.replace("'", "''"), json.dumps(password)[1:-1],
             quote(password, safe=""), quote_plus(password, safe=""),
             re.sub(r"%[0-9A-F]{2}", lambda m: m.group(0).lower(), quote(password, safe=""))}
    return {f for f in forms if len(f) >= 4}  # short fragments are ordinary words


def assert_clean(text: str, password: str) -> None:
    for form in spellings(password):
        assert form not in text, (form, text)


@pytest.mark.parametrize("password", PASSWORDS)
def test_every_spelling_is_masked(password: str) -> None:
    message = " | ".join(sorted(spellings(password)))
    masked = redact(f"connect failed: password='{message}' end", [password])
    assert_clean(masked, password)
    assert "***" in masked and masked.endswith(" end")
    assert redacted_line(f"dsn user='u' password='{message}'\nsecond line", password) == \
        redact(f"dsn user='u' password='{message}'", [password])


@pytest.mark.parametrize("password", PASSWORDS)
def test_urls_print_without_the_password(password: str) -> None:
    url = f"postgresql://ana:{quote(password, safe='')}@db.example:5432/wh"
    assert redact_url(url) == "postgresql://ana:***@db.example:5432/wh"
    assert url_password(url) == password


@pytest.mark.parametrize("password", PASSWORDS)
def test_duckdb_attach_failure_does_not_echo_the_password(password: str) -> None:
    url = f"postgresql://erp:{quote(password, safe='')}@127.0.0.1:1/erp"
    con = duckdb.connect()
    try:
        with pytest.raises(CrmError) as err, attached_source(con, url):
            pass
    finally:
        con.close()
    assert "unreachable" in str(err.value)
    assert_clean(str(err.value), password)


@pytest.mark.parametrize("which", ["CRM_SOURCE_URL", "CRM_WAREHOUSE_URL"])
@pytest.mark.parametrize("password", PASSWORDS)
def test_the_command_line_never_prints_a_password(tmp_path: Path, password: str,
                                                  which: str) -> None:
    url = f"postgresql://erp:{quote(password, safe='')}@127.0.0.1:1/erp"
    (tmp_path / "erp.sqlite").touch()  # a source file exists: the warehouse is reached first
    env = {**os.environ, "CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb",
           "CRM_EVENTS_PATH": str(tmp_path / "events"), which: url}
    proc = subprocess.run([sys.executable, "-m", "crm_cli.cli", "sync"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    assert proc.returncode == 1
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "unreachable" in lines[0], \
        proc.stderr
    assert_clean(proc.stdout + proc.stderr, password)


SECRET = "S3cr#et/PW"  # unencoded `#` and `/`: a URL parser splits the password there


@pytest.mark.parametrize(("which", "url"), [
    ("CRM_WAREHOUSE_URL", f"postgresql//bob:{SECRET}@127.0.0.1/x"),  # no colon after the scheme
    ("CRM_WAREHOUSE_URL", f"postgresql:/bob:{SECRET}@127.0.0.1/x"),
    ("CRM_WAREHOUSE_URL", f'"postgresql://bob:{SECRET}@127.0.0.1:1/x"'),  # a .env quote left open
    ("CRM_SOURCE_URL", f'"postgresql://bob:{SECRET}@127.0.0.1:1/x"'),
    ("CRM_SOURCE_URL", f"postgres_ql://bob:{SECRET}@127.0.0.1:1/x"),
    ("CRM_SOURCE_URL", f"postgresql ://bob:{SECRET}@127.0.0.1:1/x"),
    ("CRM_SOURCE_URL", f"postgresql://bob:{SECRET}@127.0.0.1:1/x"),
    ("CRM_WAREHOUSE_URL", f"postgresql://bob:{SECRET}@127.0.0.1:1/x"),
    ("CRM_SOURCE_URL", f"postgresql+psycopg://bob@127.0.0.1:1/x?password={SECRET}"),
    ("CRM_WAREHOUSE_URL", f"postgresql://bob@127.0.0.1:1/x?sslpassword={SECRET}"),
    ("CRM_SMTP_URL", f"smtp://mailer:{SECRET}@127.0.0.1:2525"),
    ("CRM_WAREHOUSE_URL", f"bob:{SECRET}@127.0.0.1:1/x"),  # no scheme at all
    # digits then `/`: a parser takes them for a port and the rest for the path
    ("CRM_WAREHOUSE_URL", "postgresql://bob:2024/S3cr#et/PW@127.0.0.1:1/x"),
    ("CRM_SOURCE_URL", "postgresql://bob:2024/S3cr#et/PW@127.0.0.1:1/x"),
])
def test_a_malformed_url_is_one_line_without_its_password(tmp_path: Path, which: str,
                                                          url: str) -> None:
    """However the URL is mistyped, the line naming it masks the password, and no piece of
    the password (the part a parser took for a port, say) shows either."""
    (tmp_path / "erp.sqlite").touch()
    env = {**os.environ, "CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb",
           "CRM_EVENTS_PATH": str(tmp_path / "events"), which: url}
    proc = subprocess.run([sys.executable, "-m", "crm_cli.cli", "sync"], cwd=tmp_path,
                          env=env, capture_output=True, text=True, timeout=300, check=False)
    lines = proc.stderr.strip().splitlines()
    assert proc.returncode == 1 and len(lines) == 1 and lines[0].startswith("error: "), \
        proc.stderr
    assert which in lines[0] or "source" in lines[0] or "warehouse" in lines[0], lines[0]
    assert not lines[0].startswith("error: unexpected"), lines[0]
    for piece in ("S3cr", "et/PW", "S3cr%23"):
        assert piece not in proc.stdout + proc.stderr, (piece, proc.stderr)


@pytest.mark.parametrize(("url", "shown"), [
    ("postgresql://ana:pw@db/wh?password=x&sslmode=require",
     "postgresql://ana:***@db/wh?password=***&sslmode=require"),
    ("postgresql//ana:p@ss@db/wh", "postgresql//ana:***@db/wh"),
    ("sqlite:////tmp/a@b/erp.sqlite", "sqlite:////tmp/a@b/erp.sqlite"),
    ("postgresql://ana@db/wh", "postgresql://ana@db/wh"),
    ("ana:pw@db:5432/wh", "ana:***@db:5432/wh"),
    ("postgresql ana:pw@db/wh", "postgresql ana:***@db/wh"),
])
def test_redact_url_masks_passwords_in_any_shape(url: str, shown: str) -> None:
    assert redact_url(url) == shown


@pytest.mark.parametrize("url", [
    "postgresql://u:pw@host:5432/db?application_name=etl@prod",
    "postgresql://u:pw@host/db?sslrootcert=/etc/ssl/ca@x.pem",
    "postgresql://u:pw@host/my@db",
    "postgresql://h/db?password=a:b@c",
    "postgresql://u:p%2F%40q@[::1]:5432/db",
    "smtps://a:b@mail:465?x=@",
    "duckdb:///data/a:b@c.duckdb",
    "spark+http://token:abc@host/sql/protocolv1/o/1/2",
])
def test_check_url_accepts_an_at_sign_after_the_host(url: str) -> None:
    """Only a host part cut short by the password (its start taken for the host and port)
    is refused; an `@` in a path or query after a whole host part is the URL's own."""
    check_url("CRM_WAREHOUSE_URL", url)
