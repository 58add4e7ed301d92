"""Property-based bad input for the event loader (RELIABILITY.md): whatever lines come in,
every line is loaded or rejected with a reason (blank lines are the one documented skip), the
load never crashes, the totals add up per file and in the manifest, and every loaded value
equals what Python's own `json` makes of the line.

The oracle below (`classify`) is written from docs/contract.md section 3, not from the loader's SQL:
Python decodes and parses each line and applies the contract's rules in the reason order of
`REJECT_REASONS`. Where the contract is silent docs/decisions.md applies: JSON `null` counts
as missing; duplicate keys keep the first; ids must be integer literals (or strings of one), so
`7.5` is not campaign 7 or 8; `revenue` is rounded half away from zero to cents, after its sign
is judged; a line longer than the cap is `line_too_long`; event times before 1970 are rejected;
a rejected line keeps its first `REJECTED_TEXT_CHARS` characters (docs/decisions-input.md).
"""

from __future__ import annotations

import gzip
import json
import re
import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta, timezone
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from crm_core.urls import WarehouseTarget, parse_warehouse_url
from ingestion.events.files import (
    EVENT_TYPES,
    MAX_LINE_BYTES,
    REJECT_REASONS,
    REJECTED_TEXT_CHARS,
    load_events,
)
from ingestion.warehouse import open_warehouse
from tests.helpers.events import spark_staging
from tests.helpers.postgres import pg_url

LANDING = date(2026, 3, 10)
INT64 = (-(2**63), 2**63 - 1)
ID_FIELDS = ("campaign_id", "contact_id", "lead_id", "deal_id", "business_id", "branch_id")
REQUIRED_ID = {"erp.lead.qualified": "lead_id", "erp.opportunity.won": "deal_id"}


# ---------------------------------------------------------------- the oracle (contract rules)

def _first_key_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for key, value in pairs:
        out.setdefault(key, value)
    return out


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON")


def _as_text(value: Any) -> str | None:
    """A field read as text: strings as they are, numbers as written, null as missing."""
    if value is None:
        return None
    if isinstance(value, str):
        return value
    return json.dumps(value, ensure_ascii=False, separators=(",", ":"))


def _as_int(value: Any) -> int | None:
    """An id: an integer in BIGINT range, as a JSON integer or a string of one."""
    if isinstance(value, bool) or value is None:
        return None
    if isinstance(value, int):
        number = value
    elif isinstance(value, str) and value.lstrip("-").isascii() and value.lstrip("-").isdigit() \
            and str(int(value)) == value:
        number = int(value)
    else:
        return None
    return number if INT64[0] <= number <= INT64[1] else None


def _as_money(value: Any) -> Decimal | None | str:
    """Revenue as DECIMAL(15,2), "bad" when present but not such a number, "negative" when
    below zero before any rounding."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        return "bad"
    try:
        exact = Decimal(str(value).strip())
        amount = exact.quantize(Decimal("0.01"), rounding=ROUND_HALF_UP)
    except (InvalidOperation, ValueError):
        return "bad"
    if not amount.is_finite() or abs(amount) >= Decimal(10) ** 13:
        return "bad"
    return "negative" if exact < 0 else amount


@dataclass(frozen=True)
class Expect:
    kind: str  # "blank", "reject" or "event"
    reason: str | None = None
    values: tuple[Any, ...] = ()


def classify(raw: bytes, landing: date) -> Expect:
    """What the contract says happens to one line."""
    if len(raw) > MAX_LINE_BYTES:
        return Expect("reject", "line_too_long")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Expect("reject", "invalid_json")
    if text.strip(" \t\r") == "":
        return Expect("blank")
    try:
        doc = json.loads(text, object_pairs_hook=_first_key_wins,
                         parse_constant=_reject_constant)
    except ValueError:
        return Expect("reject", "invalid_json")
    if not isinstance(doc, dict):
        return Expect("reject", "not_an_object")
    fields = {k: _as_text(doc.get(k)) for k in ("specversion", "id", "source", "type", "time")}
    for key, reason in (("specversion", "missing_specversion"), ("id", "missing_id"),
                        ("source", "missing_source"), ("type", "missing_type"),
                        ("time", "missing_time")):
        if fields[key] is None:
            return Expect("reject", reason)
    if fields["type"] not in EVENT_TYPES:
        return Expect("reject", "unknown_type")
    when = _parse_time(fields["time"])
    if when is None:
        return Expect("reject", "unparseable_time")
    if when < datetime(1970, 1, 1, tzinfo=UTC):
        return Expect("reject", "time_before_1970")
    if when >= datetime(landing.year, landing.month, landing.day, tzinfo=UTC) + timedelta(days=2):
        return Expect("reject", "time_after_landing")
    data = doc.get("data") if isinstance(doc.get("data"), dict) else {}
    ids = {name: _as_int(data.get(name)) for name in ID_FIELDS}
    etype = fields["type"]
    if etype.startswith("erp.campaign.") and ids["campaign_id"] is None:
        return Expect("reject", "missing_campaign_id")
    if etype in REQUIRED_ID and ids[REQUIRED_ID[etype]] is None:
        return Expect("reject", f"missing_{REQUIRED_ID[etype]}")
    revenue = _as_money(data.get("revenue"))
    if revenue == "bad":
        return Expect("reject", "non_numeric_revenue")
    if revenue == "negative":
        return Expect("reject", "negative_revenue")
    return Expect("event", None, (fields["source"], fields["id"], etype, when,
                                  *(ids[n] for n in ID_FIELDS), revenue))


def _parse_time(text: str) -> datetime | None:
    """RFC 3339: a four-digit year, 'T' or space, time with seconds, optional fraction, then
    'Z' or an offset within ±23:59."""
    if not re.fullmatch(r"[0-9]{4}-[0-9]{2}-[0-9]{2}[Tt ][0-9]{2}:[0-9]{2}:[0-9]{2}"
                        r"(\.[0-9]+)?([Zz]|[+-]([01][0-9]|2[0-3]):[0-5][0-9])", text):
        return None
    if text.startswith("0000"):
        # Year 0 is a valid RFC 3339 year Python cannot hold: a real time before 1970 when the
        # rest is valid (checked in year 4, a leap year like year 0).
        try:
            datetime.fromisoformat("0004" + text[4:].replace("z", "Z").replace("t", "T"))
        except ValueError:
            return None
        return datetime(1, 1, 1, tzinfo=UTC)
    try:
        when = datetime.fromisoformat(text.replace("z", "Z"))
    except ValueError:
        return None
    if when.tzinfo is None:
        return None
    return when.astimezone(UTC)


# ---------------------------------------------------------------- the generator

TEXTS = st.text(alphabet=st.characters(codec="utf-8", exclude_characters="\n"), max_size=30)
ODD_TEXT = st.sampled_from(["שלום עולם", "مرحبا", "\u202eevil\u202c", "e\u0301", "😀" * 3,
                            "\ufeffbom", "tab\there", "quote\"'", "back\\slash", ""])
ID_VALUES = st.one_of(st.integers(1, 10**6), st.integers(1, 10**6).map(str),
                      st.sampled_from([7.5, 7.0, -3, 0, 2**63, 2**63 - 1, -(2**63), 10**30,
                                       True, "7.5", " 7", "0x10", "1e3", "007", "", [1], {"a": 1},
                                       None]))
REVENUE = st.one_of(st.decimals(0, 10**9, places=2, allow_nan=False).map(str),
                    st.integers(0, 10**12),
                    st.sampled_from(["-1.00", "-0.00", "1.005", "lots", "NaN", "1e3",
                                     "99999999999999.99", "9999999999999.99", 12.5, -7, None,
                                     True, [], "  5.10 ", "-0.004", "-0.005", -0.001,
                                     "-1e-9"]))


@st.composite
def event_time(draw: st.DrawFn) -> str:
    """A timestamp around the landing date, with an offset, written in one of RFC 3339's forms."""
    offset = timedelta(minutes=draw(st.integers(-14 * 60, 14 * 60)))
    base = datetime(LANDING.year, LANDING.month, LANDING.day, tzinfo=UTC)
    when = (base + timedelta(seconds=draw(st.integers(-40 * 86400, 4 * 86400)))) \
        .astimezone(timezone(offset))
    if draw(st.booleans()):
        when = when.replace(microsecond=draw(st.integers(0, 999_999)))
    text = when.isoformat()
    if offset == timedelta(0) and draw(st.booleans()):
        text = text.replace("+00:00", "Z")
    return text


@st.composite
def event_doc(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event, then a few near-valid changes."""
    etype = draw(st.sampled_from(EVENT_TYPES))
    data: dict[str, Any] = {"campaign_id": draw(st.integers(1, 500))}
    if etype == "erp.lead.qualified":
        data["lead_id"] = draw(st.integers(1, 10**6))
    if etype == "erp.opportunity.won":
        data["deal_id"] = draw(st.integers(1, 10**6))
    if etype == "erp.campaign.conversion":
        data["revenue"] = draw(REVENUE)
    for name in ("contact_id", "business_id", "branch_id"):
        if draw(st.booleans()):
            data[name] = draw(st.integers(1, 10**6))
    doc: dict[str, Any] = {
        "specversion": "1.0", "id": draw(st.one_of(st.uuids().map(str), TEXTS, ODD_TEXT)),
        "source": draw(st.one_of(st.just("erp/crm/1"), TEXTS, ODD_TEXT)), "type": etype,
        "time": draw(event_time()), "data": data}
    for _ in range(draw(st.integers(0, 2))):
        change = draw(st.sampled_from(["drop", "null", "wrong_type", "case", "extra", "id",
                                       "revenue", "data_not_object", "time_text"]))
        key = draw(st.sampled_from(["specversion", "id", "source", "type", "time", "data"]))
        if change == "drop":
            doc.pop(key, None)
        elif change == "null":
            doc[key] = None
        elif change == "wrong_type":
            doc[key] = draw(st.sampled_from([5, 2.5, True, [], {"x": 1}, 10**25]))
        elif change == "case" and isinstance(doc.get("type"), str):
            doc["type"] = draw(st.sampled_from([doc["type"].upper(), doc["type"].title(),
                                                " " + doc["type"]]))
        elif change == "extra":
            doc[draw(TEXTS)] = draw(st.one_of(TEXTS, st.integers()))
        elif change == "id":
            data[draw(st.sampled_from(ID_FIELDS))] = draw(ID_VALUES)
        elif change == "revenue":
            data["revenue"] = draw(REVENUE)
        elif change == "data_not_object":
            doc["data"] = draw(st.sampled_from(["x", 1, [data], None]))
        elif change == "time_text":
            doc["time"] = draw(st.sampled_from([
                "yesterday", "2026-03-10", "2026-03-10T10:00:00", "2026-13-40T00:00:00Z", "",
                1741600000, "2026-03-10T10:00:00+24:00", "2026-03-10T10:00:00-23:60",
                "2026-03-10T10:00:00+99:99", "0000-03-10T10:00:00Z", "-0001-03-10T10:00:00Z",
                "+2026-03-10T10:00:00Z", "0001-01-01T00:00:00Z", "1969-12-31T23:59:59Z",
                "1970-01-01T00:00:00Z", "2026-03-10T10:00Z", "2026-03-10t10:00:00z",
                "2026-03-10T10:00:00.123456789+01:00"]))
    return doc


@st.composite
def event_line(draw: st.DrawFn) -> bytes:
    """One line (no newline inside) from the mix: events, damaged text, junk bytes, blanks."""
    kind = draw(st.sampled_from(["event"] * 6 + ["dup_key", "truncated", "junk_bytes",
                                                  "junk_text", "blank", "scalar", "long",
                                                  "nul", "bad_utf8"]))
    if kind in ("event", "dup_key", "truncated", "long", "nul", "bad_utf8"):
        doc = draw(event_doc())
        if kind == "long":
            doc["data"] = {**(doc["data"] if isinstance(doc.get("data"), dict) else {}),
                           "note": "x" * draw(st.integers(10_000, 300_000))}
        text = json.dumps(doc, ensure_ascii=draw(st.booleans()))
        if kind == "dup_key":
            text = text.replace("{", '{"type": "erp.campaign.bogus", ', 1) if \
                draw(st.booleans()) else text[:-1] + ', "id": "second"}'
        raw = text.encode()
        if kind == "truncated":
            raw = raw[: draw(st.integers(0, max(0, len(raw) - 1)))]
        elif kind == "nul":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + b"\x00" + raw[at:]
        elif kind == "bad_utf8":
            at = draw(st.integers(0, len(raw)))
            raw = raw[:at] + draw(st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80"])) + raw[at:]
        if draw(st.booleans()):
            raw = draw(st.sampled_from([b" ", b"\t", b""])) + raw + \
                draw(st.sampled_from([b"\r", b" ", b""]))
        return raw
    if kind == "junk_bytes":
        return draw(st.binary(max_size=60)).replace(b"\n", b"")
    if kind == "junk_text":
        return draw(TEXTS).encode()
    if kind == "blank":
        return draw(st.sampled_from([b"", b" ", b"\t", b"\r", b"  \t \r"]))
    return json.dumps(draw(st.one_of(st.integers(), st.lists(st.integers(), max_size=3),
                                     TEXTS, st.none(), st.booleans()))).encode()


LANDING_FILES = st.lists(
    st.tuples(st.sampled_from([".jsonl", ".jsonl.gz"]), st.lists(event_line(), max_size=25),
              st.booleans()),
    min_size=1, max_size=3)


# ---------------------------------------------------------------- the property

def _write_files(events: Path, files: list[tuple[str, list[bytes], bool]]) -> dict[str, list]:
    """Write the landing files; returns rel_path -> the lines as written."""
    folder = events / LANDING.isoformat()
    folder.mkdir(parents=True)
    written = {}
    for i, (suffix, lines, final_newline) in enumerate(files):
        payload = b"\n".join(lines) + (b"\n" if final_newline and lines else b"")
        name = f"f{i}{suffix}"
        (folder / name).write_bytes(gzip.compress(payload) if suffix.endswith(".gz") else payload)
        # What the file holds as lines: the piece after a final newline is not a line.
        pieces = payload.split(b"\n")
        if pieces and pieces[-1] == b"" and (final_newline or payload == b""):
            pieces = pieces[:-1]
        written[f"{LANDING.isoformat()}/{name}"] = pieces
    return written


def _no_nul(value: Any) -> Any:
    """What a text value becomes in PostgreSQL, which cannot store NUL (docs/decisions.md)."""
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


def check_load(target_for: Callable[[Path], WarehouseTarget],
               files: list[tuple[str, list[bytes], bool]], *,
               nul_replaced: bool = False) -> None:
    fix = _no_nul if nul_replaced else (lambda v: v)
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp)
        written = _write_files(root / "events", files)
        wh = open_warehouse(target_for(root))
        try:
            report = load_events(root / "events", wh, as_of=LANDING)
            loaded = {(r[0], r[1]): r[2:] for r in wh.fetchall(
                "select file_path, line_number, event_source, event_id, event_type, event_time, "
                + ", ".join(ID_FIELDS) + ", revenue from raw.campaign_events")}
            rejected = {(r[0], r[1]): (r[2], r[3]) for r in wh.fetchall(
                "select file_path, line_number, reason, raw_text from raw.rejected_events")}
            manifest = {r[0]: r[1:] for r in wh.fetchall(
                "select file_path, lines, events, rejected from raw.event_files")}
            again = load_events(root / "events", wh, as_of=LANDING)
        finally:
            wh.close()
    expected_events = expected_rejects = blanks = 0
    for path, lines in written.items():
        n_event = n_reject = 0
        for number, raw in enumerate(lines, start=1):
            expect = classify(raw, LANDING)
            key = (path, number)
            if expect.kind == "blank":
                blanks += 1
                assert key not in loaded and key not in rejected, (raw, key)
            elif expect.kind == "reject":
                n_reject += 1
                assert key not in loaded, (raw, loaded.get(key))
                assert key in rejected, raw
                reason, raw_text = rejected[key]
                assert reason == expect.reason, (raw, reason)
                if reason != "line_too_long":
                    assert raw_text == fix(raw.decode("utf-8", errors="replace")
                                           )[:REJECTED_TEXT_CHARS]
                else:  # its start, cut within the first bytes kept
                    assert fix(raw.decode("utf-8", errors="replace")).startswith(
                        raw_text.rstrip("\ufffd"))
                    assert len(raw_text) <= REJECTED_TEXT_CHARS
            else:
                n_event += 1
                assert key not in rejected, (raw, rejected.get(key))
                got = loaded[key]
                assert got[:3] == tuple(fix(v) for v in expect.values[:3]), raw
                assert got[3].astimezone(UTC) == expect.values[3], raw
                assert tuple(got[4:]) == expect.values[4:], raw
        assert manifest[path] == (n_event + n_reject, n_event, n_reject), path
        assert n_event + n_reject + sum(classify(r, LANDING).kind == "blank" for r in lines) \
            == len(lines)
        expected_events += n_event
        expected_rejects += n_reject
    # Every stored row comes from a line of a file: nothing made up, nothing lost.
    assert len(loaded) == expected_events and len(rejected) == expected_rejects
    assert (report.events, report.rejected, report.files_loaded) == \
        (expected_events, expected_rejects, len(written))
    assert report.lines + blanks == sum(len(lines) for lines in written.values())
    assert set(r for r, _ in rejected.values()) <= set(REJECT_REASONS)
    assert (again.files_loaded, again.files_skipped) == (0, len(written))  # loaded once


@given(files=LANDING_FILES)
def test_every_line_is_loaded_or_rejected_duckdb(files: list[tuple[str, list[bytes], bool]]) \
        -> None:
    check_load(lambda root: parse_warehouse_url(f"duckdb:///{root}/wh.duckdb", root), files)


@settings(max_examples=max(5, settings.default.max_examples // 3))
@given(files=LANDING_FILES)
def test_every_line_is_loaded_or_rejected_into_spark_parts(
        files: list[tuple[str, list[bytes], bool]]) -> None:
    """A Spark warehouse's staging file keeps the valid events as Parquet parts: every value
    read back through its view is what Python's `json` makes of the line."""
    check_load(spark_staging, files)


@pytest.mark.postgres
@settings(max_examples=max(5, settings.default.max_examples // 3))
@given(files=LANDING_FILES)
def test_every_line_is_loaded_or_rejected_postgres(make_pg_database: Any,
                                                  files: list[tuple[str, list[bytes], bool]]) \
        -> None:
    """The PostgreSQL warehouse takes the Arrow path: same property, fewer examples."""
    db = make_pg_database("crm_badin")

    def url(root: Path) -> WarehouseTarget:
        _reset_pg(db)  # an empty warehouse per example
        return parse_warehouse_url(pg_url(db, driver="postgresql"), root)

    check_load(url, files, nul_replaced=True)


def _reset_pg(db: str) -> None:
    import psycopg

    with psycopg.connect(pg_url(db, driver="postgresql"), autocommit=True) as conn:
        conn.execute("drop schema if exists raw cascade")
