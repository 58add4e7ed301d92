"""An empty previous state means "everything is new": a pipeline run on a warehouse with no
campaign events yet, then the event files land and the next run must count every one of them
(the incremental campaign-day model and the loader's manifest both start from nothing). On
both warehouses; the numbers come from the independent oracle over the files landed."""

import shutil
from datetime import date
from pathlib import Path

import pytest

from tests.helpers import oracle
from tests.helpers.pipeline import compare, crm, query_warehouse, read_mart

pytestmark = pytest.mark.slow

END = date(2026, 3, 20)
TZ = "UTC"


def test_events_landing_after_a_run_without_any_are_all_counted(tmp_path: Path,
                                                               warehouse_url: str) -> None:
    env = dict(CRM_SOURCE_URL=f"sqlite:///{tmp_path}/erp.sqlite", CRM_REPORTING_TZ=TZ,
               CRM_EVENTS_PATH=str(tmp_path / "events"), CRM_WAREHOUSE_URL=warehouse_url)
    crm(["generate", "--quiet", "--seed", "5", "--days", "45", "--end-date", END.isoformat()],
        tmp_path, env)
    shutil.move(tmp_path / "events", tmp_path / "held_back")
    (tmp_path / "events").mkdir()

    crm(["run", "--date", END.isoformat()], tmp_path, env)
    assert query_warehouse(warehouse_url, "select count(*) as n from "
                                          "intermediate.int_campaign_event_days") == [{"n": 0}]

    shutil.rmtree(tmp_path / "events")
    shutil.move(tmp_path / "held_back", tmp_path / "events")
    crm(["run", "--date", END.isoformat()], tmp_path, env)

    src = oracle.read_source(env["CRM_SOURCE_URL"])
    events = oracle.read_events(tmp_path / "events", END)
    assert any(e["type"] == "erp.campaign.click" for e in events)
    expected = oracle.campaign_performance(src, events, END, TZ)
    compare(expected, read_mart(warehouse_url, "v_crm_campaign_performance"),
            ("campaign_id", "date"), "campaign performance after events landed late")
    clicks = sum(row["clicks"] or 0 for row in expected.values())
    assert clicks > 0
