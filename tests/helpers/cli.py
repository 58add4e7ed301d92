"""Running `crm-analytics` as a user does: the real command (as a module, or the installed
console script) in a clean environment, the one-line error every failure must be, free ports,
who listens where, `crm-analytics serve` in the background, and one small generated world with
a pipeline run (session scope, built on first use)."""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TypeVar

import pytest

CLI = [sys.executable, "-m", "crm_cli.cli"]
#: The installed console script, as `make demo` leaves it in `.venv/bin`.
CRM_SCRIPT = str(Path(sys.executable).with_name("crm-analytics"))

PASSWORD = "Sup3r-s3cret-pw"


def clean_env(**env: str) -> dict[str, str]:
    """This process's environment without CRM_*, dbt's secrets or DAGSTER_HOME, plus `env`."""
    base = {k: v for k, v in os.environ.items()
            if not k.startswith(("CRM_", "DBT_ENV_")) and k != "DAGSTER_HOME"}
    return {**base, **env}


def crm(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in `cwd` with a clean environment plus `env`."""
    return subprocess.run(CLI + args, cwd=cwd, env=clean_env(**env), capture_output=True,
                          text=True, timeout=600, check=False)


def crm_script(args: list[str], cwd: Path, timeout: float = 900,
               **env: str) -> subprocess.CompletedProcess[str]:
    """Run the console script in `cwd` with a clean environment plus `env`."""
    return subprocess.run([CRM_SCRIPT, *args], cwd=cwd, env=clean_env(**env),
                          capture_output=True, text=True, timeout=timeout, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single `error: ...` line of a failed command, holding every fragment; no
    traceback, no password, no `unexpected` (an error nobody anticipated)."""
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    # `error: unexpected <Type>: ...` is the command line's last resort (an error nobody
    # anticipated); a driver's own wording ("closed the connection unexpectedly") is fine.
    assert lines[0].startswith("error: ") and not lines[0].startswith("error: unexpected "), \
        lines[0]
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def listening_addresses(port: int) -> set[str]:
    """The local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A: LISTEN
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


T = TypeVar("T")


def wait_for(probe: Callable[[], T | None], seconds: float) -> T:
    """`probe()`'s first truthy value, tried every 2 s for up to `seconds`."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        value = probe()
        if value:
            return value
        time.sleep(2)
    raise AssertionError(f"gave up after {seconds}s")


def get_json(url: str) -> Any:
    """The JSON at `url`, or None while nothing answers there."""
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            return json.loads(response.read())
    except OSError:
        return None


@contextmanager
def dagster_served(cwd: Path, env: dict[str, str]) -> Iterator[tuple[int, Path]]:
    """`crm-analytics serve` (the Dagster UI and daemon) on a free port from `cwd`, with a clean
    environment plus `env`; yields the port and its log once the UI answers, and stops the
    whole process group on the way out. Its output goes to the log file: an undrained pipe
    would fill and block the runs it launches."""
    port = free_port()
    log = cwd / f"serve-{port}.log"
    with open(log, "w") as out:
        server = subprocess.Popen([CRM_SCRIPT, "serve", "--port", str(port)], cwd=cwd,
                                  env=clean_env(**env), stdout=out, stderr=subprocess.STDOUT,
                                  start_new_session=True)
    try:
        info = wait_for(lambda: get_json(f"http://127.0.0.1:{port}/server_info"), 300)
        assert "dagster_webserver_version" in info
        yield port, log
    finally:
        os.killpg(server.pid, signal.SIGTERM)
        try:
            server.wait(timeout=60)
        except subprocess.TimeoutExpired:
            os.killpg(server.pid, signal.SIGKILL)


def landing_sensor_run(instance: Any, seconds: float) -> Any:
    """The run the daemon launched for the landing sensor on `instance` (a DagsterInstance),
    once it has finished; asserts it succeeded, with its last log lines when it did not."""
    from dagster import DagsterRunStatus, RunsFilter

    def finished() -> list[Any] | None:
        runs = instance.get_runs(RunsFilter(tags={"crm/trigger": "new_landing_files"}))
        return runs if runs and runs[0].is_finished else None

    (run,) = wait_for(finished, seconds)
    assert run.status == DagsterRunStatus.SUCCESS, [
        e.user_message for e in instance.all_logs(run.run_id)][-5:]
    return run


@dataclass(frozen=True)
class RunWorld:
    """A generated ERP and landing folder in `cwd` (the embedded defaults' `data/`), and the
    output of one `crm-analytics run` there."""

    cwd: Path
    as_of: str
    run: subprocess.CompletedProcess[str]

    @property
    def data(self) -> Path:
        return self.cwd / "data"

    @property
    def dagster_home(self) -> Path:
        return self.data / "dagster_home"


@pytest.fixture(scope="session")
def run_world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[RunWorld]:
    """A week of small demo data and one `run` on the defaults (DAGSTER_HOME unset)."""
    cwd = tmp_path_factory.mktemp("run_world")
    as_of = datetime.now(UTC).date().isoformat()
    generated = crm_script(["generate", "--days", "7", "--end-date", as_of], cwd)
    assert generated.returncode == 0, generated.stderr
    run = crm_script(["run", "--date", as_of], cwd)
    assert run.returncode == 0, run.stdout + run.stderr
    yield RunWorld(cwd, as_of, run)
