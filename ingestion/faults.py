"""Fault injection for the reliability tests: `CRM_FAULT_AT=<point>` kills this process with
SIGKILL when it reaches that point.

Why it exists: the event load and its manifest are written in one warehouse transaction, and
the tests must prove it by killing the process exactly between the two. On PostgreSQL a table
lock taken by the test holds the process there; a DuckDB file has no outside lock, so the
process kills itself at the named point instead. Unset (always, in production) it does nothing.

Points: `events_loaded` (event rows inserted, manifest not yet written).
"""

from __future__ import annotations

import os
import signal

FAULT_ENV = "CRM_FAULT_AT"


def fault_point(name: str) -> None:
    """SIGKILL this process if `CRM_FAULT_AT` names this point."""
    if os.environ.get(FAULT_ENV) == name:
        os.kill(os.getpid(), signal.SIGKILL)
