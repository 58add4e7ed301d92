"""The dbt project as Dagster sees it, and the environment dbt needs to reach the warehouse.

`profiles.yml` reads plain environment variables (so analysts can run dbt by hand); this module
derives them from the one settings object, so `CRM_WAREHOUSE_URL` stays the single source of
truth when the pipeline runs dbt.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

from dagster_dbt import DbtCliResource, DbtProject

from crm_core.errors import CrmError
from crm_core.settings import PROJECT_ROOT
from crm_core.spark import SPARK_TOKEN_ENV, session_submit_args
from crm_core.urls import WarehouseTarget

crm_dbt_project = DbtProject(project_dir=PROJECT_ROOT, profiles_dir=PROJECT_ROOT)

#: The dbt installed beside this Python (the venv may not be on PATH).
DBT_EXECUTABLE = str(Path(sys.executable).with_name("dbt")) \
    if Path(sys.executable).with_name("dbt").exists() else (shutil.which("dbt") or "dbt")


#: What the pipeline starts instead of dbt: a launcher that makes dbt die with the pipeline
#: process (`orchestration/dbt_child.py`), so a killed run never leaves dbt writing alone.
#: Where that cannot work (not Linux, or no `python3` for its shebang) dbt is started directly.
DBT_LAUNCHER = str(Path(__file__).with_name("dbt_child.py"))


def dbt_resource() -> DbtCliResource:
    usable = sys.platform.startswith("linux") and shutil.which("python3") is not None
    return DbtCliResource(project_dir=crm_dbt_project,
                          dbt_executable=DBT_LAUNCHER if usable else DBT_EXECUTABLE)


def dbt_environment(warehouse: WarehouseTarget, reporting_tz: str,
                    lake: str = "") -> dict[str, str]:
    """The variables `profiles.yml` and `dbt_project.yml` read, for this warehouse (`lake`:
    CRM_LAKE_PATH, read for Spark only).

    The PostgreSQL password and an HTTPS endpoint's token go in `DBT_ENV_SECRET_*`, which dbt
    scrubs from its logs."""
    env = {"CRM_REPORTING_TZ": reporting_tz, "CRM_DBT_REAL_EXECUTABLE": DBT_EXECUTABLE,
           "CRM_DBT_PARENT_PID": str(os.getpid())}
    if warehouse.is_duckdb:
        env |= {"CRM_DBT_TARGET": "duckdb", "CRM_DUCKDB_PATH": str(warehouse.duckdb_path)}
    elif warehouse.is_spark:
        env |= {"CRM_DBT_TARGET": "spark", "CRM_SPARK_METHOD": warehouse.spark_method,
                "CRM_SPARK_HOST": warehouse.host or "localhost",
                "CRM_SPARK_PORT": str(warehouse.port or 10000),
                "CRM_SPARK_USER": warehouse.user}
        if warehouse.spark_method == "session":
            env["PYSPARK_SUBMIT_ARGS"] = session_submit_args(lake)
        elif warehouse.spark_method == "http":
            organization, cluster = warehouse.spark_cluster
            env |= {"CRM_SPARK_ORGANIZATION": organization, "CRM_SPARK_CLUSTER": cluster,
                    SPARK_TOKEN_ENV: warehouse.password}
    else:
        env |= {
            "CRM_DBT_TARGET": "postgres",
            "CRM_PG_HOST": warehouse.host,
            "CRM_PG_PORT": str(warehouse.port),
            "CRM_PG_USER": warehouse.user,
            "CRM_PG_DBNAME": warehouse.dbname,
            "DBT_ENV_SECRET_CRM_PG_PASSWORD": warehouse.password,
        }
    return env


def _dbt_sources_mtime() -> float:
    paths = [PROJECT_ROOT / "dbt_project.yml", PROJECT_ROOT / "profiles.yml"]
    paths += [p for p in (PROJECT_ROOT / "dbt_project").rglob("*") if p.is_file()]
    return max(p.stat().st_mtime for p in paths if p.exists())


def ensure_manifest() -> Path:
    """Parse the dbt project when its manifest is missing or older than the project files.

    Dagster needs `manifest.json` to build the asset graph. A fresh clone has none; parsing
    takes a few seconds, so it only happens when something changed. The parse writes into a
    folder of its own and the manifest is moved into place in one step, so two runs starting
    at once (a schedule and a sensor) never read a half-written one."""
    manifest = crm_dbt_project.manifest_path
    if manifest.exists() and manifest.stat().st_mtime >= _dbt_sources_mtime():
        return manifest
    manifest.parent.mkdir(parents=True, exist_ok=True)
    scratch = Path(tempfile.mkdtemp(prefix="parse-", dir=manifest.parent))
    try:
        # Parsing needs a resolvable profile but no connection: the DuckDB target is enough.
        env = {"CRM_DBT_TARGET": "duckdb", **os.environ}
        proc = subprocess.run(
            [DBT_EXECUTABLE, "parse", "--quiet", "--profiles-dir", str(PROJECT_ROOT),
             "--project-dir", str(PROJECT_ROOT), "--target-path", str(scratch)],
            cwd=PROJECT_ROOT, env=env, capture_output=True, text=True, check=False,
        )
        parsed = scratch / "manifest.json"
        if proc.returncode != 0 or not parsed.exists():
            lines = [ln for ln in (proc.stdout + proc.stderr).splitlines() if ln.strip()]
            raise CrmError(f"dbt project does not parse: {lines[-1] if lines else 'no output'}")
        os.replace(parsed, manifest)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return manifest
