"""The one exception type users see: its message is a single line that names the problem."""


class CrmError(Exception):
    """A failure the user can act on. `str(err)` is shown as-is, prefixed by `error: `.

    Never put a password in the message: format URLs with `ingestion.urls.redact_url`.
    """


def first_line(exc: BaseException) -> str:
    """The first line of an exception's message: driver errors span several lines."""
    lines = str(exc).strip().splitlines()
    return lines[0] if lines else type(exc).__name__
