"""One writer at a time per warehouse.

Two pipeline runs writing the same warehouse would race (and DuckDB refuses a second writer
process outright), so `crm-analytics run` and `sync` take this lock first and a second run is
refused with a clear message instead of failing half-way. DuckDB (and Spark, whose loaders
write a local DuckDB staging file): an OS file lock beside the file (released by the kernel if
the process dies; the file is removed when the run ends).
PostgreSQL: a session advisory lock.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import IO

import psycopg

from crm_core.errors import CrmError, first_line, missing_database
from crm_core.urls import WarehouseTarget

ADVISORY_LOCK_KEY = 0x43524D  # "CRM"


def _lock_file(lock_path: Path, target: WarehouseTarget, busy: str) -> IO[str]:
    """Open and exclusively lock `lock_path`; retried when the file was removed (by the
    previous holder, on release) between our open and our lock."""
    for _attempt in range(100):
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+")  # noqa: SIM115 (held for the whole run)
        except OSError as exc:
            raise CrmError(f"warehouse {target.describe()} cannot be opened for writing: "
                           f"{first_line(exc)}") from None
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            handle.close()
            raise CrmError(busy) from None
        try:
            if os.stat(lock_path).st_ino == os.fstat(handle.fileno()).st_ino:
                return handle
        except FileNotFoundError:
            pass
        handle.close()  # we locked a file that is gone: try the new one
    raise CrmError(busy)


@contextmanager
def warehouse_write_lock(target: WarehouseTarget) -> Iterator[None]:
    busy = (f"another pipeline run is writing {target.describe()}; "
            "try again when it has finished")
    if target.duckdb_path is not None:  # DuckDB, or Spark's staging file (one writer per lake)
        lock_path = target.duckdb_path.with_name(target.duckdb_path.name + ".lock")
        handle = _lock_file(lock_path, target, busy)
        try:
            yield
        finally:
            # Removed while still held, so no lock file outlives a run; a process that opened
            # it just before sees the inode gone and opens a fresh one (`_lock_file`).
            lock_path.unlink(missing_ok=True)
            handle.close()
        return
    try:
        conn = psycopg.connect(target.conninfo(), connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise CrmError(missing_database(exc, f"warehouse {target.describe()}", host=target.host,
                                        port=target.port, user=target.user)
                       or f"warehouse {target.describe()} is unreachable: {first_line(exc)}") \
            from None
    try:
        if not conn.execute("select pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY]).fetchone()[0]:
            raise CrmError(busy)
        yield
    finally:
        conn.close()
