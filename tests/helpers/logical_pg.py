"""A second, private PostgreSQL cluster with `wal_level=logical`, for the change-data-capture
tests and benchmark: `initdb` in a fresh folder, `pg_ctl` on a free port, stopped and removed at
the end. The shared server (5432) keeps its own settings: logical decoding needs a server
restart to switch on, which the tests must not impose on anyone else.

As root, `initdb` and `pg_ctl` refuse to run: they run as the `postgres` OS user, in a folder
that user owns.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import psycopg
import pytest

#: postgresql.conf lines of the private cluster: logical decoding on, small and unsafe (a
#: throw-away cluster: no fsync). Commits stay synchronous, as on a real ERP: an asynchronous
#: commit is visible before its WAL is flushed, and only flushed WAL can be decoded, so a
#: sync right after a write would not see it yet (it would the next time).
CLUSTER_CONF = """
listen_addresses = '127.0.0.1'
wal_level = logical
max_replication_slots = 10
max_wal_senders = 10
fsync = off
full_page_writes = off
shared_buffers = 128MB
max_connections = 50
"""


@dataclass(frozen=True)
class LogicalCluster:
    host: str
    port: int
    folder: Path

    def conninfo(self, dbname: str = "postgres", user: str = "postgres") -> str:
        return f"host={self.host} port={self.port} user={user} dbname={dbname} connect_timeout=5"

    def url(self, dbname: str, user: str = "postgres",
            driver: str = "postgresql+psycopg") -> str:
        return f"{driver}://{user}@{self.host}:{self.port}/{dbname}"

    def create_database(self, name: str) -> str:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            conn.execute(f'create database "{name}"')
        return name

    @contextmanager
    def scratch_database(self, prefix: str) -> Iterator[str]:
        """A fresh database named `<prefix>_<random>`, dropped afterwards (its slots first)."""
        name = self.create_database(f"{prefix}_{uuid.uuid4().hex[:10]}")
        try:
            yield name
        finally:
            self.drop_database(name)

    def drop_database(self, name: str) -> None:
        with psycopg.connect(self.conninfo(), autocommit=True) as conn:
            # A slot holds its database: drop the database's slots first.
            conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots "
                         "where database = %s and not active", [name])
            conn.execute(f'drop database if exists "{name}" with (force)')


def pg_bin(name: str) -> str | None:
    """A PostgreSQL server binary: Debian keeps them out of the PATH, under
    /usr/lib/postgresql/<major>/bin (the newest major wins)."""
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"),
                   key=lambda p: int(Path(p).parts[-3]) if Path(p).parts[-3].isdigit() else 0)
    return found[-1] if found else shutil.which(name)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _as_postgres(command: list[str]) -> list[str]:
    """As root, run as the `postgres` OS user (initdb and pg_ctl refuse root)."""
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@contextmanager
def logical_cluster(extra_conf: str = "") -> Iterator[LogicalCluster]:
    """Start a private cluster with `wal_level=logical` (plus `extra_conf` lines); stop and
    remove it afterwards. Raises RuntimeError with the reason when it cannot."""
    initdb, pg_ctl = pg_bin("initdb"), pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise RuntimeError("initdb/pg_ctl not found (install Debian's postgresql package)")
    folder = Path(tempfile.mkdtemp(prefix="crm_logical_pg_"))
    data = folder / "data"
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
    os.chmod(folder, 0o700)
    port = _free_port()
    try:
        proc = subprocess.run(_as_postgres([initdb, "-D", str(data), "-U", "postgres",
                                            "-A", "trust", "-E", "UTF8", "--no-sync"]),
                              capture_output=True, text=True)
        if proc.returncode != 0:
            raise RuntimeError(f"initdb failed: {proc.stderr.strip()[-500:]}")
        conf = (CLUSTER_CONF + f"port = {port}\nunix_socket_directories = '{folder}'\n"
                + extra_conf)
        subprocess.run(_as_postgres(["sh", "-c", f"cat >> {data}/postgresql.conf"]),
                       input=conf, text=True, check=True)
        proc = subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-l",
                                            str(folder / "server.log"), "-w", "-t", "60",
                                            "start"]), capture_output=True, text=True)
        if proc.returncode != 0:
            log = (folder / "server.log").read_text(errors="replace")[-500:] \
                if (folder / "server.log").exists() else ""
            raise RuntimeError(f"pg_ctl start failed: {proc.stderr.strip()[-300:]} {log}")
        try:
            yield LogicalCluster("127.0.0.1", port, folder)
        finally:
            subprocess.run(_as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w",
                                         "stop"]), capture_output=True)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def logical_pg() -> Iterator[LogicalCluster]:
    """The private `wal_level=logical` cluster of this test session, or a skip with the reason
    (a failure under CRM_REQUIRE_POSTGRES=1)."""
    try:
        with logical_cluster() as cluster:
            yield cluster
            return
    except RuntimeError as exc:
        reason = f"no logical-decoding PostgreSQL cluster: {exc}"
    if os.environ.get("CRM_REQUIRE_POSTGRES") == "1":
        pytest.fail(f"CRM_REQUIRE_POSTGRES=1 but {reason}")
    pytest.skip(reason)


@pytest.fixture
def private_pg_database(logical_pg: LogicalCluster) -> Iterator[str]:
    """A fresh database on this session's private cluster, as a `postgresql://` URL; dropped
    afterwards. For tests that count the rows the `xmin` cursor reads: its horizon is the
    oldest transaction running anywhere on the server, and on the shared server another test
    worker's transactions would hold it back (the sync then rightly reads more)."""
    with logical_pg.scratch_database("crm_src") as name:
        yield logical_pg.url(name, driver="postgresql")
