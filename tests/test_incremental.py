"""The daily rollup is incremental: a run re-aggregates exactly the (campaign, date) pairs touched
by the newly loaded event files — including a late event five days old — and the result equals
what the independent oracle computes from everything landed so far."""

import gzip
import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import pytest

from tests import oracle
from tests.test_e2e import compare, crm, read_mart

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


def test_a_new_landing_day_rebuilds_only_the_pairs_it_touches(tmp_path: Path) -> None:
    env = {"CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_EVENTS_PATH": str(tmp_path / "events"),
           "CRM_WAREHOUSE_URL": f"duckdb:///{tmp_path}/wh.duckdb", "CRM_REPORTING_TZ": TZ}
    crm(["generate", "--days", "45", "--seed", "5", "--end-date", END.isoformat(), "--quiet"],
        tmp_path, env)
    day_before = END - timedelta(days=1)
    crm(["run", "--date", day_before.isoformat()], tmp_path, env)

    # A late event: landed on END, happened five days earlier, on a campaign-day that exists.
    con = duckdb.connect(f"{tmp_path}/wh.duckdb", read_only=True)
    campaign_id, old_day = con.execute(
        "select campaign_id, event_date from intermediate.int_campaign_event_days "
        "where has_events and event_date = ? limit 1", [END - timedelta(days=5)]).fetchone()
    before = dict(((c, d), stamp) for c, d, stamp in con.execute(
        "select campaign_id, event_date, built_from_loaded_at "
        "from intermediate.int_campaign_event_days").fetchall())
    con.close()
    late_time = datetime.combine(old_day, datetime.min.time(), ZoneInfo(TZ)) + timedelta(hours=12)
    late = {"specversion": "1.0", "id": "late-five-days", "source": "test", "time":
            late_time.isoformat(), "type": "erp.campaign.click", "data": {"campaign_id":
                                                                           campaign_id}}
    (tmp_path / "events" / END.isoformat() / "late.jsonl").write_text(json.dumps(late) + "\n")

    crm(["run", "--date", END.isoformat()], tmp_path, env)
    con = duckdb.connect(f"{tmp_path}/wh.duckdb", read_only=True)
    after = {(c, d): stamp for c, d, stamp in con.execute(
        "select campaign_id, event_date, built_from_loaded_at "
        "from intermediate.int_campaign_event_days").fetchall()}
    con.close()
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
