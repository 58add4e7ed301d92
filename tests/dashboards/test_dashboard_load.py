"""The dashboards under load (RELIABILITY.md), a shorter version of
`benchmarks/bench_dashboard_load.py`: 20 concurrent chromium sessions cycling through the five
pages with filters while `crm-analytics run` loads the next day. Asserts no error of any kind
(page exceptions, HTTP errors, console errors, timeouts, the run's exit) and that every session
kept rendering pages during the run; timing is recorded in BENCHMARKS.md, never asserted.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.helpers.dashboard import _require_browser
from tests.helpers.paths import REPO_ROOT

pytestmark = [pytest.mark.soak, pytest.mark.browser]

SESSIONS = 20


def test_twenty_sessions_while_the_pipeline_runs_a_day(tmp_path: Path) -> None:
    _require_browser()
    out = tmp_path / "load.json"
    proc = subprocess.run(
        [sys.executable, str(REPO_ROOT / "benchmarks" / "bench_dashboard_load.py"),
         "--sessions", str(SESSIONS), "--duration", "60", "--days", "20",
         "--work", str(tmp_path / "work"), "--json", str(out)],
        capture_output=True, text=True, timeout=3600, check=False)
    assert out.exists(), proc.stdout + proc.stderr
    summary = json.loads(out.read_text())
    assert summary["errors"] == [], proc.stdout
    assert summary["run_exit"] == 0, summary["run_output"]
    assert proc.returncode == 0, proc.stdout + proc.stderr
    # Every session rendered its first page before the run started, and pages kept rendering
    # while it ran.
    assert summary["pages"] >= SESSIONS
    assert summary["during_run"]["n"] >= SESSIONS
