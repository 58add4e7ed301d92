"""Style is part of the test run (`.ci/run` calls `make test`): ruff for Python, sqlfluff with
the dbt templater for every dbt model and singular test (`.sqlfluff`)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from tests.helpers.paths import REPO_ROOT


def _tool(name: str) -> str:
    path = Path(sys.executable).with_name(name)
    return str(path) if path.exists() else name


def test_python_passes_ruff() -> None:
    proc = subprocess.run([_tool("ruff"), "check", "."], cwd=REPO_ROOT, capture_output=True,
                          text=True, timeout=300, check=False)
    assert proc.returncode == 0, proc.stdout + proc.stderr


def test_dbt_sql_passes_sqlfluff(tmp_path: Path) -> None:
    # the dbt templater opens the DuckDB target while compiling: give it a scratch file
    env = {**os.environ, "CRM_DBT_TARGET": "duckdb",
           "CRM_DUCKDB_PATH": str(tmp_path / "sqlfluff.duckdb"),
           "DBT_LOG_PATH": str(tmp_path / "logs"), "DBT_SEND_ANONYMOUS_USAGE_STATS": "false"}
    proc = subprocess.run([_tool("sqlfluff"), "lint", "dbt_project", "--disable-progress-bar"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=900,
                          check=False, env=env)
    assert proc.returncode == 0, proc.stdout[-8000:] + proc.stderr[-2000:]
