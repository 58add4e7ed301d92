"""The real `crm-analytics` as a child process, and the one-line error every failure must be."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

CLI = [sys.executable, "-m", "crm_cli.cli"]


PASSWORD = "Sup3r-s3cret-pw"


def crm(args: list[str], cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """Run the real command in `cwd` with a clean CRM_* environment plus `env`."""
    base = {k: v for k, v in os.environ.items() if not k.startswith(("CRM_", "DBT_ENV_"))}
    return subprocess.run(CLI + args, cwd=cwd, env={**base, **env}, capture_output=True,
                          text=True, timeout=300, check=False)


def assert_one_line_error(proc: subprocess.CompletedProcess[str], *fragments: str) -> str:
    assert proc.returncode != 0
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, proc.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], lines[0]
    assert PASSWORD not in proc.stdout + proc.stderr
    assert "Traceback" not in proc.stdout + proc.stderr
    return lines[0]
