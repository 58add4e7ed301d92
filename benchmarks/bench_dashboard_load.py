"""The dashboards under load: N concurrent browser sessions for a few minutes
while the pipeline runs the next day.

    .venv/bin/python benchmarks/bench_dashboard_load.py [--sessions 20] [--duration 180]
        [--days 45] [--work DIR] [--json OUT]

1. Build: `crm-analytics generate --days N --end-date D` into SQLite + event files, then
   `crm-analytics run --date D` into a DuckDB warehouse (skipped when `--work` already holds one).
2. Serve: `crm-analytics dashboard --port <free port>` over that warehouse.
3. Load: one headless chromium (`/usr/bin/chromium`, Playwright), `--sessions` browser contexts
   (each its own cookies and Streamlit session), each cycling through the five pages with a
   filter in the URL (a business, a date range, both, none). A page's time runs from navigation
   until its content is rendered and Streamlit's "running" indicator is gone.
4. Meanwhile: a new landing folder for D+1 (the events of D again, new ids, one day later) and
   `crm-analytics run --date D+1`, started once every session has rendered its first page. The
   load goes on for `--duration` seconds and at least until that run has finished.
5. Errors counted: an exception element on a page, an HTTP status >= 400, a browser console
   error or uncaught page error, a page that does not render within 120 s, and the run's exit.

Prints p50 / p95 / max page time (all pages, and those during the run), page count and every
error; `--json` writes the same as JSON. Exit status 1 when there was any error.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import date, datetime, timedelta
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "crm_cli.cli"]
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync", "--no-first-run",
                 "--disable-dev-shm-usage"]
PAGES = ["", "pipeline", "leads", "campaigns", "customers"]
END_DATE = date(2026, 11, 1)
RENDERED = '[data-testid="stMetric"], [data-testid="stAlert"], [data-testid="stException"]'
IDLE = "() => !document.querySelector('[data-testid=\"stStatusWidget\"]')"
PAGE_TIMEOUT_MS = 120_000
BASE_PATH_PROBE = re.compile(r"/[a-z]+/_stcore/(health|host-config)$")


@dataclass
class LoadResult:
    sessions: int
    duration_s: float
    pages: int = 0
    times_s: list[float] = field(default_factory=list)
    times_during_run_s: list[float] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)
    run_date: str = ""
    run_exit: int | None = None
    run_seconds: float | None = None
    run_output: str = ""
    base_path_probes: int = 0
    aborted_by_navigation: int = 0
    external_failures: dict[str, int] = field(default_factory=dict)

    def summary(self) -> dict[str, Any]:
        out = {k: v for k, v in asdict(self).items()
               if k not in ("times_s", "times_during_run_s")}
        for name, values in (("all", self.times_s), ("during_run", self.times_during_run_s)):
            out[name] = _stats(values)
        return out


def _stats(values: list[float]) -> dict[str, float | int | None]:
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = ordered[min(len(ordered) - 1, round(0.95 * (len(ordered) - 1)))]
    return {"n": len(values), "p50": round(statistics.median(ordered), 3),
            "p95": round(p95, 3), "max": round(ordered[-1], 3)}


def environment(work: Path) -> dict[str, str]:
    return {"CRM_SOURCE_URL": f"sqlite:///{work}/erp.sqlite", "CRM_EVENTS_PATH": f"{work}/events",
            "CRM_WAREHOUSE_URL": f"duckdb:///{work}/wh.duckdb", "CRM_REPORTING_TZ": "UTC"}


def _cli(work: Path, *args: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    return subprocess.run(CLI + list(args), cwd=work, env={**base, **environment(work)},
                          capture_output=True, text=True, check=False, timeout=3600)


def build(work: Path, days: int) -> None:
    """A warehouse from generated data, as of END_DATE (kept when already there)."""
    if (work / "wh.duckdb").exists():
        return
    for args in (["generate", "--days", str(days), "--seed", "7", "--end-date",
                  END_DATE.isoformat(), "--quiet"], ["run", "--date", END_DATE.isoformat()]):
        proc = _cli(work, *args)
        if proc.returncode != 0:
            raise SystemExit(f"crm-analytics {args[0]} failed: {proc.stderr.strip()}")


def next_day(work: Path) -> date:
    """The day after the newest landing folder: a rerun on the same folder loads a new day."""
    days = [date.fromisoformat(p.name) for p in (work / "events").iterdir() if p.is_dir()]
    return max(days) + timedelta(days=1)


def next_day_landing(work: Path, day: date) -> int:
    """The landing folder for `day`: the events of the day before again, new ids, a day later.
    Returns the number of lines written."""
    import gzip

    source, target = work / "events" / (day - timedelta(days=1)).isoformat(), \
        work / "events" / day.isoformat()
    shutil.rmtree(target, ignore_errors=True)
    target.mkdir(parents=True)
    lines = 0
    for path in sorted(source.glob("*.jsonl*")):
        raw = path.read_bytes()
        text = gzip.decompress(raw).decode() if path.name.endswith(".gz") else raw.decode()
        out = []
        for line in text.splitlines():
            try:
                event = json.loads(line)
                event["id"] = f"{event['id']}-next"
                event["time"] = (datetime.fromisoformat(event["time"]) + timedelta(days=1)) \
                    .isoformat()
                out.append(json.dumps(event))
            except (ValueError, KeyError, TypeError):
                out.append(line)  # a bad line stays bad: the run rejects it as before
        (target / path.name.removesuffix(".gz")).write_text("\n".join(out) + "\n")
        lines += len(out)
    return lines


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(work: Path) -> tuple[subprocess.Popen[str], str]:
    port = _free_port()
    base = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    proc = subprocess.Popen(CLI + ["dashboard", "--port", str(port)], cwd=work,
                            env={**base, **environment(work)}, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE, text=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url
        except OSError:
            pass
        if proc.poll() is not None:
            raise SystemExit(f"dashboard exited: {proc.stderr.read()[-2000:]}")  # type: ignore
        if time.monotonic() > deadline:
            proc.kill()
            raise SystemExit("dashboard did not come up within 90 s")
        time.sleep(0.3)


def _filters(session: int, visit: int) -> str:
    """A different filter for each visit: none, a business, a date range, or both."""
    kind = (session + visit) % 4
    business = f"business={1 + (session + visit) % 3}"
    start = END_DATE - timedelta(days=7 + (session % 20))
    dates = f"from={start.isoformat()}&to={END_DATE.isoformat()}"
    return ["", f"?{business}", f"?{dates}", f"?{business}&{dates}"][kind]


class Load:
    """The sessions and the run, on one event loop."""

    def __init__(self, url: str, sessions: int, duration: float) -> None:
        self.url, self.sessions, self.duration = url, sessions, duration
        self.result = LoadResult(sessions, duration)
        self.started = asyncio.Event()  # every session has rendered a first page
        self.first_pages = 0
        self.run_active = False
        self.run_done = asyncio.Event()

    async def session(self, browser: Any, number: int, stop_at: list[float]) -> None:
        context = await browser.new_context(viewport={"width": 1440, "height": 1800})
        page = await context.new_page()
        where = {"url": ""}
        page.on("console", lambda msg: self._console(number, where, msg))
        page.on("pageerror", lambda exc: self.result.errors.append(
            f"session {number} {where['url']}: page error {str(exc)[:200]}"))
        page.on("response", lambda r: self._response(number, r))
        page.on("requestfailed", lambda r: self._failed(number, r))
        visit = 0
        try:
            while True:
                name = PAGES[(number + visit) % len(PAGES)]
                where["url"] = f"{self.url}/{name}{_filters(number, visit)}"
                during = self.run_active
                began = time.monotonic()
                try:
                    await page.goto(where["url"], wait_until="domcontentloaded",
                                    timeout=PAGE_TIMEOUT_MS)
                    await page.wait_for_selector(RENDERED, timeout=PAGE_TIMEOUT_MS)
                    await page.wait_for_function(IDLE, timeout=PAGE_TIMEOUT_MS)
                    elapsed = time.monotonic() - began
                    if await page.locator('[data-testid="stException"]').count():
                        text = await page.locator('[data-testid="stException"]').first \
                            .inner_text()
                        self.result.errors.append(f"session {number} {where['url']}: "
                                                  f"exception {text[:200]!r}")
                    else:
                        self.result.times_s.append(elapsed)
                        if during or self.run_active:
                            self.result.times_during_run_s.append(elapsed)
                except Exception as exc:  # a timeout or a navigation failure is an error
                    self.result.errors.append(f"session {number} {where['url']}: "
                                              f"{type(exc).__name__} {str(exc)[:160]}")
                self.result.pages += 1
                if visit == 0:
                    self.first_pages += 1
                    if self.first_pages == self.sessions:
                        self.started.set()
                visit += 1
                if self.started.is_set() and self.run_done.is_set() and \
                        time.monotonic() >= stop_at[0]:
                    break
        finally:
            await context.close()

    def _console(self, number: int, where: dict[str, str], msg: Any) -> None:
        # "Failed to load resource" repeats a response or request failure counted below.
        if msg.type == "error" and not msg.text.startswith("Failed to load resource"):
            self.result.errors.append(f"session {number} {where['url']}: console "
                                      f"{msg.text[:200]}")

    def _response(self, number: int, response: Any) -> None:
        if response.status < 400:
            return
        if response.status == 404 and BASE_PATH_PROBE.search(response.url):
            # Opened on /<page>, Streamlit's front end first looks for its server under that
            # path, then at the root: expected, not an error (counted apart).
            self.result.base_path_probes += 1
            return
        self.result.errors.append(f"session {number}: HTTP {response.status} {response.url}")

    def _failed(self, number: int, request: Any) -> None:
        if request.failure == "net::ERR_ABORTED":
            # The session moved on to its next page while a lazy chunk of the last one was
            # still loading: the browser cancels it. Counted apart, not an error.
            self.result.aborted_by_navigation += 1
            return
        if not request.url.startswith(self.url):
            # This machine has no internet: a request to another host (none is needed to
            # render) fails to resolve; counted apart, listed by host.
            host = request.url.split("/")[2] if "//" in request.url else request.url
            self.result.external_failures[host] = self.result.external_failures.get(host, 0) + 1
            return
        self.result.errors.append(f"session {number}: request failed {request.url} "
                                  f"{request.failure}")

    async def pipeline_run(self, work: Path, day: date) -> None:
        await self.started.wait()
        next_day_landing(work, day)
        self.result.run_date = day.isoformat()
        base = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
        began = time.monotonic()
        self.run_active = True
        proc = await asyncio.create_subprocess_exec(
            *CLI, "run", "--date", day.isoformat(), cwd=work, env={**base, **environment(work)},
            stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
        output, _ = await proc.communicate()
        self.run_active = False
        self.result.run_exit = proc.returncode
        self.result.run_seconds = round(time.monotonic() - began, 1)
        self.result.run_output = output.decode(errors="replace").strip()[-500:]
        if proc.returncode != 0:
            self.result.errors.append(f"crm-analytics run --date {day}: exit {proc.returncode}: "
                                      f"{self.result.run_output[-300:]}")
        self.run_done.set()

    async def main(self, work: Path) -> LoadResult:
        from playwright.async_api import async_playwright

        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
            stop_at = [time.monotonic() + self.duration]
            began = time.monotonic()
            await asyncio.gather(
                self.pipeline_run(work, next_day(work)),
                *(self.session(browser, n, stop_at) for n in range(self.sessions)))
            self.result.duration_s = round(time.monotonic() - began, 1)
            await browser.close()
        return self.result


def run_load(work: Path, sessions: int, duration: float, days: int) -> LoadResult:
    build(work, days)
    server, url = serve(work)
    try:
        return asyncio.run(Load(url, sessions, duration).main(work))
    finally:
        server.terminate()
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=20)
    parser.add_argument("--duration", type=float, default=180.0,
                        help="seconds of load (at least until the pipeline run ends)")
    parser.add_argument("--days", type=int, default=45, help="days of generated history")
    parser.add_argument("--work", type=Path, help="folder for the ERP, events and warehouse")
    parser.add_argument("--json", type=Path, help="write the summary here as JSON")
    args = parser.parse_args()
    work = args.work or Path(tempfile.mkdtemp(prefix="crm_load_"))
    work.mkdir(parents=True, exist_ok=True)
    result = run_load(work.resolve(), args.sessions, args.duration, args.days)
    summary = result.summary()
    print(f"{result.sessions} sessions, {result.duration_s} s, {result.pages} page loads; "
          f"run --date {result.run_date}: exit {result.run_exit} in "
          f"{result.run_seconds} s")
    for name in ("all", "during_run"):
        s = summary[name]
        print(f"  page time ({name}): n={s['n']} p50={s['p50']} s p95={s['p95']} s "
              f"max={s['max']} s")
    print(f"  not errors: {result.base_path_probes} Streamlit base-path probes (404 on "
          f"/<page>/_stcore/...), {result.aborted_by_navigation} requests cancelled by the "
          f"next navigation, failed requests to other hosts: {result.external_failures}")
    print(f"  errors: {len(result.errors)}")
    for error in result.errors[:50]:
        print(f"    {error}")
    if args.json:
        args.json.write_text(json.dumps(summary, indent=2, default=str))
    return 1 if result.errors else 0


if __name__ == "__main__":
    sys.exit(main())
