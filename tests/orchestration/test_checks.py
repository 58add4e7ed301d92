"""The two warning checks on the event files, evaluated against a real warehouse (DuckDB and
PostgreSQL) and a real landing folder: the reject rate of the latest load, and yesterday's
landing folder."""

import json
from datetime import date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest
from dagster import AssetCheckSeverity

from crm_core.urls import parse_warehouse_url
from ingestion.events.files import load_events
from ingestion.warehouse import open_warehouse
from orchestration.checks import landing_freshness, reject_rate
from orchestration.resources import CrmSettingsResource


def _line(i: int) -> str:
    return json.dumps({"specversion": "1.0", "id": str(i), "source": "s",
                       "type": "erp.campaign.click", "time": "2026-03-01T10:00:00Z",
                       "data": {"campaign_id": 1}})


@pytest.fixture
def loaded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, warehouse_url: str) -> Path:
    """A warehouse whose latest load read 20 lines, 1 of them bad (5%)."""
    events = tmp_path / "events"
    (events / "2026-03-01").mkdir(parents=True)
    (events / "2026-03-01" / "a.jsonl").write_text(
        "\n".join([_line(i) for i in range(19)] + ["not json"]) + "\n")
    url = warehouse_url
    wh = open_warehouse(parse_warehouse_url(url, tmp_path))
    load_events(events, wh, as_of=date(2026, 3, 1))
    wh.close()
    monkeypatch.setenv("CRM_WAREHOUSE_URL", url)
    monkeypatch.setenv("CRM_EVENTS_PATH", str(events))
    return events


@pytest.mark.parametrize(("threshold", "passed"), [("0.01", False), ("0.05", True),
                                                   ("0.2", True)])
def test_reject_rate_warns_above_the_threshold(loaded: Path, monkeypatch: pytest.MonkeyPatch,
                                               threshold: str, passed: bool) -> None:
    monkeypatch.setenv("CRM_REJECT_RATE_WARN", threshold)
    result = reject_rate(crm=CrmSettingsResource())
    assert result.passed is passed
    assert result.severity == AssetCheckSeverity.WARN
    assert result.metadata["lines"].value == 20 and result.metadata["rejected"].value == 1
    assert result.metadata["reject_rate"].value == pytest.approx(1 / 20)
    assert result.metadata["summary"].value == ("" if passed else (
        "1 of 20 lines rejected in the latest load (5.0%, above 1.0%): see raw.rejected_events"))


def test_landing_freshness_warns_when_yesterdays_folder_is_missing(
        loaded: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    tz = "Pacific/Kiritimati"  # UTC+14: "yesterday" differs from UTC's for most of the day
    monkeypatch.setenv("CRM_REPORTING_TZ", tz)
    monkeypatch.setenv("CRM_LANDING_DEADLINE_HOUR", "0")  # always past the deadline
    yesterday = (datetime.now(ZoneInfo(tz)) - timedelta(days=1)).date()
    missing = landing_freshness(crm=CrmSettingsResource())
    assert missing.passed is False and missing.severity == AssetCheckSeverity.WARN
    assert missing.metadata["expected_folder"].value.endswith(yesterday.isoformat())
    assert missing.metadata["summary"].value == (
        f"no landing folder {loaded / yesterday.isoformat()} for {yesterday.isoformat()} "
        f"after 00:00 {tz}")
    (loaded / yesterday.isoformat()).mkdir()
    assert landing_freshness(crm=CrmSettingsResource()).passed is True


def test_landing_freshness_waits_for_the_deadline(loaded: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    now = datetime.now(ZoneInfo("UTC"))
    if now.hour == 23 or now.minute == 59:
        pytest.skip("too close to the end of the hour or day to set a later deadline")
    monkeypatch.setenv("CRM_LANDING_DEADLINE_HOUR", str(now.hour + 1))
    result = landing_freshness(crm=CrmSettingsResource())
    assert result.passed is True and result.metadata["deadline_passed"].value is False
