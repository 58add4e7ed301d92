"""The daily rollup is incremental: a run re-aggregates exactly the (campaign, date) pairs touched
by the newly loaded event files — including a late event five days old — and the result equals
what the independent oracle computes from everything landed so far. On both warehouses (the
incremental model's merge differs between dbt-duckdb and dbt-postgres)."""

import gzip
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from tests.helpers import oracle
from tests.helpers.pipeline import compare, crm, query_warehouse, read_mart

pytestmark = pytest.mark.slow

END = date(2026, 3, 20)
TZ = "America/Los_Angeles"


def lines_of(path: Path) -> list[str]:
    data = path.read_bytes()
    return (gzip.decompress(data) if path.name.endswith(".gz") else data).decode().splitlines()


def expected_touched(events: Path, new_day: date) -> set[tuple[int, date]]:
    """Every (campaign, local date) that any copy of an event delivered in `new_day`'s folder
    points at, computed from the files themselves."""
    new_ids = set()
    for path in (events / new_day.isoformat()).glob("*.jsonl*"):
        for line in lines_of(path):
            try:
                obj = json.loads(line)
                new_ids.add((obj["source"], obj["id"]))
            except (json.JSONDecodeError, KeyError, TypeError):
                continue
    touched = set()
    for folder in sorted(events.iterdir()):
        if not folder.is_dir() or date.fromisoformat(folder.name) > new_day:
            continue
        landing = date.fromisoformat(folder.name)
        for path in folder.glob("*.jsonl*"):
            for line in lines_of(path):
                try:
                    event = oracle._valid_event(json.loads(line), landing)
                except json.JSONDecodeError:
                    continue
                if event and event["type"].startswith("erp.campaign.") and \
                        (event["source"], event["id"]) in new_ids:
                    touched.add((event["campaign_id"], oracle.local_date(event["time"], TZ)))
    return touched


def built_days(wh: str) -> dict[tuple[int, date], object]:
    """(campaign, date) -> the load stamp its row of the incremental model was built from."""
    return {(r["campaign_id"], r["event_date"]): r["built_from_loaded_at"] for r in
            query_warehouse(wh, "select campaign_id, event_date, built_from_loaded_at "
                                "from intermediate.int_campaign_event_days")}


def test_a_new_landing_day_rebuilds_only_the_pairs_it_touches(tmp_path: Path,
                                                              warehouse_url: str) -> None:
    env = {"CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_EVENTS_PATH": str(tmp_path / "events"),
           "CRM_WAREHOUSE_URL": warehouse_url, "CRM_REPORTING_TZ": TZ}
    crm(["generate", "--days", "45", "--seed", "5", "--end-date", END.isoformat(), "--quiet"],
        tmp_path, env)
    day_before = END - timedelta(days=1)
    crm(["run", "--date", day_before.isoformat()], tmp_path, env)

    # A late event: landed on END, happened five days earlier, on a campaign-day that exists.
    late_day = (END - timedelta(days=5)).isoformat()
    found = query_warehouse(warehouse_url, (
        "select campaign_id, event_date from intermediate.int_campaign_event_days "
        f"where has_events and event_date = cast('{late_day}' as date) order by campaign_id"))
    campaign_id, old_day = found[0]["campaign_id"], found[0]["event_date"]
    before = built_days(warehouse_url)
    late_time = datetime.combine(old_day, datetime.min.time(), ZoneInfo(TZ)) + timedelta(hours=12)
    late = {"specversion": "1.0", "id": "late-five-days", "source": "test", "time":
            late_time.isoformat(), "type": "erp.campaign.click", "data": {"campaign_id":
                                                                           campaign_id}}
    (tmp_path / "events" / END.isoformat() / "late.jsonl").write_text(json.dumps(late) + "\n")

    crm(["run", "--date", END.isoformat()], tmp_path, env)
    after = built_days(warehouse_url)
    rebuilt = {pair for pair, stamp in after.items() if before.get(pair) != stamp}
    touched = expected_touched(tmp_path / "events", END)
    assert (campaign_id, old_day) in touched
    assert rebuilt == touched
    assert len(rebuilt) < len(after) / 2  # not a window, not the history

    # And the numbers are those of the whole history, late event included.
    src = oracle.read_source(env["CRM_SOURCE_URL"])
    events = oracle.read_events(tmp_path / "events", END)
    compare(oracle.campaign_performance(src, events, END, TZ),
            read_mart(env["CRM_WAREHOUSE_URL"], "v_crm_campaign_performance"),
            ("campaign_id", "date"), "campaign performance after an incremental run")
