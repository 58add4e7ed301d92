"""Every input a person types is checked where it enters, with one line saying what is
accepted: dates (only real YYYY-MM-DD days), counts and ports (bounded whole numbers), the
generated range of days, URLs whose port is not a number, a landing folder that is a file,
and the event line cap."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.helpers.cli import assert_one_line_error, crm


@pytest.mark.parametrize("text", ["20261128", "2026-W48-1", "2026-334", "2026-02-30",
                                  "2026-11-28T00:00", "tomorrow", ""])
@pytest.mark.parametrize("command", ["run", "demo"])
def test_dates_must_be_real_yyyy_mm_dd_days(tmp_path: Path, command: str, text: str) -> None:
    proc = crm([command, "--date", text], tmp_path)
    assert proc.returncode == 2
    assert_one_line_error(proc, "--date", "YYYY-MM-DD")


@pytest.mark.parametrize(("args", "fragment"), [
    (["--days", "99999999"], "a whole number from 1 to 3660"),
    (["--days", "0"], "a whole number from 1 to 3660"),
    (["--days", "ten"], "a whole number from 1 to 3660"),
    (["--seed", "-1"], "a whole number from 0 to 4294967295"),
    (["--seed", "1e9"], "a whole number from 0 to 4294967295"),
    (["--end-date", "20261128"], "YYYY-MM-DD"),
])
def test_generate_counts_are_bounded(tmp_path: Path, args: list[str], fragment: str) -> None:
    assert_one_line_error(crm(["generate", *args], tmp_path), fragment)


@pytest.mark.parametrize("args", [["--end-date", "0001-01-01"],
                                  ["--end-date", "1970-01-05", "--days", "10"],
                                  ["--end-date", "9999-12-31", "--days", "1"]])
def test_generate_days_stay_in_the_accepted_range(tmp_path: Path, args: list[str]) -> None:
    proc = crm(["generate", *args], tmp_path,
                   CRM_SOURCE_URL=f"sqlite:///{tmp_path}/erp.sqlite",
                   CRM_EVENTS_PATH=str(tmp_path / "events"))
    assert_one_line_error(proc, "out of range", "1970-01-01")
    assert not (tmp_path / "erp.sqlite").exists() and not (tmp_path / "events").exists()


@pytest.mark.parametrize("port", ["0", "65536", "http", "-5"])
def test_dashboard_port_is_checked(tmp_path: Path, port: str) -> None:
    assert_one_line_error(crm(["dashboard", "--port", port], tmp_path),
                   "a whole number from 1 to 65535")


@pytest.mark.parametrize("workers", ["0", "33", "two"])
def test_dashboard_workers_are_checked(tmp_path: Path, workers: str) -> None:
    assert_one_line_error(crm(["dashboard", "--workers", workers], tmp_path),
                          "a whole number from 1 to 32")


@pytest.mark.parametrize("variable", ["CRM_SOURCE_URL", "CRM_WAREHOUSE_URL"])
@pytest.mark.parametrize("port", ["abc", "99999", "54 32"])
def test_a_url_port_that_is_not_a_number_is_one_line(tmp_path: Path, variable: str,
                                                     port: str) -> None:
    url = f"postgresql://erp:pw-s3cret@127.0.0.1:{port}/erp"
    line = assert_one_line_error(crm(["sync"], tmp_path, **{variable: url}),
                          f"{variable}: malformed URL", "port")
    assert "pw-s3cret" not in line


def test_a_landing_folder_that_is_a_file_is_one_line(tmp_path: Path) -> None:
    (tmp_path / "events").write_text("not a folder")
    for command in (["sync"], ["generate", "--days", "3"], ["run"]):
        assert_one_line_error(crm(command, tmp_path, CRM_EVENTS_PATH=str(tmp_path / "events")),
                       "CRM_EVENTS_PATH", "is a file")


@pytest.mark.parametrize("value", ["12", "lots", "1e6", str(1 << 30)])
def test_the_event_line_cap_is_checked(tmp_path: Path, value: str) -> None:
    assert_one_line_error(crm(["sync"], tmp_path, CRM_MAX_EVENT_LINE_BYTES=value),
                   "CRM_MAX_EVENT_LINE_BYTES must be a whole number of bytes from 1024")
