"""`crm-analytics dashboard --workers N`: N Streamlit processes behind nginx.

Why: one Streamlit process runs every session's script on one interpreter (one core at a
time), so a sales floor opening pages at once queues behind it. Several processes share the
load; a real proxy in front keeps each browser on one of them, because a Streamlit session
(its websocket, its widget state, its download files) lives in the process that created it.

How sessions stay put: a browser's first request goes to the next worker in turn, and nginx
answers it with a cookie naming that worker (`crm_dashboard_worker=<n>`); every later request
carrying the cookie (the page's websocket, its downloads) goes to that worker. New browsers
spread evenly even when they all come from one address (a NAT, a load generator), which
hashing on the client address would not do. The tenant scope needs no
stickiness: each worker resolves the viewer from the request itself (the trusted header or
OIDC cookie, which nginx passes through) and the access file, exactly as a single process does.

nginx runs as a child of this process with its own configuration in a temporary folder (no
system configuration is read or changed); the workers listen on 127.0.0.1 only. Ctrl-C or
SIGTERM stops nginx and the workers; if any of them exits, the others are stopped too. Children
also get SIGTERM from the kernel should this process die without cleaning up (Linux).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Sequence
from pathlib import Path

from crm_core.errors import CrmError

#: Where nginx is looked for after PATH: Debian installs it in /usr/sbin, which a non-root
#: user's PATH often lacks.
SBIN = ("/usr/local/sbin", "/usr/sbin", "/sbin")
COOKIE = "crm_dashboard_worker"
STARTUP_S = 120.0


def find_nginx(search_path: str | None = None) -> str:
    """The nginx binary on `search_path` (default: PATH, then the sbin folders), or one
    `error:` line saying how to get it."""
    if search_path is None:
        search_path = os.pathsep.join([os.environ.get("PATH", ""), *SBIN])
    found = shutil.which("nginx", path=search_path)
    if found is None:
        raise CrmError("--workers needs nginx, which is not installed (Debian: apt-get install "
                       "nginx-light); or serve with one process: drop --workers")
    return found


def free_ports(count: int) -> list[int]:
    """`count` distinct free TCP ports on 127.0.0.1 (held open together while chosen)."""
    socks = []
    try:
        for _ in range(count):
            sock = socket.socket()
            sock.bind(("127.0.0.1", 0))
            socks.append(sock)
        return [s.getsockname()[1] for s in socks]
    finally:
        for sock in socks:
            sock.close()


def nginx_config(folder: Path, listen: str, worker_ports: Sequence[int]) -> str:
    """nginx's whole configuration: the workers as one round-robin upstream, a browser pinned
    to the worker that answered its first request by a cookie naming that worker's number,
    websockets upgraded and kept open, every path and temporary file inside `folder`."""
    servers = "\n".join(f"        server 127.0.0.1:{p} max_fails=0;" for p in worker_ports)
    by_cookie = "\n".join(f'        "{n}" 127.0.0.1:{p};'
                           for n, p in enumerate(worker_ports, start=1))
    by_address = "\n".join(f'        "127.0.0.1:{p}" {n};'
                            for n, p in enumerate(worker_ports, start=1))
    return f"""
worker_processes 1;
daemon off;
pid {folder}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    client_body_temp_path {folder}/client_body;
    proxy_temp_path {folder}/proxy;
    fastcgi_temp_path {folder}/fastcgi;
    uwsgi_temp_path {folder}/uwsgi;
    scgi_temp_path {folder}/scgi;
    map $http_upgrade $connection_upgrade {{ default upgrade; "" close; }}
    upstream crm_dashboard_workers {{
{servers}
    }}
    # A cookie naming a worker goes to that worker; anything else (no cookie, an unknown
    # value) to the next worker in turn, and the answer sets the cookie to the one it was.
    map $cookie_{COOKIE} $crm_backend {{
        default crm_dashboard_workers;
{by_cookie}
    }}
    map $upstream_addr $crm_worker_number {{
        default "";
{by_address}
    }}
    map $crm_backend $crm_set_cookie {{
        crm_dashboard_workers "{COOKIE}=$crm_worker_number; Path=/; HttpOnly; SameSite=Lax";
        default "";
    }}
    server {{
        listen {listen};
        client_max_body_size 200m;
        location / {{
            proxy_pass http://$crm_backend;
            proxy_http_version 1.1;
            proxy_set_header Host $http_host;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 1d;
            proxy_send_timeout 1d;
            proxy_buffering off;
            add_header Set-Cookie $crm_set_cookie always;
        }}
    }}
}}
"""


def _die_with_parent() -> None:
    """In the child, before exec: the kernel sends SIGTERM when this CLI process dies."""
    if sys.platform.startswith("linux"):
        ctypes.CDLL(None, use_errno=True).prctl(1, signal.SIGTERM)  # PR_SET_PDEATHSIG


class _Stop(Exception):
    """SIGTERM (or SIGINT) asked the supervisor to stop."""


def _raise_stop(signum: int, _frame: object) -> None:
    raise _Stop(signal.Signals(signum).name)


def _wait_healthy(host: str, port: int, procs: Sequence[subprocess.Popen[bytes]]) -> None:
    """Until Streamlit's health check answers on host:port; a started process that exits
    meanwhile is an error."""
    deadline = time.monotonic() + STARTUP_S
    where = f"[{host}]" if ":" in host else host
    while True:
        try:
            with urllib.request.urlopen(f"http://{where}:{port}/_stcore/health",
                                        timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        dead = [p for p in procs if p.poll() is not None]
        if dead:
            raise CrmError(f"{_name(dead[0])} exited while starting "
                           f"(exit {dead[0].returncode})")
        if time.monotonic() > deadline:
            raise CrmError(f"the dashboards on port {port} did not answer within "
                           f"{STARTUP_S:.0f} s")
        time.sleep(0.3)


def _name(proc: subprocess.Popen[bytes]) -> str:
    args = list(proc.args)  # type: ignore[arg-type]
    return "nginx" if Path(str(args[0])).name == "nginx" else "a dashboard worker"


def _stop_all(procs: Sequence[subprocess.Popen[bytes]]) -> None:
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()
    deadline = time.monotonic() + 15
    for proc in procs:
        try:
            proc.wait(timeout=max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def serve_workers(streamlit_argv: Sequence[str], listen_host: str, port: int,
                  workers: int, *, shown: str) -> None:
    """Run `workers` Streamlit processes (`streamlit_argv` plus a port each) behind nginx on
    `listen_host:port`, until Ctrl-C, SIGTERM or one of them exits."""
    nginx = find_nginx()
    folder = Path(tempfile.mkdtemp(prefix="crm-dashboard-nginx-"))
    folder.chmod(0o755)  # nginx's worker (an unprivileged user when run as root) enters it
    ports = free_ports(workers)
    listen = f"[{listen_host}]:{port}" if ":" in listen_host else f"{listen_host}:{port}"
    (folder / "nginx.conf").write_text(nginx_config(folder, listen, ports), encoding="utf-8")
    procs: list[subprocess.Popen[bytes]] = []
    previous = {s: signal.signal(s, _raise_stop) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        for worker_port in ports:
            argv = [*streamlit_argv, "--server.port", str(worker_port),
                    "--server.address", "127.0.0.1"]
            # stdout carries only Streamlit's "view your app at <worker URL>" banner, which
            # would point people past the proxy; its log (stderr) stays visible.
            procs.append(subprocess.Popen(argv, preexec_fn=_die_with_parent,
                                          stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL))
        for worker_port in ports:
            _wait_healthy("127.0.0.1", worker_port, procs)
        procs.append(subprocess.Popen(
            [nginx, "-p", str(folder), "-c", str(folder / "nginx.conf"), "-e", "stderr"],
            preexec_fn=_die_with_parent, stdin=subprocess.DEVNULL))
        probe = "127.0.0.1" if listen_host in ("0.0.0.0", "") else \
            "::1" if listen_host == "::" else listen_host
        _wait_healthy(probe, port, procs)
        print(f"Dashboards on http://{shown}:{port}: {workers} Streamlit workers (127.0.0.1 "
              f"ports {', '.join(map(str, ports))}) behind nginx, sessions sticky by cookie. "
              "Ctrl-C stops them all.", flush=True)
        while True:
            for proc in procs:
                if proc.poll() is not None:
                    raise CrmError(f"{_name(proc)} exited (exit {proc.returncode}); "
                                   "the dashboards are stopped")
            time.sleep(0.5)
    except _Stop:
        print("stopping the dashboards", flush=True)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        _stop_all(procs)
        shutil.rmtree(folder, ignore_errors=True)
