"""The two long-running servers: Dagster (UI + daemon, `crm-analytics serve`) and the
dashboards (`crm-analytics dashboard`).

Both check their port first, so a busy one is a single `error:` line suggesting `--port`
rather than a server's own traceback. The dashboards in demo mode (no sign-in configured, so
every tenant's data is visible) listen on 127.0.0.1 only unless `--host` says otherwise.
"""

from __future__ import annotations

import errno
import os
import socket
import sys
import tomllib
from pathlib import Path

from crm_core.errors import CrmError
from crm_core.settings import PROJECT_ROOT, Settings
from orchestration.instance import dagster_home_path, dagster_instance

LOOPBACK = "127.0.0.1"
DAGSTER_PORT = 3000
DASHBOARD_PORT = 8501


def require_free_port(host: str, port: int) -> None:
    """Raise a one-line `CrmError` when `host:port` cannot be listened on."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind((host, port))
        except OSError as exc:
            if exc.errno == errno.EADDRINUSE:
                raise CrmError(f"port {port} is already in use on {host}; choose another with "
                               f"--port (e.g. --port {port + 1})") from None
            raise CrmError(f"cannot listen on {host}:{port}: {exc.strerror}") from None


def _executable(name: str) -> str:
    """A console script installed beside this Python (the venv may not be on PATH)."""
    return str(Path(sys.executable).with_name(name))


def serve_dagster(settings: Settings, host: str, port: int) -> None:
    """Replace this process by `dagster dev` on the pipeline's instance: the webserver and the
    daemon, which runs the daily rollup and the landing sensor (both on by default)."""
    require_free_port(host, port)
    home = dagster_home_path(settings)
    with dagster_instance(home):  # creates the home if need be; a dagster.yaml it cannot use
        pass                      # is one line here, not a traceback from each server
    shown = "localhost" if host == LOOPBACK else host
    print(f"Dagster UI and daemon on http://{shown}:{port} (instance {home}); the daily_rollup "
          "schedule and the new_landing_files sensor are on (the sensor's first evaluation "
          "starts one run). Ctrl-C stops both.", flush=True)
    argv = [_executable("dagster"), "dev", "-m", "orchestration.definitions",
            "--host", host, "--port", str(port)]
    # `dagster dev` warns on every start that `dg dev` supersedes it (a FutureWarning); the
    # console should show the servers' own lines. A PYTHONWARNINGS the user set wins.
    env = {"PYTHONWARNINGS": "ignore::FutureWarning", **os.environ, "DAGSTER_HOME": str(home)}
    os.execve(argv[0], argv, env)


def oidc_configured(cwd: Path | None = None) -> bool:
    """Whether Streamlit's secrets have an `[auth]` section (its OIDC sign-in), in the project's
    or the user's `.streamlit/secrets.toml` — the files Streamlit itself reads."""
    for folder in ((cwd or Path.cwd()) / ".streamlit", Path.home() / ".streamlit"):
        try:
            if "auth" in tomllib.loads((folder / "secrets.toml").read_text(encoding="utf-8")):
                return True
        except (OSError, tomllib.TOMLDecodeError):
            continue
    return False


def demo_mode(settings: Settings) -> bool:
    """Nobody signs in and no access file limits anyone: every tenant is visible."""
    auth = settings.auth
    if auth == "auto":
        auth = "oidc" if oidc_configured() else "none"
    return auth == "none" and settings.access_file is None


def serve_dashboards(settings: Settings, host: str | None, port: int, workers: int = 1) -> None:
    """Replace this process by the Streamlit server of the dashboards; with `workers` > 1, run
    that many behind nginx instead (`crm_cli.dashboard_workers`)."""
    address = host
    if host is None and demo_mode(settings):
        address = LOOPBACK
        print("demo mode (no sign-in configured, every tenant's data visible): listening "
              f"on {LOOPBACK} only; pass --host 0.0.0.0 to serve other machines.", flush=True)
    require_free_port(address or "0.0.0.0", port)
    app = PROJECT_ROOT / "dashboards" / "app.py"
    # Served, not developed: no forced full garbage collection after every script run (with
    # the shared cache's figures and frames in the heap, `gc.collect(2)` was half of a page
    # run's CPU; Python's own collector still runs as allocations call for it) and no source
    # watcher (after every run it resolved the path of every loaded module, on the thread
    # that serves the websockets, and a changed file reloaded modules under running pages).
    argv = [sys.executable, "-m", "streamlit", "run", str(app), "--server.headless", "true",
            "--browser.gatherUsageStats", "false", "--client.toolbarMode", "minimal",
            "--runner.postScriptGC", "false", "--server.fileWatcherType", "none"]
    if workers > 1:
        from crm_cli.dashboard_workers import find_nginx, serve_workers

        find_nginx()  # before anything starts: a missing nginx is one error line
        shown = "localhost" if address == LOOPBACK else (address or "localhost")
        serve_workers(argv, address or "0.0.0.0", port, workers, shown=shown)
        return
    argv += ["--server.port", str(port)]
    if address is not None:  # else Streamlit's default: every interface
        argv += ["--server.address", address]
    os.execv(sys.executable, argv)
