"""One persistent Dagster instance records every run, read back through Dagster's own Python
API (`DagsterInstance.get()` on the home): the command line's run with its materializations
and check results, a run launched from a schedule tick, and the landing sensor's run launched
by the daemon under `crm-analytics serve`."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from dagster import (
    AssetKey,
    DagsterEventType,
    DagsterInstance,
    DagsterRunStatus,
    DefaultScheduleStatus,
    DefaultSensorStatus,
    RunsFilter,
    build_schedule_context,
    job,
    op,
)

from crm_core.settings import Settings
from ingestion.erp.schema import SOURCE_TABLES
from orchestration.instance import LAUNCHED_BY_TAG, dagster_home_path, fail_orphaned_cli_runs
from tests.helpers.cli import RunWorld, dagster_served, landing_sensor_run, listening_addresses

pytestmark = pytest.mark.slow


@pytest.fixture
def instance_of(monkeypatch: pytest.MonkeyPatch):
    """`DagsterInstance.get()` with DAGSTER_HOME pointed at a home, as a user's script does."""
    opened: list[DagsterInstance] = []

    def _open(home: Path) -> DagsterInstance:
        monkeypatch.setenv("DAGSTER_HOME", str(home))
        opened.append(DagsterInstance.get())
        return opened[-1]

    yield _open
    for instance in opened:
        instance.dispose()


def _landing_dates(world: RunWorld) -> set[str]:
    events = world.data / "landing" / "events"
    return {p.name for p in events.iterdir() if p.is_dir() and any(p.glob("*.jsonl*"))}


def test_a_cli_run_is_recorded_with_materializations_and_check_results(
        run_world: RunWorld, instance_of) -> None:
    assert (run_world.dagster_home / "dagster.yaml").is_file()  # beside the warehouse file
    instance = instance_of(run_world.dagster_home)
    run = instance.get_runs(RunsFilter(tags={LAUNCHED_BY_TAG: "cli"}))[-1]  # the first one
    assert run.status == DagsterRunStatus.SUCCESS
    assert run.job_name == "crm_pipeline"
    assert run.tags["crm/as_of_date"] == run_world.as_of

    materialized = {e.dagster_event.asset_key for e in instance.all_logs(
        run.run_id, of_type=DagsterEventType.ASSET_MATERIALIZATION)}
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    # Every ERP table, every event table and every mart of the graph was materialized by it.
    expected = {AssetKey(["raw", t]) for t in SOURCE_TABLES}
    expected |= {AssetKey(["raw", t]) for t in ("campaign_events", "rejected_events",
                                                "event_files")}
    expected |= {k for k in graph.get_all_asset_keys() if k.path[0] == "marts"}
    assert expected <= materialized, expected - materialized
    # The event asset's landing-date partitions are the folders that were loaded.
    partitions = instance.get_materialized_partitions(AssetKey(["raw", "campaign_events"]))
    assert _landing_dates(run_world) <= set(partitions)
    assert max(partitions) == run_world.as_of

    evaluations = instance.all_logs(run.run_id, of_type=DagsterEventType.ASSET_CHECK_EVALUATION)
    checks = {e.dagster_event.event_specific_data.check_name for e in evaluations}
    assert {"reject_rate", "landing_freshness"} <= checks
    # One evaluation for each check the graph declares (our two and every dbt data test).
    assert len(evaluations) == len(graph.asset_check_keys)


def test_the_home_is_dagster_home_when_set_else_beside_the_warehouse(tmp_path: Path) -> None:
    duck_url = {"CRM_WAREHOUSE_URL": "duckdb:///wh/w.duckdb"}
    duck = Settings.from_env(environ=duck_url, cwd=tmp_path)
    assert dagster_home_path(duck, cwd=tmp_path) == tmp_path / "wh" / "dagster_home"
    elsewhere = Settings.from_env(environ={**duck_url, "DAGSTER_HOME": "elsewhere"}, cwd=tmp_path)
    assert dagster_home_path(elsewhere, cwd=tmp_path) == tmp_path / "elsewhere"
    pg = Settings.from_env(environ={"CRM_WAREHOUSE_URL": "postgresql://u@h/db"}, cwd=tmp_path)
    assert dagster_home_path(pg, cwd=tmp_path) == tmp_path / "data" / "dagster_home"
    # ./.env holds it like the other settings; the environment wins
    (tmp_path / ".env").write_text("DAGSTER_HOME=from_dotenv\n")
    assert dagster_home_path(Settings.from_env(environ=duck_url, cwd=tmp_path)) == \
        tmp_path / "from_dotenv"
    env_wins = Settings.from_env(environ={**duck_url, "DAGSTER_HOME": "elsewhere"}, cwd=tmp_path)
    assert dagster_home_path(env_wins) == tmp_path / "elsewhere"


def test_a_cli_run_whose_process_died_no_longer_blocks_the_queue(tmp_path: Path,
                                                                  instance_of) -> None:
    """A run recorded as started by a command line that was killed is marked failed by the
    next command-line run (which holds the warehouse lock, so no other is alive)."""
    home = tmp_path / "home"
    home.mkdir()
    instance = instance_of(home)

    @op
    def noop() -> None:
        pass

    @job
    def tiny() -> None:
        noop()

    dead = instance.create_run_for_job(tiny, tags={LAUNCHED_BY_TAG: "cli"},
                                       status=DagsterRunStatus.STARTED)
    daemons = instance.create_run_for_job(tiny, status=DagsterRunStatus.STARTED)
    assert fail_orphaned_cli_runs(instance) == [dead.run_id]
    assert instance.get_run_by_id(dead.run_id).status == DagsterRunStatus.FAILURE
    assert instance.get_run_by_id(daemons.run_id).status == DagsterRunStatus.STARTED


def test_a_schedule_tick_launches_a_recorded_run(run_world: RunWorld, instance_of,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    """The daily rollup is on by default; its tick (evaluated on the instance) asks for
    yesterday, and the run it requests is recorded there and succeeds."""
    from orchestration.definitions import defs

    schedule = defs.get_schedule_def("daily_rollup")
    assert schedule.default_status == DefaultScheduleStatus.RUNNING
    monkeypatch.chdir(run_world.cwd)  # the run reads the defaults relative to it, as served
    instance = instance_of(run_world.dagster_home)
    tick = datetime.fromisoformat(run_world.as_of).replace(hour=1, tzinfo=UTC)
    context = build_schedule_context(instance=instance, scheduled_execution_time=tick)
    (request,) = schedule.evaluate_tick(context).run_requests
    yesterday = (tick - timedelta(days=1)).date().isoformat()
    assert request.tags["crm/as_of_date"] == yesterday
    result = defs.resolve_job_def("crm_pipeline").execute_in_process(
        run_config=request.run_config, tags=request.tags, instance=instance)
    assert result.success
    recorded = instance.get_run_by_id(result.run_id)
    assert recorded.status == DagsterRunStatus.SUCCESS
    assert recorded.tags["crm/as_of_date"] == yesterday
    assert instance.get_latest_materialization_event(
        AssetKey(["marts", "v_crm_contact_summary"])).run_id == result.run_id


def test_serve_runs_the_ui_and_the_landing_sensor_launches_a_run(run_world: RunWorld,
                                                                 instance_of) -> None:
    """`crm-analytics serve`: the webserver answers on 127.0.0.1, and the daemon, on its
    own, evaluates the landing sensor (on by default) and launches a run that succeeds."""
    from orchestration.definitions import defs

    assert defs.get_sensor_def("new_landing_files").default_status == \
        DefaultSensorStatus.RUNNING
    with dagster_served(run_world.cwd, {}) as (port, log):
        first = log.read_text().partition("\n")[0]
        assert f"http://localhost:{port}" in first and str(run_world.dagster_home) in first
        assert listening_addresses(port) == {"127.0.0.1"}
        run = landing_sensor_run(instance_of(run_world.dagster_home), 900)
        assert run.tags["dagster/sensor_name"] == "new_landing_files"
