"""The one exception type users see: its message is a single line that names the problem."""

import re
import shlex


class CrmError(Exception):
    """A failure the user can act on. `str(err)` is shown as-is, prefixed by `error: `.

    Never put a password in the message: format URLs with `crm_core.urls.redact_url`.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: driver errors span several lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__


def redacted_line(exc: BaseException | str, secret: str | None) -> str:
    """`first_line` with `secret` (a password) masked: drivers may echo a connection string."""
    message = first_line(exc) if isinstance(exc, BaseException) else (
        exc.strip().splitlines() or [""])[0]
    return message.replace(secret, "***") if secret else message


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
