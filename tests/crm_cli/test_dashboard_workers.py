"""`crm-analytics dashboard --workers N`: Streamlit processes behind nginx (Debian's), over the
pipeline-built test warehouse. Through the proxy every page runs to its end over Streamlit's
websocket, browsers spread over both workers by the proxy's own cookie, a tenant-scoped user
sees only their business and an unrestricted one sees every business, the configuration is
nginx's own, and SIGTERM stops nginx and every worker. Without nginx: one `error:` line."""

from __future__ import annotations

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import duckdb
import pytest

from crm_cli.dashboard_workers import find_nginx
from crm_core.errors import CrmError
from tests.helpers.cli import CRM_SCRIPT, clean_env, free_port
from tests.helpers.dashboard import ACCESS, DashboardWarehouse
from tests.helpers.paths import REPO_ROOT

BENCH = REPO_ROOT / "benchmarks" / "bench_dashboard_protocol.py"
WORKERS_LINE = re.compile(r"127\.0\.0\.1 ports (\d+), (\d+)\) behind nginx")

pytestmark = pytest.mark.skipif(shutil.which("nginx", path=os.pathsep.join(
    [os.environ.get("PATH", ""), "/usr/local/sbin", "/usr/sbin", "/sbin"])) is None
    and not os.environ.get("CRM_REQUIRE_NGINX"), reason="nginx is not installed")


def _connects(port: int) -> int:
    """Sessions a worker has accepted so far (Streamlit's own metrics, asked directly)."""
    with urllib.request.urlopen(f"http://127.0.0.1:{port}/_stcore/metrics",
                                timeout=10) as response:
        text = response.read().decode()
    found = re.search(r'session_events_total\{type="connect"\} (\d+)', text)
    assert found, text
    return int(found[1])


def _bench(url: str, out: Path, sessions: int, user: str) -> dict:
    proc = subprocess.run(
        [sys.executable, str(BENCH), "--url", url, "--sessions", str(sessions), "--rounds", "1",
         "--header", f"X-Forwarded-Email={user}", "--json", str(out)],
        capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return json.loads(out.read_text())


def _business_names(warehouse: DashboardWarehouse) -> dict[int, str]:
    link = warehouse.warehouse_file.with_name("wh.serving.duckdb")
    with duckdb.connect(str(link.resolve()), read_only=True) as con:
        rows = con.execute("select distinct business_id, business_name from marts.dim_tenants "
                           "where business_id is not null").fetchall()
    return dict(rows)


def test_two_workers_behind_nginx_spread_sessions_and_keep_the_tenant_scope(
        dashboard_warehouse: DashboardWarehouse, tmp_path: Path) -> None:
    access = tmp_path / "access.yml"
    access.write_text(ACCESS)
    port = free_port()
    env = clean_env(**dashboard_warehouse.env, CRM_AUTH="header",
                    CRM_ACCESS_FILE=str(access), HOME=str(tmp_path))
    proc = subprocess.Popen([CRM_SCRIPT, "dashboard", "--port", str(port), "--workers", "2"],
                            cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, start_new_session=True)
    lines: list[str] = []
    try:
        while not any(WORKERS_LINE.search(line) for line in lines):
            line = proc.stdout.readline()  # type: ignore[union-attr]
            assert line, "".join(lines)
            lines.append(line)
        ports = [int(p) for p in WORKERS_LINE.search("".join(lines)).groups()]  # type: ignore
        nginx = [p for p in _children(proc.pid) if p[1].startswith("nginx")]
        assert nginx, "no nginx process under the CLI"
        url = f"http://127.0.0.1:{port}"

        # The proxy's sticky cookie, set once per browser, and the worker headers it answers.
        with urllib.request.urlopen(url + "/", timeout=30) as response:
            assert response.headers["Server"].startswith("nginx")
            cookie = response.headers["Set-Cookie"]
        assert cookie.startswith("crm_dashboard_worker=") and "HttpOnly" in cookie

        names = _business_names(dashboard_warehouse)
        assert len(names) > 1
        before = [_connects(p) for p in ports]
        ana = _bench(url, tmp_path / "ana.json", 8, "ana@example.com")
        after = [_connects(p) for p in ports]
        # 8 browsers (+ the bench's untimed warm-up one) over two workers: both got some.
        spread = [a - b for a, b in zip(after, before, strict=True)]
        assert sum(spread) == 9 and min(spread) >= 1, spread
        steps = ana["steps"][0]
        assert ana["levels"][0]["errors"] == [] and len(steps) == 8 * 8
        # ana may see business 1 only: on every page, that is the one business offered.
        assert {tuple(s["businesses"]) for s in steps} == {(names[1],)}

        boss = _bench(url, tmp_path / "boss.json", 2, "boss@example.com")
        assert {frozenset(s["businesses"]) for s in boss["steps"][0]} == \
            {frozenset(names.values())}
        # A user the access file does not know gets no page at all (the viewer is refused).
        refused = subprocess.run(
            [sys.executable, str(BENCH), "--url", url, "--sessions", "1", "--rounds", "1",
             "--header", "X-Forwarded-Email=eve@example.com", "--json",
             str(tmp_path / "eve.json")], capture_output=True, text=True, timeout=300,
            check=False)
        assert refused.returncode == 1
        assert "no Business filter on the page" in refused.stdout
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        out = proc.communicate(timeout=60)[0]
    assert proc.returncode == 0, "".join(lines) + out
    assert "stopping the dashboards" in out
    deadline = time.monotonic() + 10
    while any(_alive(pid) for pid, _ in nginx) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not any(_alive(pid) for pid, _ in nginx)
    # nginx ran on its own configuration in a temporary folder, removed on the way out.
    prefix = Path(nginx[0][1].split(" -p ", 1)[1].split()[0])
    assert prefix.name.startswith("crm-dashboard-nginx-") and not prefix.exists()


def _children(pid: int) -> list[tuple[int, str]]:
    """(pid, command line) of each direct child of `pid`."""
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(pid)], capture_output=True,
                         text=True, check=False).stdout
    return [(int(p), rest.strip()) for p, _, rest in
            (line.strip().partition(" ") for line in out.splitlines() if line.strip())]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    return Path(f"/proc/{pid}").exists() and "zombie" not in \
        Path(f"/proc/{pid}/status").read_text().lower()


def test_without_nginx_workers_are_one_error_line(tmp_path: Path) -> None:
    with pytest.raises(CrmError) as caught:
        find_nginx(search_path=str(tmp_path))
    message = str(caught.value)
    assert "\n" not in message and "nginx" in message and "apt-get install" in message
