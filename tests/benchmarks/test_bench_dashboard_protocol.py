"""`benchmarks/bench_dashboard_protocol.py`, the load generator that speaks Streamlit's
websocket protocol, against a real `crm-analytics dashboard` over the pipeline-built test
warehouse: at 1 and 2 sessions every page of the app runs to `script_finished` with no
exception, the filters a session sends (in the link, then as a widget state) reach the page,
and each session walks every page. Timing is never asserted."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.helpers.dashboard import DashboardWarehouse
from tests.helpers.paths import REPO_ROOT

SCRIPT = REPO_ROOT / "benchmarks" / "bench_dashboard_protocol.py"
PAGES = {"", "pipeline", "forecast", "team", "leads", "campaigns", "customers"}


def test_every_page_finishes_without_an_exception(dashboard_warehouse: DashboardWarehouse,
                                                   tmp_path: Path) -> None:
    out = tmp_path / "protocol.json"
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--warehouse", str(dashboard_warehouse.work),
         "--sessions", "1,2", "--rounds", "1", "--json", str(out)],
        capture_output=True, text=True, timeout=900, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr
    result = json.loads(out.read_text())
    assert [level["sessions"] for level in result["levels"]] == [1, 2]
    for level, steps in zip(result["levels"], result["steps"], strict=True):
        assert level["errors"] == []
        # Per session: the link, the filter change, and one navigation to each other page.
        assert level["page_runs"] == level["sessions"] * (len(PAGES) + 1)
        assert all(step["seconds"] is not None and step["error"] is None for step in steps)
        for session in range(level["sessions"]):
            mine = [s for s in steps if s["session"] == session]
            assert {s["page"] for s in mine} == PAGES
            opened, changed = mine[0], mine[1]
            assert (opened["kind"], changed["kind"]) == ("open", "filter")
            # The link's filters came through, and the widget change flipped the business.
            had_business = "business=" in opened["query"]
            assert ("business=" in changed["query"]) != had_business
    # Session 1's link carries business 2: the page kept it in its URL.
    two = result["steps"][1]
    opened = next(s for s in two if s["session"] == 1 and s["kind"] == "open")
    assert "business=2" in opened["query"]


def test_a_server_that_is_not_there_is_one_error_line(tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, str(SCRIPT), "--url", "http://127.0.0.1:9", "--sessions", "1",
         "--rounds", "1", "--timeout", "5"],
        capture_output=True, text=True, timeout=120, check=False)
    assert proc.returncode == 1
    assert "error: session 0 open overview: " in proc.stdout
    assert "Traceback" not in proc.stderr
