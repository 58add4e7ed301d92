"""The dashboards' server under load, over Streamlit's own protocol: no browser, no rendering.

    .venv/bin/python benchmarks/bench_dashboard_protocol.py --warehouse DIR [--workers N]
        [--sessions 1,10,20,50] [--rounds 2] [--json OUT]
    .venv/bin/python benchmarks/bench_dashboard_protocol.py --url http://127.0.0.1:8501 ...

With `--warehouse DIR` (a folder holding `wh.duckdb` and its serving copy) the script serves
`crm-analytics dashboard --port <free> [--workers N]` over it (read-only: the dashboards open
only the serving copy, read-only) and stops it at the end; with `--url` it loads a server that
is already running.

Each session is what one browser tab sends, taken from Streamlit's front end
(`sendRerunBackMsg` in its bundle) and server (`web/server/starlette/starlette_websocket.py`):

1. *open*: `GET /` (the page a browser loads first; a proxy's sticky cookie comes with it), then
   the websocket `/_stcore/stream` (subprotocol `streamlit`, the cookies), then a `BackMsg`
   `rerun_script` with the URL's query string (the page's filters: none, a business, a date
   range or both), `page_name` from the URL path and `page_script_hash` empty, no widget states
   and the browser's `context_info` (time zone, locale, URL);
2. *filter*: the Business multiselect changed, as a click does: `rerun_script` with the current
   page's hash and that widget's state (`string_array_value`, the option as shown), the widget
   id taken from the page's own `Delta`;
3. *navigate*: every other page in turn, as the sidebar's links do: `rerun_script` with that
   page's `page_script_hash` (from the `Navigation` message) and the query string cleared.

Every rerun is timed from sending the `BackMsg` to the `ForwardMsg` `script_finished` (the
server's script run, its queueing and the messages it sends; no rendering). Errors: an
`exception` element in a `Delta`, a `script_finished` other than success, a compilation
exception, `page_not_found`, a closed socket, or no `script_finished` within `--timeout`
seconds. `--rounds` repeats the whole visit (a new connection each time) per session; all
sessions of a level start together (a sales meeting opening the same link at once). The
links are the team's shared ones (four: no filter, a business, the last 30 days, both; the
business varies); `--date-ranges 60` gives nearly every session a date range of its own, so
that every open misses the shared cache. Sessions click the moment a page has finished unless
`--think S` makes them pause first (uniformly 0 to 2·S seconds, as a person reading the page;
the pause is not part of any timing).

Before the levels, one session visits every page once, untimed (imports and caches warm); then
each level of `--sessions` runs in turn. With `--during-run` (and `--warehouse`), each level
also starts `crm-analytics run --date <next day>` on the warehouse folder as its sessions
start (the folder's ERP source and landing folders, as `bench_dashboards.py` builds them; the
day's events are the day before's again, new ids) and keeps visiting, round after round, until
that run has finished: the figures are then those of the script runs that started while it
ran, and the run's exit and seconds are reported.

Prints one table row per level (page-run p50 / p95 / max, per kind and overall, errors) with
the load average and, when this script started the server, the CPU its processes used per
script run (a figure other load on the machine barely moves, unlike the seconds); `--json`
writes it all.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict, dataclass, field
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import websockets

# the page-time summary the browser benchmark reports, so both report alike (this folder is
# on sys.path when a benchmark runs as a script)
from bench_dashboard_load import _stats as stats
from bench_dashboard_load import next_day, next_day_landing
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

REPO = Path(__file__).resolve().parents[1]
CLI = [sys.executable, "-m", "crm_cli.cli"]
AS_OF = date(2026, 11, 1)
#: The page a session opens by its URL ("" is the default page, Overview).
FIRST_PAGE = ""


@dataclass
class Step:
    """One script run the load asked for."""

    session: int
    kind: str  # open | filter | navigate
    page: str
    seconds: float | None = None
    #: With --during-run: whether the pipeline run was going when this script run started.
    during_run: bool = False
    error: str | None = None
    #: The query string the run left in the URL (the page's filters, as the server wrote them).
    query: str = ""
    #: The Business filter's options on the page: the businesses the viewer may see.
    businesses: list[str] = field(default_factory=list)


@dataclass
class Level:
    sessions: int
    rounds: int
    wall_s: float = 0.0
    load_before: tuple[float, float, float] = (0.0, 0.0, 0.0)
    load_after: tuple[float, float, float] = (0.0, 0.0, 0.0)
    connect_s: list[float] = field(default_factory=list)
    steps: list[Step] = field(default_factory=list)
    #: With --during-run: the pipeline run's day, exit status and seconds.
    run: dict[str, Any] = field(default_factory=dict)
    #: CPU seconds the served processes (Streamlit workers, proxy) used over the level, when
    #: this script started them: a figure the machine's other load barely moves.
    server_cpu_s: float | None = None

    @property
    def errors(self) -> list[str]:
        return [f"session {s.session} {s.kind} {s.page or 'overview'}: {s.error}"
                for s in self.steps if s.error]

    def summary(self) -> dict[str, Any]:
        times = [s.seconds for s in self.steps if s.seconds is not None and not s.error]
        out: dict[str, Any] = {
            "sessions": self.sessions, "rounds": self.rounds, "wall_s": round(self.wall_s, 2),
            "run": self.run,
            "load_before": self.load_before, "load_after": self.load_after,
            "page_runs": len(self.steps), "errors": self.errors, "all": stats(times),
            "connect": stats(self.connect_s),
            "server_cpu_s": self.server_cpu_s,
            "server_cpu_ms_per_run": (round(1000 * self.server_cpu_s / len(self.steps), 1)
                                      if self.server_cpu_s is not None and self.steps
                                      else None),
        }
        for kind in ("open", "filter", "navigate"):
            out[kind] = stats([s.seconds for s in self.steps if s.kind == kind
                               and s.seconds is not None and not s.error])
        pages = sorted({s.page for s in self.steps})
        out["pages"] = {page or "overview": stats([s.seconds for s in self.steps
                                                   if s.page == page and s.seconds is not None
                                                   and not s.error]) for page in pages}
        return out


#: How many different date ranges the sessions' links carry (`--date-ranges`): 1 is a team
#: sharing links (the last 30 days), 60 gives nearly every session its own range.
DATE_RANGES = 1


#: Mean seconds a session waits after a page before its next action (`--think`): 0 is a
#: session that clicks the moment a page has finished; a person reads the page first.
THINK_S = 0.0


async def think(rng: random.Random) -> None:
    """A person reading the page: a pause drawn uniformly from 0 to twice `THINK_S`."""
    if THINK_S > 0:
        await asyncio.sleep(rng.uniform(0, 2 * THINK_S))


def url_filters(session: int, round_: int) -> str:
    """The filters in a session's link, in turn: none, a business, a date range, or both."""
    kind = (session + round_) % 4
    business = f"business={1 + (session + round_) % 3}"
    start = AS_OF - timedelta(days=30 + (session % DATE_RANGES))
    dates = f"from={start.isoformat()}&to={AS_OF.isoformat()}"
    return ["", business, dates, f"{business}&{dates}"][kind]


class PageError(Exception):
    """A script run that failed, as the protocol tells it."""


class Tab:
    """One browser tab's session: a websocket and what the server has told it so far."""

    def __init__(self, base: str, timeout: float, headers: dict[str, str]) -> None:
        self.base, self.timeout, self.headers = base.rstrip("/"), timeout, headers
        self.ws: Any = None
        self.pages: dict[str, str] = {}  # url path -> page_script_hash
        self.current_hash = ""
        self.query = ""
        self.widgets: dict[str, Any] = {}  # multiselect label -> its proto (this page's run)

    async def connect(self) -> None:
        cookies = await asyncio.to_thread(self._get_root)
        ws_url = "ws" + self.base.removeprefix("http") + "/_stcore/stream"
        headers = {**self.headers, **({"Cookie": cookies} if cookies else {})}
        # No keepalive pings: a browser sends none, and a busy server would be cut off by
        # the client library's 20 s pong limit where a browser just waits.
        self.ws = await websockets.connect(ws_url, subprotocols=["streamlit"],
                                           additional_headers=headers, max_size=None,
                                           open_timeout=self.timeout, ping_interval=None)

    def _get_root(self) -> str:
        """The HTML page, as a browser loads it first; its cookies (a proxy's sticky one)."""
        request = urllib.request.Request(self.base + "/", headers=self.headers)
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            response.read()
            set_cookies = response.headers.get_all("Set-Cookie") or []
        return "; ".join(c.split(";", 1)[0] for c in set_cookies)

    def businesses(self) -> list[str]:
        widget = self.widgets.get("Business")
        return list(widget.options) if widget is not None else []

    async def close(self) -> None:
        if self.ws is not None:
            await self.ws.close()

    def _context(self, path: str, query: str) -> Any:
        msg = BackMsg()
        info = msg.rerun_script.context_info
        info.timezone, info.timezone_offset, info.locale = "UTC", 0, "en-US"
        info.url = f"{self.base}/{path}" + (f"?{query}" if query else "")
        info.is_embedded, info.color_scheme = False, "light"
        return msg

    async def open(self, path: str, query: str) -> float:
        """The first run of a page opened by its URL."""
        self.query = query
        msg = self._context(path, query)
        msg.rerun_script.query_string = query
        msg.rerun_script.page_name = path
        msg.rerun_script.page_script_hash = ""
        return await self._run(msg)

    async def navigate(self, path: str) -> float:
        """A sidebar link: that page's hash, the query string cleared."""
        msg = self._context(path, "")
        self.query = ""
        msg.rerun_script.page_script_hash = self.pages[path]
        return await self._run(msg)

    async def change_business(self, pick: bool) -> float:
        """Pick the first business in the filter (`pick`), or clear the filter."""
        widget = self.widgets.get("Business")
        if widget is None:
            raise PageError("no Business filter on the page")
        msg = self._context("", self.query)
        msg.rerun_script.query_string = self.query
        msg.rerun_script.page_script_hash = self.current_hash
        state = msg.rerun_script.widget_states.widgets.add()
        state.id = widget.id
        chosen = list(widget.options[:1]) if pick else []
        state.string_array_value.data.extend(chosen)
        return await self._run(msg)

    async def _run(self, msg: Any) -> float:
        self.widgets = {}
        began = time.perf_counter()
        await self.ws.send(msg.SerializeToString())
        deadline = began + self.timeout
        while True:
            left = deadline - time.perf_counter()
            if left <= 0:
                raise PageError(f"no script_finished within {self.timeout:.0f} s")
            try:
                raw = await asyncio.wait_for(self.ws.recv(), timeout=left)
            except TimeoutError:
                raise PageError(f"no script_finished within {self.timeout:.0f} s") from None
            fwd = ForwardMsg()
            fwd.ParseFromString(raw)
            kind = fwd.WhichOneof("type")
            if kind == "script_finished":
                elapsed = time.perf_counter() - began
                if fwd.script_finished != ForwardMsg.FINISHED_SUCCESSFULLY:
                    raise PageError(f"script_finished status {fwd.script_finished}")
                return elapsed
            self._read(fwd, kind)

    def _read(self, fwd: Any, kind: str | None) -> None:
        if kind == "page_info_changed":
            self.query = fwd.page_info_changed.query_string
        elif kind == "navigation":
            self.pages = {p.url_pathname: p.page_script_hash for p in fwd.navigation.app_pages}
            self.current_hash = fwd.navigation.page_script_hash
        elif kind == "new_session":
            self.current_hash = fwd.new_session.page_script_hash or self.current_hash
        elif kind == "page_not_found":
            raise PageError(f"page not found: {fwd.page_not_found.page_name!r}")
        elif kind == "session_event" and \
                fwd.session_event.WhichOneof("type") == "script_compilation_exception":
            raise PageError("script compilation exception")
        elif kind == "delta" and fwd.delta.WhichOneof("type") == "new_element":
            element = fwd.delta.new_element
            which = element.WhichOneof("type")
            if which == "exception":
                raise PageError(f"exception {element.exception.type}: "
                                f"{element.exception.message[:200]}")
            if which == "multiselect":
                self.widgets[element.multiselect.label] = element.multiselect


async def visit(base: str, number: int, round_: int, timeout: float, level: Level,
                headers: dict[str, str], running: asyncio.Task[None] | None = None) -> None:
    """One session's visit: open the first page by a link with filters, change the business
    filter, then walk every other page."""
    tab = Tab(base, timeout, headers)

    def new_step(kind: str, page: str) -> Step:
        return Step(number, kind, page, during_run=running is not None and not running.done())

    step = new_step("open", FIRST_PAGE)
    try:
        began = time.perf_counter()
        await tab.connect()
        level.connect_s.append(time.perf_counter() - began)
        query = url_filters(number, round_)
        step.seconds = await tab.open(FIRST_PAGE, query)
        step.query = tab.query
        step.businesses = tab.businesses()
        level.steps.append(step)
        rng = random.Random(number * 1000 + round_)
        await think(rng)
        step = new_step("filter", FIRST_PAGE)
        step.seconds = await tab.change_business(pick="business=" not in query)
        step.query = tab.query
        step.businesses = tab.businesses()
        level.steps.append(step)
        others = [p for p in tab.pages if p != FIRST_PAGE]
        if not others:
            raise PageError("the server listed no pages to navigate to")
        for path in others:
            await think(rng)
            step = new_step("navigate", path)
            step.seconds = await tab.navigate(path)
            step.query = tab.query
            step.businesses = tab.businesses()
            level.steps.append(step)
    except (PageError, OSError, websockets.WebSocketException) as exc:
        step.error = f"{type(exc).__name__}: {exc}" if not isinstance(exc, PageError) \
            else str(exc)
        level.steps.append(step)
    finally:
        await tab.close()


async def run_level(base: str, sessions: int, rounds: int, timeout: float,
                    headers: dict[str, str], during_run: Path | None = None,
                    server: int | None = None) -> Level:
    level = Level(sessions, rounds, load_before=os.getloadavg())
    cpu_before = tree_cpu_seconds(server) if server is not None else None
    began = time.perf_counter()
    running: asyncio.Task[None] | None = None
    if during_run is not None:
        running = asyncio.create_task(pipeline_run(during_run, level))
        await asyncio.sleep(0)  # the run's process starts before the sessions
    round_ = 0
    while round_ < rounds or (running is not None and not running.done()):
        await asyncio.gather(*(visit(base, n, round_, timeout, level, headers,
                                     running) for n in range(sessions)))
        round_ += 1
    if running is not None:
        await running
        level.steps = [s for s in level.steps if s.during_run]
    level.rounds = round_
    level.wall_s = time.perf_counter() - began
    if server is not None and cpu_before is not None:
        level.server_cpu_s = round(tree_cpu_seconds(server) - cpu_before, 2)
    level.load_after = os.getloadavg()
    return level


async def pipeline_run(warehouse: Path, level: Level) -> None:
    """`crm-analytics run` of the next day on the served warehouse's own folder."""
    from bench_dashboards import _env

    day = next_day(warehouse)
    next_day_landing(warehouse, day)
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    began = time.perf_counter()
    proc = await asyncio.create_subprocess_exec(
        *CLI, "run", "--date", day.isoformat(), cwd=REPO,
        env={**env, **_env(warehouse.resolve())},
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    output, _ = await proc.communicate()
    level.run = {"date": day.isoformat(), "exit": proc.returncode,
                 "seconds": round(time.perf_counter() - began, 1),
                 "output": output.decode(errors="replace").strip()[-300:]}


# --------------------------------------------------------------------------------------------
# Serving a warehouse folder


def tree_cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of a process and every live descendant (Linux /proc)."""
    children: dict[int, list[int]] = {}
    cpu: dict[int, float] = {}
    tick = os.sysconf("SC_CLK_TCK")
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue  # the process ended
        children.setdefault(int(fields[1]), []).append(int(entry.name))
        cpu[int(entry.name)] = (int(fields[11]) + int(fields[12])) / tick
    total, todo = 0.0, [pid]
    while todo:
        current = todo.pop()
        total += cpu.get(current, 0.0)
        todo += children.get(current, [])
    return total


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def serve(warehouse: Path, workers: int) -> tuple[subprocess.Popen[bytes], str, Path]:
    """`crm-analytics dashboard` over `warehouse/wh.duckdb`, from a scratch working folder."""
    port = _free_port()
    cwd = Path(tempfile.mkdtemp(prefix="bench_protocol_"))
    env = {k: v for k, v in os.environ.items() if not k.startswith("CRM_")}
    env.update({"CRM_WAREHOUSE_URL": f"duckdb:///{warehouse.resolve()}/wh.duckdb",
                "CRM_AUTH": "none", "CRM_REPORTING_TZ": "UTC"})
    argv = CLI + ["dashboard", "--port", str(port)]
    if workers > 1:
        argv += ["--workers", str(workers)]
    log = (cwd / "server.log").open("wb")
    proc = subprocess.Popen(argv, cwd=cwd, env=env, stdout=log, stderr=subprocess.STDOUT,
                            start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as response:
                if response.status == 200:
                    return proc, url, cwd
        except OSError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            stop(proc)
            raise SystemExit("dashboard did not come up: "
                             + (cwd / "server.log").read_text()[-2000:])
        time.sleep(0.3)


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


# --------------------------------------------------------------------------------------------


def _cell(s: dict[str, Any]) -> str:
    if not s["n"]:
        return "–"
    return f"{s['p50']:.2f} / {s['p95']:.2f}"


def report(levels: list[Level], label: str) -> str:
    lines = [f"| {label} sessions | page runs | all p50 / p95 (s) | max | open | filter | "
             "navigate | connect | server CPU ms / run | errors | "
             "load avg (1 min) before → after |",
             "|---|---|---|---|---|---|---|---|---|---|---|"]
    for level in levels:
        s = level.summary()
        lines.append(
            f"| {level.sessions} | {s['page_runs']} | {_cell(s['all'])} | "
            f"{s['all']['max'] if s['all']['max'] is not None else '–'} | {_cell(s['open'])} | "
            f"{_cell(s['filter'])} | {_cell(s['navigate'])} | {_cell(s['connect'])} | "
            f"{s['server_cpu_ms_per_run'] if s['server_cpu_ms_per_run'] is not None else '–'} | "
            f"{len(s['errors'])} | {level.load_before[0]:.1f} → {level.load_after[0]:.1f} |")
    return "\n".join(lines)


async def main_async(args: argparse.Namespace, base: str,
                     server: int | None = None) -> list[Level]:
    warm = await run_level(base, 1, 1, args.timeout, args.header)
    if warm.errors:
        print("warm-up errors:", *warm.errors[:5], sep="\n  ", flush=True)
    levels = []
    for sessions in args.sessions:
        level = await run_level(base, sessions, args.rounds, args.timeout, args.header,
                                args.warehouse if args.during_run else None, server)
        s = level.summary()
        run = (f", during run --date {level.run['date']} (exit {level.run['exit']}, "
               f"{level.run['seconds']} s)" if level.run else "")
        print(f"{sessions} sessions: {s['page_runs']} page runs, all {_cell(s['all'])} s, "
              f"errors {len(s['errors'])}, load {level.load_after[0]:.1f}{run}", flush=True)
        levels.append(level)
    return levels


def main() -> int:
    global DATE_RANGES, THINK_S  # read by every session
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    where = parser.add_mutually_exclusive_group(required=True)
    where.add_argument("--url", help="a running dashboard server, e.g. http://127.0.0.1:8501")
    where.add_argument("--warehouse", type=Path, help="a folder with wh.duckdb to serve")
    parser.add_argument("--workers", type=int, default=1,
                        help="with --warehouse: `crm-analytics dashboard --workers N`")
    parser.add_argument("--sessions", default="1,10,20,50",
                        help="comma-separated session counts, one level each")
    parser.add_argument("--rounds", type=int, default=2, help="visits per session and level")
    parser.add_argument("--timeout", type=float, default=120.0,
                        help="seconds a script run may take before it counts as an error")
    parser.add_argument("--header", action="append", default=[], metavar="NAME=VALUE",
                        help="an HTTP header every session sends (e.g. the trusted proxy's "
                             "X-Forwarded-Email with CRM_AUTH=header); repeatable")
    parser.add_argument("--date-ranges", type=int, default=DATE_RANGES,
                        help="different date ranges among the links (1: shared links, the "
                             "last 30 days; 60: nearly every session its own, every open a "
                             "cache miss)")
    parser.add_argument("--think", type=float, default=THINK_S, metavar="SECONDS",
                        help="mean pause after each page before the session's next action "
                             "(uniform from 0 to twice it; 0: click at once)")
    parser.add_argument("--during-run", action="store_true",
                        help="with --warehouse: each level runs while `crm-analytics run` "
                             "loads the next day into that warehouse")
    parser.add_argument("--label", default="", help="a name for this run in the table")
    parser.add_argument("--json", type=Path, help="write the figures here as JSON")
    args = parser.parse_args()
    args.sessions = [int(n) for n in args.sessions.split(",") if n.strip()]
    args.header = dict(h.split("=", 1) for h in args.header if "=" in h)
    DATE_RANGES, THINK_S = max(1, args.date_ranges), max(0.0, args.think)
    if args.during_run and not args.warehouse:
        parser.error("--during-run needs --warehouse (the folder the run loads)")

    proc = None
    if args.warehouse:
        proc, base, _ = serve(args.warehouse, args.workers)
    else:
        base = args.url
    try:
        levels = asyncio.run(main_async(args, base, proc.pid if proc is not None else None))
    finally:
        if proc is not None:
            stop(proc)
    print()
    print(report(levels, args.label or f"workers={args.workers}"))
    errors = [e for level in levels for e in level.errors]
    errors += [f"crm-analytics run --date {level.run['date']}: exit {level.run['exit']}: "
               f"{level.run['output']}" for level in levels if level.run.get("exit")]
    for error in errors[:20]:
        print(f"error: {error}")
    if args.json:
        args.json.write_text(json.dumps({
            "url": base, "workers": args.workers, "cpus": os.cpu_count(),
            "levels": [level.summary() for level in levels],
            "steps": [[asdict(s) for s in level.steps] for level in levels],
        }, indent=1, default=str))
    return 1 if errors else 0


if __name__ == "__main__":
    sys.exit(main())
