"""The event loader against real DuckDB and PostgreSQL warehouses: exactly once, bad lines
contained with their reason, truncated gzip, markers, as-of cut-off, reruns and changed files.
Expected values come from the lines each test writes."""

import gzip
import hashlib
import json
from datetime import date
from pathlib import Path

import pytest

from crm_core.errors import CrmError
from crm_core.urls import parse_warehouse_url
from ingestion.events.files import REJECT_REASONS, load_events
from ingestion.warehouse import open_warehouse
from tests.helpers.events import spark_staging
from tests.helpers.postgres import pg_url


def ev(eid: str, etype: str = "erp.campaign.click", time: str = "2026-03-01T10:00:00+02:00",
       source: str = "erp/crm/1", **data: object) -> str:
    data.setdefault("campaign_id", 7)
    return json.dumps({"specversion": "1.0", "id": eid, "source": source, "type": etype,
                       "time": time, "data": data})


def write(events: Path, landing: str, name: str, lines: list[str]) -> Path:
    folder = events / landing
    folder.mkdir(parents=True, exist_ok=True)
    payload = ("\n".join(lines) + "\n").encode()
    path = folder / name
    path.write_bytes(gzip.compress(payload) if name.endswith(".gz") else payload)
    return path


@pytest.fixture(params=["duckdb", pytest.param("postgres", marks=pytest.mark.postgres),
                        "spark_staging"])
def warehouse(request, tmp_path: Path):
    """Each kind of place the loader writes: a DuckDB warehouse, a PostgreSQL one, and a Spark
    warehouse's staging file (its valid events kept as Parquet parts, read through the
    `raw.campaign_events` view)."""
    if request.param == "duckdb":
        target = parse_warehouse_url(f"duckdb:///{tmp_path}/wh.duckdb", tmp_path)
    elif request.param == "postgres":
        target = parse_warehouse_url(
            pg_url(request.getfixturevalue("pg_database"), driver="postgresql"), tmp_path)
    else:
        target = spark_staging(tmp_path)
    wh = open_warehouse(target)
    yield wh
    wh.close()


def rows(wh, sql: str) -> list[tuple]:
    return [tuple(r) for r in wh.fetchall(sql)]


def test_duplicates_are_stored_as_deliveries_in_landing_order(warehouse, tmp_path: Path) -> None:
    events = tmp_path / "events"
    write(events, "2026-03-01", "a.jsonl", [ev("1"), ev("1"), ev("2", source="erp/crm/2")])
    write(events, "2026-03-01", "b.jsonl", [ev("1", revenue="5.00")])
    write(events, "2026-03-02", "a.jsonl", [ev("2", source="erp/crm/2"), ev("2")])
    report = load_events(events, warehouse, as_of=date(2026, 3, 2))
    assert (report.files_loaded, report.events, report.rejected) == (3, 6, 0)
    # The same id under two sources is two identities.
    got = rows(warehouse, """
        select event_source, event_id, count(*), min(landing_date || '/' || file_path ||
               ':' || lpad(cast(line_number as varchar), 6, '0'))
        from raw.campaign_events group by 1, 2 order by 1, 2""")
    assert got == [
        ("erp/crm/1", "1", 3, "2026-03-01/2026-03-01/a.jsonl:000001"),
        ("erp/crm/1", "2", 1, "2026-03-02/2026-03-02/a.jsonl:000002"),
        ("erp/crm/2", "2", 2, "2026-03-01/2026-03-01/a.jsonl:000003"),
    ]


def test_every_rejection_reason_is_recorded_and_good_lines_still_load(warehouse,
                                                                    tmp_path: Path) -> None:
    bad = {
        "invalid_json": '{"id": ',
        "not_an_object": "[1, 2, 3]",
        "missing_specversion": json.dumps({"id": "x", "source": "s", "type":
                                           "erp.campaign.click", "time": "2026-03-01T00:00:00Z"}),
        "missing_id": json.loads(ev("x")) | {"id": None},
        "missing_source": json.loads(ev("x")) | {"source": None},
        "missing_type": json.loads(ev("x")) | {"type": None},
        "missing_time": json.loads(ev("x")) | {"time": None},
        "unknown_type": ev("x", etype="erp.campaign.like"),
        "unparseable_time": ev("x", time="yesterday at noon"),
        "time_after_landing": ev("x", time="2026-03-05T00:00:00Z"),
        "missing_campaign_id": ev("x", campaign_id=None),
        "missing_lead_id": ev("x", etype="erp.lead.qualified"),
        "missing_deal_id": ev("x", etype="erp.opportunity.won"),
        "non_numeric_revenue": ev("x", etype="erp.campaign.conversion", revenue="lots"),
        "negative_revenue": ev("x", etype="erp.campaign.conversion", revenue=-1),
    }
    lines = [json.dumps(v) if isinstance(v, dict) else v for v in bad.values()]
    good = [ev("g1"), ev("g2", etype="erp.campaign.conversion", revenue="12.50"),
            ev("g3", etype="erp.campaign.conversion", revenue=3),
            ev("g4", etype="erp.lead.qualified", lead_id=9, campaign_id=None),
            ev("g5", time="2026-03-03T23:59:59Z")]  # within a day after landing: accepted
    write(tmp_path / "ev", "2026-03-02", "mix.jsonl", good[:2] + lines + good[2:])
    report = load_events(tmp_path / "ev", warehouse, as_of=date(2026, 3, 2))
    assert (report.events, report.rejected) == (len(good), len(bad))
    got = dict(rows(warehouse, "select reason, line_number from raw.rejected_events"))
    assert got == {reason: i + 3 for i, reason in enumerate(bad)}
    assert set(got) <= set(REJECT_REASONS)
    raw = dict(rows(warehouse, "select reason, raw_text from raw.rejected_events"))
    assert raw["invalid_json"] == '{"id": '
    revenue = dict(rows(warehouse, "select event_id, revenue from raw.campaign_events"))
    assert str(revenue["g2"]) == "12.50" and str(revenue["g3"]) == "3.00"


def test_truncated_gzip_keeps_complete_lines_and_rejects_the_tail(warehouse,
                                                                 tmp_path: Path) -> None:
    lines = [ev(str(i)) for i in range(2000)]
    path = write(tmp_path / "ev", "2026-03-01", "big.jsonl.gz", lines)
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    report = load_events(tmp_path / "ev", warehouse, as_of=date(2026, 3, 1))
    loaded = rows(warehouse, "select event_id from raw.campaign_events order by line_number")
    assert 0 < len(loaded) < len(lines)
    assert [r[0] for r in loaded] == [str(i) for i in range(len(loaded))]  # a clean prefix
    reasons = rows(warehouse, "select reason, line_number from raw.rejected_events")
    assert reasons == [("truncated_gzip", len(loaded) + 1)]
    assert report.events == len(loaded)


def test_markers_later_folders_and_reruns(warehouse, tmp_path: Path) -> None:
    events = tmp_path / "ev"
    write(events, "2026-03-01", "a.jsonl", [ev("1")])
    (events / "2026-03-01" / "_SUCCESS").write_text("")
    (events / "2026-03-01" / "notes.txt").write_text("not events")
    (events / "not-a-date").mkdir()
    (events / "not-a-date" / "x.jsonl").write_text(ev("nope"))
    write(events, "2026-03-03", "a.jsonl", [ev("future")])
    first = load_events(events, warehouse, as_of=date(2026, 3, 2))
    assert (first.files_loaded, first.events) == (1, 1)
    again = load_events(events, warehouse, as_of=date(2026, 3, 2))
    assert (again.files_loaded, again.files_skipped, again.events) == (0, 1, 0)
    assert rows(warehouse, "select count(*) from raw.campaign_events") == [(1,)]
    later = load_events(events, warehouse, as_of=date(2026, 3, 3))
    assert (later.files_loaded, later.events) == (1, 1)
    assert rows(warehouse, "select count(*) from raw.event_files") == [(2,)]


def test_a_changed_file_replaces_its_old_rows(warehouse, tmp_path: Path) -> None:
    events = tmp_path / "ev"
    write(events, "2026-03-01", "a.jsonl", [ev("1"), "garbage"])
    write(events, "2026-03-01", "b.jsonl", [ev("9")])
    load_events(events, warehouse, as_of=date(2026, 3, 1))
    write(events, "2026-03-01", "a.jsonl", [ev("1"), ev("2"), ev("3")])
    report = load_events(events, warehouse, as_of=date(2026, 3, 1))
    assert (report.files_loaded, report.files_replaced, report.files_skipped) == (1, 1, 1)
    assert rows(warehouse, "select event_id from raw.campaign_events order by event_id") == [
        ("1",), ("2",), ("3",), ("9",)]
    assert rows(warehouse, "select count(*) from raw.rejected_events") == [(0,)]


def test_a_late_event_keeps_its_own_time(warehouse, tmp_path: Path) -> None:
    write(tmp_path / "ev", "2026-03-10", "a.jsonl", [ev("late", time="2026-03-05T08:00:00Z")])
    load_events(tmp_path / "ev", warehouse, as_of=date(2026, 3, 10))
    ((landing, when),) = rows(warehouse, "select landing_date, event_time "
                                         "from raw.campaign_events")
    assert landing == date(2026, 3, 10) and when.isoformat().startswith("2026-03-05T08:00:00")


def test_an_unreadable_file_fails_naming_it_and_changes_nothing(warehouse,
                                                               tmp_path: Path) -> None:
    events = tmp_path / "ev"
    write(events, "2026-03-01", "a.jsonl", [ev("1")])
    load_events(events, warehouse, as_of=date(2026, 3, 1))
    write(events, "2026-03-02", "a.jsonl", [ev("2")])
    (events / "2026-03-02" / "broken.jsonl").mkdir()  # a folder where a file should be
    with pytest.raises(CrmError, match="2026-03-02/broken.jsonl"):
        load_events(events, warehouse, as_of=date(2026, 3, 2))
    assert rows(warehouse, "select event_id from raw.campaign_events") == [("1",)]
    assert rows(warehouse, "select count(*) from raw.event_files") == [(1,)]


def test_batches_across_folders_load_the_same_as_one_pass(warehouse, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """Several landing folders per parse, or one file per parse: the same rows either way."""
    import ingestion.events.files as event_files

    events = tmp_path / "ev"
    expected = set()
    for day in range(1, 6):
        landing = f"2026-03-0{day}"
        lines = [ev(f"{day}-{i}", time=f"{landing}T0{i}:00:00Z") for i in range(4)] + ["{bad"]
        write(events, landing, "a.jsonl.gz" if day % 2 else "a.jsonl", lines)
        expected |= {(f"{landing}/a.jsonl{'.gz' if day % 2 else ''}", i + 1, f"{day}-{i}")
                     for i in range(4)}
    monkeypatch.setattr(event_files, "BATCH_BYTES", 1)  # every file its own batch
    report = load_events(events, warehouse, as_of=date(2026, 3, 5))
    assert (report.files_loaded, report.events, report.rejected, report.batches) == (5, 20, 5, 5)
    got = set(rows(warehouse, "select file_path, line_number, event_id from raw.campaign_events"))
    assert got == expected
    assert rows(warehouse, "select count(*), min(line_number), max(line_number) "
                           "from raw.rejected_events") == [(5, 5, 5)]
    assert report.landing_dates == [date(2026, 3, d) for d in range(1, 6)]


def test_invalid_utf8_rejects_only_its_line(warehouse, tmp_path: Path) -> None:
    folder = tmp_path / "ev" / "2026-03-01"
    folder.mkdir(parents=True)
    (folder / "a.jsonl").write_bytes(
        (ev("1") + "\n").encode() + b'{"id": "\xff\xfe broken\n' + (ev("2") + "\n").encode())
    report = load_events(tmp_path / "ev", warehouse, as_of=date(2026, 3, 1))
    assert (report.events, report.rejected) == (2, 1)
    assert rows(warehouse, "select reason, line_number from raw.rejected_events") == [
        ("invalid_json", 2)]


def test_a_same_size_rewrite_is_caught_by_its_checksum(warehouse, tmp_path: Path) -> None:
    events = tmp_path / "ev"
    first = write(events, "2026-03-01", "a.jsonl", [ev("11")])
    load_events(events, warehouse, as_of=date(2026, 3, 1))
    second = write(events, "2026-03-01", "a.jsonl", [ev("12")])
    assert first.stat().st_size == second.stat().st_size
    report = load_events(events, warehouse, as_of=date(2026, 3, 1))
    assert (report.files_loaded, report.files_replaced) == (1, 1)
    assert rows(warehouse, "select event_id from raw.campaign_events") == [("12",)]
    (checksum,) = rows(warehouse, "select checksum from raw.event_files")[0]
    assert checksum == hashlib.sha256(second.read_bytes()).hexdigest()


def test_blank_lines_are_skipped_and_leading_spaces_are_json(warehouse, tmp_path: Path) -> None:
    write(tmp_path / "ev", "2026-03-01", "a.jsonl",
          [ev("1"), "", "    ", "  " + ev("2"), "  [1]", "\t" + ev("3")])
    report = load_events(tmp_path / "ev", warehouse, as_of=date(2026, 3, 1))
    assert (report.events, report.rejected) == (3, 1)
    assert rows(warehouse, "select event_id, line_number from raw.campaign_events "
                           "order by line_number") == [("1", 1), ("2", 4), ("3", 6)]
    assert rows(warehouse, "select reason, line_number from raw.rejected_events") == [
        ("not_an_object", 5)]
