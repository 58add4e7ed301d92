"""The one exception type users see: its message is a single line that names the problem."""


class CrmError(Exception):
    """A failure the user can act on. `str(err)` is shown as-is, prefixed by `error: `.

    Never put a password in the message: format URLs with `ingestion.urls.redact_url`.
    """
