"""The one exception type users see: its message is a single line that names the problem,
and the one way secrets are taken out of any text shown to a person."""

from __future__ import annotations

import json
import re
import shlex
from collections.abc import Iterable
from urllib.parse import quote, quote_plus


class CrmError(Exception):
    """A failure the user can act on. `str(err)` is shown as-is, prefixed by `error: `.

    Never put a password in the message: format URLs with `crm_core.urls.redact_url`.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: driver errors span several lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def secret_forms(secret: str) -> set[str]:
    """Every spelling a password can take in a driver's or a library's message: raw; escaped
    as libpq or DuckDB quote it (`\\'`, `\\\\`); SQL-doubled (`''`); JSON- and Python-escaped;
    URL-encoded (`%20` and `+` for a space, either hex case: what `urlsplit` and SQLAlchemy
    print)."""
    forms = {secret,
             secret.replace("\\", "\\\\").replace("'", "\\'"),
             secret.replace("'", "''"),
             json.dumps(secret)[1:-1], json.dumps(secret, ensure_ascii=False)[1:-1],
             repr(secret)[1:-1], ascii(secret)[1:-1]}
    for encoded in (quote(secret, safe=""), quote_plus(secret, safe=""), quote(secret)):
        forms |= {encoded, _lower_hex(encoded)}
    return {form for form in forms if form}


def _lower_hex(encoded: str) -> str:
    parts = encoded.split("%")
    return parts[0] + "".join("%" + p[:2].lower() + p[2:] for p in parts[1:])


def redact(text: str, secrets: Iterable[str | None]) -> str:
    """`text` with every form of every secret replaced by `***` (the longest first, so an
    escaped form is masked whole, not around its raw core)."""
    forms = {form for secret in secrets if secret for form in secret_forms(secret)}
    for form in sorted(forms, key=len, reverse=True):
        text = text.replace(form, "***")
    return text


def redacted_line(exc: BaseException | str, secret: str | None) -> str:
    """`first_line` with `secret` (a password) masked in every form: drivers may echo a
    connection string, quoted their own way."""
    message = first_line(exc) if isinstance(exc, BaseException) else (
        exc.strip().splitlines() or [""])[0]
    return redact(message, [secret])


_MISSING_DATABASE = re.compile(r'database "((?:[^"]|"")+)" does not exist')


def missing_database(exc: BaseException | str, where: str, *, host: str, port: int,
                     user: str) -> str | None:
    """For a PostgreSQL connection refused because its database does not exist: a line that
    says so and how to create it (`createdb`); None for any other error."""
    match = _MISSING_DATABASE.search(str(exc))
    if match is None:
        return None
    name = match.group(1).replace('""', '"')
    command = " ".join(shlex.quote(part) for part in
                       ("createdb", "-h", host, "-p", str(port), "-U", user, name))
    return f'{where}: database "{name}" does not exist; create it first: {command}'
