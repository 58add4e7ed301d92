"""Hostile and unlucky event files, on both warehouses: compression bombs and multi-member
gzip streamed block by block, lines past the length cap, bounded rejected text, strict RFC 3339
times and the accepted range of event times, revenue judged before rounding, symlinks out of
the landing folder, and landing folder names that are not real dates. Expected values come
from the lines each test writes."""

from __future__ import annotations

import gzip
import os
import zlib
from datetime import date
from pathlib import Path

import pytest

import ingestion.events.files as event_files
from crm_core.landing import OUTSIDE_REASON, scan_landing, strict_date
from ingestion.events.files import REJECTED_TEXT_CHARS, load_events
from tests.helpers.events import event_line, land, land_lines, opened, rows

DAY = "2026-03-01"
AS_OF = date(2026, 3, 1)


@pytest.fixture
def small_blocks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Blocks of 64 bytes: every line and every gzip member crosses block boundaries."""
    monkeypatch.setattr(event_files, "READ_BLOCK", 64)
    monkeypatch.setattr(event_files, "RAW_BLOCK", 7)
    return 64


def test_a_compression_bomb_loads_every_line_in_bounded_batches(
        warehouse_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A small .gz of many identical lines (ratio ~ 100:1) is inflated block by block: the
    batches follow the inflated text, not the compressed size, and nothing is lost."""
    monkeypatch.setattr(event_files, "READ_BLOCK", 4096)
    monkeypatch.setattr(event_files, "BATCH_BYTES", 64 << 10)
    line = event_line("same", time="2026-03-01T10:00:00Z")
    n = 20_000
    path = land(tmp_path / "ev", DAY, "bomb.jsonl.gz", (line + "\n").encode() * n)
    inflated = (len(line) + 1) * n
    assert path.stat().st_size * 50 < inflated  # it really is a bomb
    with opened(warehouse_url, tmp_path) as wh:
        report = load_events(tmp_path / "ev", wh, as_of=AS_OF)
        assert (report.events, report.rejected) == (n, 0)
        # every batch holds at most BATCH_BYTES plus one block of text
        assert report.batches >= (inflated - 1) // ((64 << 10) + 4096)
        assert rows(wh, "select count(*), min(line_number), max(line_number), "
                        "count(distinct line_number) from raw.campaign_events") == \
            [(n, 1, n, n)]
        assert rows(wh, "select lines, events, rejected, size_bytes from raw.event_files") == \
            [(n, n, 0, path.stat().st_size)]


def test_lines_crossing_blocks_and_gzip_members_are_numbered_once(
        warehouse_url: str, tmp_path: Path, small_blocks: int) -> None:
    lines = [event_line(f"e{i}", note="x" * (i * 13 % 150)) for i in range(40)]
    payload = ("\n".join(lines) + "\n").encode()
    events = tmp_path / "ev"
    land(events, DAY, "plain.jsonl", payload)
    # three gzip members back to back, cut mid-line
    folder = events / DAY
    (folder / "members.jsonl.gz").write_bytes(gzip.compress(payload[:1000], mtime=0)
                                              + gzip.compress(payload[1000:2500], mtime=0)
                                              + gzip.compress(payload[2500:], mtime=0))
    with opened(warehouse_url, tmp_path) as wh:
        report = load_events(events, wh, as_of=AS_OF)
        assert (report.events, report.rejected) == (80, 0)
        for name in ("plain.jsonl", "members.jsonl.gz"):
            got = rows(wh, f"select line_number, event_id from raw.campaign_events "
                           f"where file_path = '{DAY}/{name}' order by 1")
            assert got == [(i + 1, f"e{i}") for i in range(40)]


def test_a_truncated_gzip_keeps_its_lines_and_records_the_tail(
        warehouse_url: str, tmp_path: Path, small_blocks: int) -> None:
    lines = [event_line(f"t{i}", note=os.urandom(40).hex()) for i in range(10)]  # no repeats
    whole = gzip.compress(("\n".join(lines) + "\n").encode(), mtime=0)
    folder = tmp_path / "ev" / DAY
    folder.mkdir(parents=True)
    (folder / "cut.jsonl.gz").write_bytes(whole[: len(whole) * 2 // 3])
    with opened(warehouse_url, tmp_path) as wh:
        load_events(tmp_path / "ev", wh, as_of=AS_OF)
        loaded = [r[0] for r in rows(wh, "select event_id from raw.campaign_events "
                                         "order by line_number")]
        assert loaded == [f"t{i}" for i in range(len(loaded))] and 0 < len(loaded) < 10
        tail = rows(wh, "select reason, line_number from raw.rejected_events")
        assert tail == [("truncated_gzip", len(loaded) + 1)]


@pytest.mark.parametrize("name", ["long.jsonl", "long.jsonl.gz"])
def test_a_line_past_the_cap_is_rejected_with_a_bounded_prefix(
        warehouse_url: str, tmp_path: Path, small_blocks: int, name: str) -> None:
    """Lines longer than the cap — inside a block, across many blocks, last in the file
    without a newline — are `line_too_long`, keep only their start, and the lines around them
    load."""
    cap = 2048
    huge = event_line("huge", note="y" * 50_000)
    medium = event_line("medium", note="z" * (cap + 10))
    just = event_line("just", note="")
    just = event_line("just", note="w" * (cap - len(just)))
    assert len(just) == cap
    lines = [event_line("a"), huge, event_line("b"), medium, just, event_line("c"), huge]
    payload = ("\n".join(lines)).encode()  # no final newline: the last line is huge
    land(tmp_path / "ev", DAY, name, payload)
    with opened(warehouse_url, tmp_path) as wh:
        report = load_events(tmp_path / "ev", wh, as_of=AS_OF, max_line_bytes=cap)
        assert (report.events, report.rejected) == (4, 3)
        assert rows(wh, "select line_number, event_id from raw.campaign_events order by 1") == \
            [(1, "a"), (3, "b"), (5, "just"), (6, "c")]
        rejected = rows(wh, "select line_number, reason, raw_text from raw.rejected_events "
                            "order by 1")
        assert [(n, reason) for n, reason, _ in rejected] == \
            [(2, "line_too_long"), (4, "line_too_long"), (7, "line_too_long")]
        for number, _, text in rejected:
            assert len(text) <= REJECTED_TEXT_CHARS
            assert lines[number - 1].startswith(text) and len(text) > 100


def test_rejected_text_is_a_bounded_prefix(warehouse_url: str, tmp_path: Path) -> None:
    bad = "{" + "q" * (REJECTED_TEXT_CHARS * 3)  # invalid JSON, under the line cap
    land_lines(tmp_path / "ev", DAY, "a.jsonl", [bad])
    with opened(warehouse_url, tmp_path) as wh:
        load_events(tmp_path / "ev", wh, as_of=AS_OF)
        assert rows(wh, "select reason, raw_text from raw.rejected_events") == \
            [("invalid_json", bad[:REJECTED_TEXT_CHARS])]


TIMES = {
    # RFC 3339 to the letter
    "2026-03-01T10:00:00Z": None,
    "2026-03-01t10:00:00z": None,
    "2026-03-01 10:00:00+01:00": None,
    "2026-03-01T10:00:00.123456+23:59": None,
    "2026-03-01T10:00:00-23:59": None,
    "2026-03-01T10:00:00+24:00": "unparseable_time",
    "2026-03-01T10:00:00+23:60": "unparseable_time",
    "2026-03-01T10:00:00+99:99": "unparseable_time",
    "2026-03-01T10:00:00+0100": "unparseable_time",
    "2026-03-01T10:00Z": "unparseable_time",
    "-0001-03-01T10:00:00Z": "unparseable_time",
    "+2026-03-01T10:00:00Z": "unparseable_time",
    "12026-03-01T10:00:00Z": "unparseable_time",
    "2026-02-30T10:00:00Z": "unparseable_time",
    "2026-03-01T10:00:00": "unparseable_time",
    # the accepted range: 1970-01-01 up to the end of the day after landing (UTC)
    "0000-01-01T00:00:00Z": "time_before_1970",
    "0001-01-01T00:00:00Z": "time_before_1970",
    "1969-12-31T23:59:59.999999Z": "time_before_1970",
    "1970-01-01T01:00:00+01:00": None,
    "1970-01-01T00:00:00Z": None,
    "2026-03-02T23:59:59Z": None,
    "2026-03-03T00:00:00Z": "time_after_landing",
    "9999-12-31T23:59:59Z": "time_after_landing",
}


def test_times_are_rfc3339_within_the_accepted_range(warehouse_url: str,
                                                     tmp_path: Path) -> None:
    lines = [event_line(f"t{i}", time=text) for i, text in enumerate(TIMES)]
    land_lines(tmp_path / "ev", DAY, "a.jsonl", lines)
    with opened(warehouse_url, tmp_path) as wh:
        load_events(tmp_path / "ev", wh, as_of=AS_OF)
        loaded = {n for (n,) in rows(wh, "select line_number from raw.campaign_events")}
        rejected = dict(rows(wh, "select line_number, reason from raw.rejected_events"))
    for number, (text, reason) in enumerate(TIMES.items(), start=1):
        assert (number in loaded) == (reason is None), text
        assert rejected.get(number) == reason, text


@pytest.mark.parametrize(("revenue", "reason", "stored"), [
    ("-0.004", "negative_revenue", None), (-0.004, "negative_revenue", None),
    ("-1e-9", "negative_revenue", None), ("-0.00", None, "0.00"), ("0.004", None, "0.00"),
    ("0.005", None, "0.01"), ("12.345", None, "12.35"), ("1e20", "non_numeric_revenue", None),
])
def test_revenue_is_judged_before_rounding(warehouse_url: str, tmp_path: Path, revenue: object,
                                           reason: str | None, stored: str | None) -> None:
    line = event_line("r", etype="erp.campaign.conversion", revenue=revenue)
    land_lines(tmp_path / "ev", DAY, "a.jsonl", [line])
    with opened(warehouse_url, tmp_path) as wh:
        load_events(tmp_path / "ev", wh, as_of=AS_OF)
        assert rows(wh, "select reason from raw.rejected_events") == \
            ([(reason,)] if reason else [])
        got = rows(wh, "select cast(revenue as varchar) from raw.campaign_events")
        assert got == ([(stored,)] if stored else [])


def test_nothing_is_read_outside_the_landing_folder(warehouse_url: str, tmp_path: Path) -> None:
    """A symlinked file and a symlinked date folder pointing elsewhere are skipped with a
    warning and a manifest row; a symlink that stays inside is an ordinary file."""
    outside = tmp_path / "elsewhere"
    outside.mkdir()
    secret = outside / "secret.jsonl"
    secret.write_text("root:x:0:0:secret line\n" + event_line("stolen") + "\n")
    (outside / "2026-03-01").mkdir()
    (outside / "2026-03-01" / "x.jsonl").write_text(event_line("stolen2") + "\n")
    events = tmp_path / "ev"
    land_lines(events, DAY, "real.jsonl", [event_line("ok")])
    os.symlink(secret, events / DAY / "passwd.jsonl")
    os.symlink(events / DAY / "real.jsonl", events / DAY / "alias.jsonl")  # stays inside
    os.symlink(outside / "2026-03-01", events / "2026-02-28")
    os.symlink("/etc/passwd", events / DAY / "etc.jsonl")
    with opened(warehouse_url, tmp_path) as wh:
        report = load_events(events, wh, as_of=AS_OF)
        assert sorted(r[0] for r in rows(wh, "select file_path from raw.campaign_events")) == \
            [f"{DAY}/alias.jsonl", f"{DAY}/real.jsonl"]
        assert rows(wh, "select count(*) from raw.rejected_events") == [(0,)]
        skipped = rows(wh, "select file_path, skipped, checksum from raw.event_files "
                           "where skipped is not null order by 1")
        assert skipped == [("2026-02-28", OUTSIDE_REASON, None),
                           (f"{DAY}/etc.jsonl", OUTSIDE_REASON, None),
                           (f"{DAY}/passwd.jsonl", OUTSIDE_REASON, None)]
        assert sorted(report.warnings) == sorted(
            f"landing entry {name!r} leads outside CRM_EVENTS_PATH: not read"
            for name in ("2026-02-28", f"{DAY}/etc.jsonl", f"{DAY}/passwd.jsonl"))
        again = load_events(events, wh, as_of=AS_OF)  # warned again, recorded once
        assert len(again.warnings) == 3 and again.files_loaded == 0
        assert rows(wh, "select count(*) from raw.event_files where skipped is not null") == \
            [(3,)]


@pytest.mark.parametrize("name", ["2026-W09-7", "20260301", "2026-060", "2026-02-30",
                                  "2026-3-1", "2026-03-01x", "backup"])
def test_only_real_yyyy_mm_dd_folders_are_loaded(warehouse_url: str, tmp_path: Path,
                                                 name: str) -> None:
    events = tmp_path / "ev"
    land_lines(events, DAY, "a.jsonl", [event_line("dated")])
    land_lines(events, name, "a.jsonl", [event_line("undated")])
    assert strict_date(name) is None
    with opened(warehouse_url, tmp_path) as wh:
        report = load_events(events, wh, as_of=date(2026, 12, 31))
        assert rows(wh, "select event_id from raw.campaign_events") == [("dated",)]
        assert report.warnings == [f"landing folder {name!r} is not a YYYY-MM-DD date: "
                                   "not loaded"]
    assert scan_landing(events).ignored == [name]


def test_hidden_folders_are_neither_loaded_nor_warned_about(tmp_path: Path) -> None:
    """`generate`'s staging (`.generating`) and a file server's `.snapshot` are tools' own."""
    events = tmp_path / "ev"
    land_lines(events, DAY, "a.jsonl", [event_line("dated")])
    for hidden in (".generating", ".snapshot"):
        land_lines(events / hidden, DAY, "a.jsonl", [event_line("hidden")])
    with opened(f"duckdb:///{tmp_path}/wh.duckdb", tmp_path) as wh:
        report = load_events(events, wh, as_of=date(2026, 12, 31))
        assert rows(wh, "select event_id from raw.campaign_events") == [("dated",)]
        assert report.warnings == []
    assert scan_landing(events).ignored == []


def test_strict_date_takes_only_real_calendar_days() -> None:
    assert strict_date("2026-11-16") == date(2026, 11, 16)
    assert strict_date("2024-02-29") == date(2024, 2, 29)
    for text in ("2026-W47-1", "20261116", "2026-320", "2025-02-29", "2026-11-16T00:00",
                 " 2026-11-16", "２０２６-11-16", ""):
        assert strict_date(text) is None, text


def test_the_inflater_stops_at_garbage_after_a_member(tmp_path: Path) -> None:
    """Trailing bytes that are not a gzip member end the stream as truncated (the member's
    lines still load); an empty .gz is simply empty."""
    data = zlib.compress(b"")  # a zlib stream is accepted too (auto-detected header)
    assert data
    events = tmp_path / "ev"
    folder = events / DAY
    folder.mkdir(parents=True)
    (folder / "garbage.jsonl.gz").write_bytes(
        gzip.compress((event_line("g") + "\n").encode(), mtime=0) + b"not gzip at all")
    (folder / "empty.jsonl.gz").write_bytes(b"")
    with opened(f"duckdb:///{tmp_path}/wh.duckdb", tmp_path) as wh:
        report = load_events(events, wh, as_of=AS_OF)
        assert (report.events, report.rejected, report.files_loaded) == (1, 1, 2)
        assert rows(wh, "select file_path, reason from raw.rejected_events") == \
            [(f"{DAY}/garbage.jsonl.gz", "truncated_gzip")]
