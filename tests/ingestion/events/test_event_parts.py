"""A Spark warehouse's staging file keeps the valid events as Parquet parts
(ingestion/events/parts.py). The loader's own rules on it are tested with every other warehouse
in test_event_files.py and test_bad_input_events.py; here is what only parts have: a load that
fails midway leaves no part that counts, a staging file from before the parts keeps its rows,
and the lake's version of the table links the parts instead of writing them again."""

from __future__ import annotations

import os
from datetime import date
from pathlib import Path

import duckdb
import pytest

from crm_core.errors import CrmError
from crm_core.spark import event_parts_folder
from crm_core.urls import parse_warehouse_url
from ingestion.events import files as event_files
from ingestion.events.files import load_events
from ingestion.spark_lake import export_raw
from ingestion.warehouse import open_warehouse
from tests.helpers.events import event_line, land_lines, rows, spark_staging


def _ids(wh) -> list[str]:
    return [r[0] for r in rows(wh, "select event_id from raw.campaign_events order by 1")]


def test_a_load_that_fails_midway_leaves_no_part_that_counts(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    events = tmp_path / "ev"
    land_lines(events, "2026-03-01", "a.jsonl", [event_line(f"1-{i}") for i in range(3)])
    folder = event_parts_folder(tmp_path / "staging.duckdb")
    wh = open_warehouse(spark_staging(tmp_path))
    try:
        load_events(events, wh, as_of=date(2026, 3, 1))
        for day in ("2026-03-02", "2026-03-03", "2026-03-04"):
            land_lines(events, day, "a.jsonl", [event_line(f"{day}-{i}") for i in range(3)])
        monkeypatch.setattr(event_files, "BATCH_BYTES", 1)  # a batch, and a part, per file

        def stop_after_two(done: int, total: int) -> None:
            if done == 2:
                raise KeyboardInterrupt  # the operator's Ctrl-C, with parts written

        with pytest.raises(KeyboardInterrupt):
            load_events(events, wh, as_of=date(2026, 3, 4), on_files=stop_after_two)
        assert len(list(folder.iterdir())) > 1  # the first load's part, and the failed one's
        assert _ids(wh) == [f"1-{i}" for i in range(3)]
        assert rows(wh, "select count(*), sum(rows) from raw.campaign_event_parts") == [(1, 3)]
        assert rows(wh, "select count(*) from raw.event_files") == [(1,)]
        report = load_events(events, wh, as_of=date(2026, 3, 4))
        assert (report.files_loaded, report.events) == (3, 9)
        assert len(_ids(wh)) == len(set(_ids(wh))) == 12
        listed = {r[0] for r in rows(wh, "select part from raw.campaign_event_parts")}
    finally:
        wh.close()
    assert {p.name for p in folder.iterdir()} == listed  # the failed load's parts are gone


def test_a_staging_file_from_before_the_parts_keeps_its_events(tmp_path: Path) -> None:
    events = tmp_path / "ev"
    land_lines(events, "2026-03-01", "a.jsonl", [event_line("1"), event_line("2")])
    staging = tmp_path / "staging.duckdb"
    # the events as a table, as a staging file written before the parts existed holds them
    before = open_warehouse(parse_warehouse_url(f"duckdb:///{staging}", tmp_path))
    try:
        load_events(events, before, as_of=date(2026, 3, 1))
    finally:
        before.close()
    land_lines(events, "2026-03-02", "a.jsonl", [event_line("3")])
    wh = open_warehouse(spark_staging(tmp_path))
    try:
        report = load_events(events, wh, as_of=date(2026, 3, 2))
        assert (report.files_loaded, report.files_skipped) == (1, 1)
        assert _ids(wh) == ["1", "2", "3"]
        assert rows(wh, "select table_type from information_schema.tables "
                        "where table_name = 'campaign_events'") == [("VIEW",)]
        assert rows(wh, "select sum(rows) from raw.campaign_event_parts") == [(3,)]
    finally:
        wh.close()


def test_the_lake_links_the_parts_and_a_replaced_file_leaves_old_versions_whole(
        tmp_path: Path) -> None:
    events, lake = tmp_path / "ev", tmp_path / "lake"
    staging = tmp_path / "staging.duckdb"
    empty = export_raw(_loaded(tmp_path, events), str(lake), tables=["campaign_events"])
    assert empty[0].rows == 0
    assert _read(empty[0].location) == []  # a file with the columns, for Spark

    land_lines(events, "2026-03-01", "a.jsonl", [event_line("1"), event_line("2")])
    land_lines(events, "2026-03-01", "b.jsonl", [event_line("9")])
    first = export_raw(_loaded(tmp_path, events), str(lake), tables=["campaign_events"])[0]
    assert first.rows == 3 and _read(first.location) == ["1", "2", "9"]
    folder = event_parts_folder(staging)
    for linked in Path(first.location).glob("*.parquet"):
        assert os.stat(linked).st_ino == os.stat(folder / linked.name).st_ino

    land_lines(events, "2026-03-01", "a.jsonl", [event_line("3")])  # a.jsonl replaced
    second = export_raw(_loaded(tmp_path, events), str(lake), tables=["campaign_events"])[0]
    assert second.rows == 2 and _read(second.location) == ["3", "9"]
    assert _read(first.location) == ["1", "2", "9"]  # a reader of the old version is unharmed
    with duckdb.connect(str(staging), read_only=True) as con:
        listed = {r[0] for r in con.execute("select part from raw.campaign_event_parts")
                  .fetchall()}
    assert {p.name for p in folder.iterdir()} == listed

    # A lake on another disk than the staging folder cannot link from it: an unchanged part
    # is linked from the lake's previous version. (Here the staging part is made a copy, so
    # the two sources have different inodes.)
    kept = next(p for p in Path(second.location).glob("*.parquet"))
    copy = folder / f"{kept.name}.copy"
    copy.write_bytes((folder / kept.name).read_bytes())
    os.replace(copy, folder / kept.name)
    third = export_raw(staging, str(lake), tables=["campaign_events"])[0]
    assert os.stat(Path(third.location) / kept.name).st_ino == os.stat(kept).st_ino
    assert _read(third.location) == ["3", "9"]


def test_parts_have_the_columns_and_types_of_the_events_table(tmp_path: Path) -> None:
    events = tmp_path / "ev"
    land_lines(events, "2026-03-01", "a.jsonl", [event_line("1", revenue="12.5", lead_id=3)])
    described = []
    for target in (parse_warehouse_url(f"duckdb:///{tmp_path}/wh.duckdb", tmp_path),
                   spark_staging(tmp_path)):
        wh = open_warehouse(target)
        try:
            load_events(events, wh, as_of=date(2026, 3, 1))
            described.append(rows(wh, "select column_name, column_type "
                                      "from (describe raw.campaign_events)"))
        finally:
            wh.close()
    assert described[0] == described[1]


def _loaded(root: Path, events: Path) -> Path:
    """Load `events` into the staging file of a Spark warehouse at `root`; returns its path."""
    events.mkdir(parents=True, exist_ok=True)
    wh = open_warehouse(spark_staging(root))
    try:
        load_events(events, wh, as_of=date(2026, 3, 1))
    finally:
        wh.close()
    return root / "staging.duckdb"


def _read(location: str) -> list[str]:
    with duckdb.connect() as con:
        return [r[0] for r in con.execute(
            f"select event_id from read_parquet('{location}/*.parquet') order by 1").fetchall()]


def test_a_missing_part_is_named_in_one_line(tmp_path: Path) -> None:
    events = tmp_path / "ev"
    land_lines(events, "2026-03-01", "a.jsonl", [event_line("1")])
    wh = open_warehouse(spark_staging(tmp_path))
    try:
        load_events(events, wh, as_of=date(2026, 3, 1))
        for part in event_parts_folder(tmp_path / "staging.duckdb").iterdir():
            part.unlink()
        land_lines(events, "2026-03-02", "a.jsonl", [event_line("2")])
        missing = r"1 campaign event part\(s\) listed in the staging file are missing from "
        with pytest.raises(CrmError, match=missing + r".*staging\.duckdb\.events") as raised:
            load_events(events, wh, as_of=date(2026, 3, 2))
        assert "\n" not in str(raised.value)
    finally:
        wh.close()
