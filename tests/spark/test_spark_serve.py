"""`crm-analytics demo` and `crm-analytics serve` on an in-process Spark, as on DuckDB.

The demo generates its small world, runs the pipeline on `spark+session://` and prints the
same headline numbers as the demo on DuckDB from the same generated data. Then `serve` starts
the Dagster UI and daemon on the Spark run's instance (beside the staging file), and the daemon
evaluates the landing sensor on its own and launches a run on Spark that succeeds, recorded
there like the command line's.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from dagster import DagsterInstance

from tests.helpers.cli import crm_script, dagster_served, landing_sensor_run
from tests.helpers.spark import require_spark

pytestmark = [pytest.mark.slow, pytest.mark.spark, pytest.mark.spark_full]


def _headlines(stdout: str) -> list[str]:
    """The demo's headline lines (indented label and value)."""
    return [line for line in stdout.splitlines() if line.startswith("  ")]


def test_the_demo_and_the_dagster_daemon_drive_a_spark_warehouse(tmp_path: Path) -> None:
    require_spark()
    duck, spark = tmp_path / "duck", tmp_path / "spark"
    duck.mkdir()
    spark.mkdir()
    on_spark = {"CRM_WAREHOUSE_URL": "spark+session://", "CRM_LAKE_PATH": str(spark / "lake")}

    reference = crm_script(["demo"], duck, timeout=1800)
    assert reference.returncode == 0, reference.stdout[-3000:] + reference.stderr[-3000:]
    demo = crm_script(["demo"], spark, timeout=1800, **on_spark)
    assert demo.returncode == 0, demo.stdout[-3000:] + demo.stderr[-3000:]
    assert "Open pipeline" in demo.stdout
    assert _headlines(demo.stdout) and _headlines(demo.stdout) == _headlines(reference.stdout)

    home = spark / "data" / "dagster_home"  # beside the staging file
    with dagster_served(spark, on_spark) as (port, log):
        assert str(home) in log.read_text().partition("\n")[0]
        instance = DagsterInstance.from_config(str(home))
        try:
            landing_sensor_run(instance, 1800)
            assert len(instance.get_runs()) == 2  # the demo's run and the sensor's
        finally:
            instance.dispose()
