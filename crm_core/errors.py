"""The one exception type users see: its message is a single line that names the problem."""


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
