"""Landing entries that are not loaded are said, never silent: a folder whose name is not a
real YYYY-MM-DD date, or a symlink out of the landing folder, makes the `landing_folders`
check warn and the run print one warning line per run; the sensor's fingerprint and the run's
partition range ignore them like the loader does."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import pytest
from dagster import AssetCheckSeverity

from orchestration.checks import landing_folders
from orchestration.partitions import RANGE_START_TAG, landing_range_tags
from orchestration.resources import CrmSettingsResource
from orchestration.sensors import landing_fingerprint
from tests.helpers.cli import crm
from tests.helpers.events import event_line, land_lines


def test_the_check_names_folders_that_are_not_dates_and_links_out(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "events"
    land_lines(events, "2026-03-01", "a.jsonl", [event_line("1")])
    monkeypatch.setenv("CRM_EVENTS_PATH", str(events))
    clean = landing_folders(crm=CrmSettingsResource())
    assert clean.passed is True and clean.metadata["summary"].value == ""

    land_lines(events, "2026-W09-7", "a.jsonl", [event_line("2")])
    (events / "20260302").mkdir()
    (tmp_path / "elsewhere").mkdir()
    os.symlink(tmp_path / "elsewhere", events / "2026-03-03")
    result = landing_folders(crm=CrmSettingsResource())
    assert result.passed is False and result.severity == AssetCheckSeverity.WARN
    assert result.metadata["not_dates"].value == ["2026-W09-7", "20260302"]  # name order
    assert result.metadata["outside"].value == ["2026-03-03"]
    assert "'2026-W09-7' is not a YYYY-MM-DD date" in result.metadata["summary"].value


def test_fingerprint_and_range_ignore_what_is_not_loaded(tmp_path: Path) -> None:
    events = tmp_path / "events"
    land_lines(events, "2026-03-02", "a.jsonl", [event_line("1")])
    before = landing_fingerprint(events)
    land_lines(events, "2026-W09-1", "a.jsonl", [event_line("2")])  # an ISO week date
    land_lines(events, "20260301", "a.jsonl", [event_line("3")])
    outside = tmp_path / "elsewhere"
    land_lines(outside, "2026-03-01", "x.jsonl", [event_line("4")])
    os.symlink(outside / "2026-03-01", events / "2026-03-01")
    os.symlink(outside / "2026-03-01" / "x.jsonl", events / "2026-03-02" / "b.jsonl")
    assert landing_fingerprint(events) == before
    assert landing_range_tags(events, date(2026, 3, 5))[RANGE_START_TAG] == "2026-03-02"


@pytest.mark.slow
def test_a_run_warns_once_per_folder_that_is_not_a_date(tmp_path: Path,
                                                        warehouse_url: str) -> None:
    env = {"CRM_SOURCE_URL": f"sqlite:///{tmp_path}/erp.sqlite",
           "CRM_EVENTS_PATH": str(tmp_path / "events"), "CRM_WAREHOUSE_URL": warehouse_url}
    proc = crm(["generate", "--days", "5", "--end-date", "2026-03-10", "--quiet"],
                   tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    land_lines(tmp_path / "events", "2026-W10-1", "a.jsonl", [event_line("week")])
    proc = crm(["run", "--date", "2026-03-10"], tmp_path, **env)
    assert proc.returncode == 0, proc.stderr
    warned = [ln for ln in proc.stdout.splitlines() if "2026-W10-1" in ln]
    assert warned == ["warning: raw/campaign_events: check landing_folders warned: landing "
                      "folder '2026-W10-1' is not a YYYY-MM-DD date: not loaded"]
