"""One writer at a time per warehouse.

Two pipeline runs writing the same warehouse would race (and DuckDB refuses a second writer
process outright), so `crm-analytics run` and `sync` take this lock first and a second run is
refused with a clear message instead of failing half-way. DuckDB: an OS file lock beside the
file (released by the kernel if the process dies). PostgreSQL: a session advisory lock.
"""

from __future__ import annotations

import fcntl
from collections.abc import Iterator
from contextlib import contextmanager

import psycopg

from crm_core.errors import CrmError, first_line
from crm_core.urls import WarehouseTarget

ADVISORY_LOCK_KEY = 0x43524D  # "CRM"


@contextmanager
def warehouse_write_lock(target: WarehouseTarget) -> Iterator[None]:
    busy = (f"another pipeline run is writing {target.describe()}; "
            "try again when it has finished")
    if target.is_duckdb:
        assert target.duckdb_path is not None
        lock_path = target.duckdb_path.with_name(target.duckdb_path.name + ".lock")
        try:
            lock_path.parent.mkdir(parents=True, exist_ok=True)
            handle = open(lock_path, "a+")  # noqa: SIM115 (held for the whole run)
        except OSError as exc:
            raise CrmError(f"warehouse {target.describe()} cannot be opened for writing: "
                           f"{first_line(exc)}") from None
        try:
            try:
                fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise CrmError(busy) from None
            yield
        finally:
            handle.close()
        return
    try:
        conn = psycopg.connect(target.conninfo(), connect_timeout=10, autocommit=True)
    except psycopg.Error as exc:
        raise CrmError(f"warehouse {target.describe()} is unreachable: {first_line(exc)}") \
            from None
    try:
        if not conn.execute("select pg_try_advisory_lock(%s)", [ADVISORY_LOCK_KEY]).fetchone()[0]:
            raise CrmError(busy)
        yield
    finally:
        conn.close()
