"""Running the real `crm-analytics` command in a test, and checking its one-line errors."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "orchestration.cli"]


def run_cli(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """The real command in `cwd` with a clean CRM_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
    return subprocess.run(CLI + args, cwd=cwd, env={**base, **env}, capture_output=True,
                          text=True, timeout=600, check=False)


def one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    """The single `error: ...` line of a failed command, holding every fragment; no
    traceback, no `unexpected` (an error nobody anticipated)."""
    assert proc.returncode != 0, proc.stdout
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    line = lines[0]
    assert line.startswith("error: ") and "unexpected" not in line, line
    assert "Traceback" not in proc.stdout + proc.stderr
    for fragment in fragments:
        assert fragment in line, line
    return line
