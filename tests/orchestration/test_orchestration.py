"""The Dagster definitions: they validate, show the layers as groups, wire dbt sources to the
ingestion assets, and the daily rollup schedule asks for yesterday in the reporting zone."""

import json
import subprocess
import sys
from datetime import date, datetime
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetKey, build_schedule_context

from orchestration.dbt_project import ensure_manifest
from orchestration.schedules import build_daily_rollup
from tests.helpers.paths import REPO_ROOT
from tests.helpers.pipeline import query_warehouse
from tests.helpers.postgres import pg_url


def test_dagster_definitions_validate() -> None:
    ensure_manifest()
    proc = subprocess.run(
        [sys.executable, "-m", "dagster", "definitions", "validate", "-m",
         "orchestration.definitions"],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=300, check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    assert "Validation successful" in proc.stdout + proc.stderr


def test_asset_graph_layers_and_lineage() -> None:
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    groups = {key: graph.get(key).group_name for key in graph.get_all_asset_keys()}
    assert groups[AssetKey(["raw", "crm_deals"])] == "ingestion"
    assert groups[AssetKey(["marts", "v_crm_pipeline_summary"])] == "marts"
    assert groups[AssetKey(["staging", "stg_erp__crm_deals"])] == "staging"
    # dbt's source `raw.crm_deals` is the very asset the sync materializes.
    parents = graph.get(AssetKey(["staging", "stg_erp__crm_deals"])).parent_keys
    assert AssetKey(["raw", "crm_deals"]) in parents
    for mart in ("v_crm_contact_summary", "v_crm_pipeline_summary",
                 "v_crm_campaign_performance", "v_crm_lead_conversion"):
        assert AssetKey(["marts", mart]) in groups


def test_daily_rollup_runs_yesterday_in_the_reporting_zone() -> None:
    schedule = build_daily_rollup("America/Los_Angeles")
    assert schedule.cron_schedule == "0 1 * * *"
    assert schedule.execution_timezone == "America/Los_Angeles"
    # 01:00 on 1 March in Los Angeles is 09:00 UTC: the run is for 28 February.
    tick = datetime(2026, 3, 1, 1, 0, tzinfo=ZoneInfo("America/Los_Angeles"))
    request = schedule.evaluate_tick(build_schedule_context(scheduled_execution_time=tick))
    (run,) = request.run_requests
    assert run.run_config["ops"]["crm_dbt_models"]["config"]["as_of_date"] == "2026-02-28"
    assert run.run_key == "daily_rollup:2026-02-28"
    assert run.tags["dagster/asset_partition_range_end"] == "2026-02-28"


def test_landing_sensor_fires_on_new_and_changed_files_only(tmp_path, monkeypatch) -> None:
    from dagster import build_sensor_context

    from orchestration.sensors import new_landing_files

    events = tmp_path / "events"
    monkeypatch.setenv("CRM_EVENTS_PATH", str(events))
    monkeypatch.setenv("CRM_REPORTING_TZ", "UTC")

    def tick(cursor: str | None):
        ctx = build_sensor_context(cursor=cursor)
        return new_landing_files(ctx), ctx

    first, ctx = tick(None)
    assert first.run_key.startswith("landing:")  # even an empty folder is a first state
    quiet, _ = tick(ctx.cursor)
    assert "no new or changed" in quiet.skip_message

    (events / "2026-03-01").mkdir(parents=True)
    (events / "2026-03-01" / "_SUCCESS").write_text("")
    marker_only, _ = tick(ctx.cursor)
    assert "no new or changed" in marker_only.skip_message  # markers are not data

    (events / "2026-03-01" / "a.jsonl").write_text('{"id": 1}\n')
    new_file, ctx3 = tick(ctx.cursor)
    assert new_file.run_key.startswith("landing:")
    assert new_file.run_config["ops"]["campaign_event_files"]["config"]["as_of_date"]

    (events / "2026-03-01" / "a.jsonl").write_text('{"id": 1}\n{"id": 2}\n')
    changed, _ = tick(ctx3.cursor)
    assert changed.run_key != new_file.run_key


@pytest.mark.parametrize("kind", ["duckdb", pytest.param("postgres",
                                                         marks=pytest.mark.postgres)])
def test_a_landing_date_range_loads_in_one_run(tmp_path, monkeypatch, request, kind) -> None:
    """The event asset is partitioned by landing date with a single-run backfill policy: a
    range of dates is one run, and the range ends at the as-of date. On both warehouses."""
    from dagster import DagsterInstance, materialize

    from orchestration.assets.events import campaign_event_files
    from orchestration.partitions import landing_range_tags
    from orchestration.resources import CrmSettingsResource

    events = tmp_path / "events"
    for day in ("2026-03-01", "2026-03-02", "2026-03-03", "2026-03-04"):
        (events / day).mkdir(parents=True)
        event = {"specversion": "1.0", "id": day, "source": "s", "type": "erp.campaign.click",
                 "time": f"{day}T10:00:00Z", "data": {"campaign_id": 1}}
        (events / day / "a.jsonl").write_text(json.dumps(event) + "\n")
    monkeypatch.setenv("CRM_EVENTS_PATH", str(events))
    url = (f"duckdb:///{tmp_path}/wh.duckdb" if kind == "duckdb"
           else pg_url(request.getfixturevalue("pg_database"), driver="postgresql"))
    monkeypatch.setenv("CRM_WAREHOUSE_URL", url)
    tags = landing_range_tags(events, date(2026, 3, 3))
    assert tags == {"dagster/asset_partition_range_start": "2026-03-01",
                    "dagster/asset_partition_range_end": "2026-03-03"}
    with DagsterInstance.ephemeral() as instance:
        result = materialize([campaign_event_files], resources={"crm": CrmSettingsResource()},
                             instance=instance, tags=tags)
        assert result.success
        assert len(instance.get_runs()) == 1
    loaded = query_warehouse(url, "select event_id from raw.campaign_events order by 1")
    assert [r["event_id"] for r in loaded] == ["2026-03-01", "2026-03-02", "2026-03-03"]


def test_deal_history_and_history_marts_are_assets_of_the_dbt_build() -> None:
    """The deal history (the append-only versions model) is recorded in the pipeline's
    `dbt build`: it is an asset downstream of the staged deals, and the history marts are
    downstream of it."""
    from orchestration.definitions import defs

    graph = defs.resolve_asset_graph()
    history = AssetKey(["snapshots", "crm_deal_versions"])
    assert graph.get(history).group_name == "snapshots"
    assert AssetKey(["staging", "stg_erp__crm_deals"]) in graph.get(history).parent_keys
    versions = AssetKey(["intermediate", "int_crm_deal_versions"])
    assert history in graph.get(versions).parent_keys
    for mart in ("fct_deal_stage_history", "fct_open_pipeline_daily", "owner_performance",
                 "campaign_lifetime", "customer_group_summary", "lead_source_effectiveness",
                 "open_pipeline_by_owner_month"):
        assert graph.get(AssetKey(["marts", mart])).group_name == "marts"
