"""Dagster's run storage on PostgreSQL: the documented `dagster.yaml` (the project's own
settings plus the commented example's storage block) loads, and a real run is recorded in the
PostgreSQL database it names."""

from __future__ import annotations

import psycopg
import pytest

from tests.helpers.paths import REPO_ROOT
from tests.helpers.postgres import pg_url

pytestmark = pytest.mark.postgres


def test_dagster_yaml_with_postgres_storage_records_runs(make_pg_database, tmp_path,
                                                         monkeypatch) -> None:
    from dagster import DagsterInstance, job, op

    db = make_pg_database("crm_dagster")
    home = REPO_ROOT / "dagster_home"
    (tmp_path / "dagster.yaml").write_text(
        (home / "dagster.yaml").read_text() + "\n"
        + (home / "dagster.postgres.yaml.example").read_text())
    monkeypatch.setenv("DAGSTER_PG_URL", pg_url(db, driver="postgresql+psycopg2"))

    @op
    def hello() -> int:
        return 1

    @job
    def tiny() -> None:
        hello()

    with DagsterInstance.from_config(str(tmp_path)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        assert type(instance.event_log_storage).__name__ == "PostgresEventLogStorage"
        result = tiny.execute_in_process(instance=instance)
        assert result.success
        run_id = result.run_id
    with psycopg.connect(pg_url(db, driver="postgresql")) as conn:
        stored = conn.execute("select status from runs where run_id = %s", [run_id]).fetchall()
    assert stored == [("SUCCESS",)]
