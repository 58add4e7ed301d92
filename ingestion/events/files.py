"""Loading campaign event files exactly once (docs/contract.md section 3).

`<events>/<YYYY-MM-DD>/*.jsonl[.gz]` → `raw.campaign_events` (every valid delivered line,
duplicates kept: the dbt layer keeps the first landed copy of each (source, id), which stays
right even when an earlier-dated folder arrives late), `raw.rejected_events` (file, line, reason,
raw text) and `raw.event_files` (the manifest: path, size, checksum).

Lines are split by Arrow's kernels and parsed and validated by DuckDB's JSON functions in one
vectorised query per batch of files (several landing folders, bounded in bytes); no Python runs
per line. One warehouse transaction per load: a crash leaves the old state or the new, never
half of one.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
import zlib
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from crm_core.errors import CrmError, first_line
from crm_core.landing import is_event_file, landing_folders
from ingestion.warehouse import Warehouse, duckdb_landing

RAW = "raw"

#: Reason codes of `raw.rejected_events`, in the order they are checked.
REJECT_REASONS: dict[str, str] = {
    "invalid_json": "the line is not valid JSON",
    "not_an_object": "valid JSON, but not a JSON object",
    "missing_specversion": "no `specversion`",
    "missing_id": "no `id`",
    "missing_source": "no `source`",
    "missing_type": "no `type`",
    "missing_time": "no `time`",
    "unknown_type": "`type` is not one of the six event types",
    "unparseable_time": "`time` is not an RFC 3339 timestamp (with `Z` or a `+hh:mm` offset)",
    "time_after_landing": "`time` is later than the end of the day after the landing date (UTC)",
    "missing_campaign_id": "an erp.campaign.* event without an integer `data.campaign_id`",
    "missing_lead_id": "erp.lead.qualified without an integer `data.lead_id`",
    "missing_deal_id": "erp.opportunity.won without an integer `data.deal_id`",
    "non_numeric_revenue": "`data.revenue` is not a number (or numeric string)",
    "negative_revenue": "`data.revenue` is below zero",
    "truncated_gzip": "the unreadable tail of a corrupt or truncated .gz file",
}

EVENT_TYPES = ("erp.campaign.impression", "erp.campaign.click", "erp.campaign.conversion",
               "erp.campaign.sent", "erp.lead.qualified", "erp.opportunity.won")

EVENTS_SCHEMA = pa.schema([
    ("event_source", pa.string()), ("event_id", pa.string()), ("event_type", pa.string()),
    ("event_time", pa.timestamp("us", tz="UTC")), ("campaign_id", pa.int64()),
    ("contact_id", pa.int64()), ("lead_id", pa.int64()), ("deal_id", pa.int64()),
    ("revenue", pa.decimal128(15, 2)), ("business_id", pa.int64()), ("branch_id", pa.int64()),
    ("landing_date", pa.date32()), ("file_path", pa.string()), ("line_number", pa.int64()),
    ("load_id", pa.string()),
])
REJECTED_SCHEMA = pa.schema([
    ("file_path", pa.string()), ("line_number", pa.int64()), ("reason", pa.string()),
    ("raw_text", pa.string()), ("landing_date", pa.date32()), ("load_id", pa.string()),
])
MANIFEST_SCHEMA = pa.schema([
    ("file_path", pa.string()), ("landing_date", pa.date32()), ("size_bytes", pa.int64()),
    ("checksum", pa.string()), ("loaded_at", pa.timestamp("us", tz="UTC")),
    ("load_id", pa.string()), ("lines", pa.int64()), ("events", pa.int64()),
    ("rejected", pa.int64()), ("replaced", pa.bool_()),
])
TABLES = {"campaign_events": EVENTS_SCHEMA, "rejected_events": REJECTED_SCHEMA,
          "event_files": MANIFEST_SCHEMA}


@dataclass
class EventLoadReport:
    """What one load did."""

    load_id: str = ""
    files_loaded: int = 0
    files_replaced: int = 0
    files_skipped: int = 0
    lines: int = 0
    events: int = 0
    rejected: int = 0
    landing_dates: list[date] = field(default_factory=list)

    def __str__(self) -> str:
        return (f"{self.files_loaded} files loaded ({self.files_replaced} replaced), "
                f"{self.files_skipped} unchanged; {self.events} events, "
                f"{self.rejected} rejected lines")


@dataclass(frozen=True)
class LandingFile:
    """An event file found in a landing folder (its size from the file system)."""

    path: Path
    rel_path: str
    landing_date: date
    size: int


@dataclass(frozen=True)
class ReadFile:
    """A landing file's lines, with the size and checksum of the very bytes they came from
    (what the manifest records, so a file rewritten mid-load is caught at the next run)."""

    file: LandingFile
    lines: pa.Table
    size: int
    checksum: str


def ensure_tables(wh: Warehouse) -> None:
    """Create the three tables when missing, so dbt always finds its sources."""
    for name, schema in TABLES.items():
        if not wh.table_exists(RAW, name):
            wh.create_table(RAW, name, schema)


def discover(events_path: Path, as_of: date,
             landing_dates: Sequence[date] | None = None) -> list[LandingFile]:
    """Every `.jsonl`/`.jsonl.gz` file in landing folders dated on or before `as_of`."""
    if not events_path.exists():
        return []
    if not events_path.is_dir():
        raise CrmError(f"CRM_EVENTS_PATH {events_path} is not a folder")
    wanted = set(landing_dates) if landing_dates is not None else None
    found = []
    try:
        for landing, folder in landing_folders(events_path):
            if landing > as_of or (wanted is not None and landing not in wanted):
                continue
            for path in sorted(folder.iterdir()):
                if not is_event_file(path):
                    continue  # _SUCCESS markers, notes
                if not path.is_file():
                    raise CrmError(f"event file {path} is not a readable file")
                found.append(LandingFile(path, f"{folder.name}/{path.name}", landing,
                                         path.stat().st_size))
    except OSError as exc:
        raise CrmError(f"event files under {events_path} cannot be read: {first_line(exc)}") \
            from None
    return found


def load_events(events_path: Path, warehouse: Warehouse, *, as_of: date,
                landing_dates: Sequence[date] | None = None) -> EventLoadReport:
    """Load every new or changed landing file dated on or before `as_of`."""
    report = EventLoadReport(load_id=uuid.uuid4().hex)
    files = discover(events_path, as_of, landing_dates)
    with warehouse.transaction():
        ensure_tables(warehouse)
        known = {path: (size, checksum) for path, size, checksum in warehouse.fetchall(
            f"select file_path, size_bytes, checksum from {RAW}.event_files")}
        # Only a file the manifest knows at the same size needs its checksum now; every other
        # file is new or changed, and is hashed from the bytes read to load it (read once).
        same_size = [f for f in files if known.get(f.rel_path, (None,))[0] == f.size]
        with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
            sums = dict(zip([f.rel_path for f in same_size],
                            pool.map(_file_checksum, same_size), strict=True))
        todo = [f for f in files if known.get(f.rel_path) != (f.size, sums.get(f.rel_path))]
        report.files_skipped = len(files) - len(todo)
        if not todo:
            return report
        replaced = [f.rel_path for f in todo if f.rel_path in known]
        for table in TABLES:
            for path in replaced:
                warehouse.execute(f"delete from {RAW}.{table} where file_path = ?", (path,))
        report.files_replaced = len(replaced)
        # A DuckDB warehouse parses in its own connection (no copy); otherwise a scratch one.
        own = getattr(warehouse, "con", None)
        parser = own if isinstance(own, duckdb.DuckDBPyConnection) else duckdb.connect()
        parser.execute("set TimeZone = 'UTC'")
        try:
            with duckdb_landing(parser) if parser is own else nullcontext():
                _load_files(parser, warehouse, todo, report, set(replaced))
        finally:
            if parser is not own:
                parser.close()
        report.landing_dates = sorted({f.landing_date for f in todo})
    return report


#: Bytes of event lines parsed in one vectorised pass: several landing folders at
#: once keeps the per-statement overheads small, and the bound keeps memory flat however long
#: the history is. Peak memory is dominated by the load's one transaction, not by the batch,
#: so batches this large cost no memory and save per-batch work (BENCHMARKS.md).
BATCH_BYTES = 512 << 20
#: What a compressed file is taken to expand to, for that bound (JSON lines compress ~8x).
GZIP_EXPANSION = 8
#: Threads reading files: decompression, hashing and Arrow's splitting release the GIL, so
#: the next batch is read while DuckDB parses the current one.
READ_THREADS = 2


def _batches(files: list[LandingFile]) -> list[list[LandingFile]]:
    """Consecutive groups of files (landing order) of at most `BATCH_BYTES` each."""
    batches: list[list[LandingFile]] = []
    size = 0
    for f in sorted(files, key=lambda f: (f.landing_date, f.rel_path)):
        weight = f.size * (GZIP_EXPANSION if f.path.name.endswith(".gz") else 1)
        if not batches or size + weight > BATCH_BYTES:
            batches.append([])
            size = 0
        batches[-1].append(f)
        size += weight
    return batches


def _load_files(parser: duckdb.DuckDBPyConnection, wh: Warehouse, files: list[LandingFile],
                report: EventLoadReport, replaced: set[str]) -> None:
    """Load `files` batch by batch, reading batch i+1 in threads while batch i is parsed."""
    batches = _batches(files)
    with ThreadPoolExecutor(max_workers=READ_THREADS) as pool:
        pending = [pool.submit(_read_file, f) for f in batches[0]]
        for i in range(len(batches)):
            read = [future.result() for future in pending]
            pending = [pool.submit(_read_file, f) for f in batches[i + 1]] \
                if i + 1 < len(batches) else []
            _load_batch(parser, wh, read, report, replaced)


EVENT_COLUMNS = ", ".join(EVENTS_SCHEMA.names[:-1])
REJECTED_COLUMNS = "file_path, line_number, reason, raw_text, landing_date"


def _load_batch(parser: duckdb.DuckDBPyConnection, wh: Warehouse, files: list[ReadFile],
                report: EventLoadReport, replaced: set[str]) -> None:
    """Parse a batch's lines into the temp table `parsed`, then move its valid and rejected
    lines into the warehouse: by SQL when `parser` is the DuckDB warehouse itself, through
    Arrow batches otherwise (PostgreSQL)."""
    parser.register("lines", pa.concat_tables([f.lines for f in files]))
    try:
        parser.execute(f"create or replace temp table parsed as {PARSE_SQL}")
    finally:
        parser.unregister("lines")
    load_id = report.load_id
    valid_sql = f"select {EVENT_COLUMNS}, ? as load_id from parsed where reason is null"
    rejected_sql = (f"select {REJECTED_COLUMNS}, ? as load_id from parsed "
                    "where reason is not null")
    if parser is getattr(wh, "con", None):
        parser.execute(f"insert into {RAW}.campaign_events {valid_sql}", [load_id])
        parser.execute(f"insert into {RAW}.rejected_events {rejected_sql}", [load_id])
    else:
        wh.append(RAW, "campaign_events", _without_nul(parser.execute(valid_sql, [load_id])
                  .fetch_arrow_table().cast(EVENTS_SCHEMA)))
        wh.append(RAW, "rejected_events", _without_nul(parser.execute(rejected_sql, [load_id])
                  .fetch_arrow_table().cast(REJECTED_SCHEMA)))
    per_file = {path: (n_valid, n_bad) for path, n_valid, n_bad in parser.execute(
        "select file_path, count(*) - count(reason), count(reason) from parsed group by 1"
    ).fetchall()}  # one row per file
    parser.execute("drop table parsed")
    now = datetime.now(UTC)
    manifest = pa.Table.from_pylist([{
        "file_path": f.file.rel_path, "landing_date": f.file.landing_date, "size_bytes": f.size,
        "checksum": f.checksum, "loaded_at": now, "load_id": load_id,
        "lines": sum(per_file.get(f.file.rel_path, (0, 0))),
        "events": per_file.get(f.file.rel_path, (0, 0))[0],
        "rejected": per_file.get(f.file.rel_path, (0, 0))[1],
        "replaced": f.file.rel_path in replaced}
        for f in files], schema=MANIFEST_SCHEMA)
    wh.append(RAW, "event_files", manifest)
    report.files_loaded += len(files)
    for n_valid, n_bad in per_file.values():
        report.lines += n_valid + n_bad
        report.events += n_valid
        report.rejected += n_bad


def _without_nul(table: pa.Table) -> pa.Table:
    """PostgreSQL text cannot hold NUL (a raw byte in a rejected line, or `\\u0000` in a
    string value): U+FFFD stands for it there, so one such line never fails the whole load."""
    for i, name in enumerate(table.column_names):
        if pa.types.is_string(table.schema.field(i).type):
            table = table.set_column(i, name, pc.replace_substring(table.column(i), "\x00",
                                                                  "\ufffd"))
    return table


def _decompress(data: bytes) -> tuple[bytes, bool]:
    """Everything a gzip stream yields before it breaks; True when it broke (or ended early)."""
    out, truncated = [], False
    while data:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
        try:
            out.append(d.decompress(data))
            out.append(d.flush())
        except zlib.error:
            truncated = True
            break
        if not d.eof:
            truncated = True
            break
        data = d.unused_data  # a further gzip member, if any
    return b"".join(out), truncated


def _read_bytes(f: LandingFile) -> bytes:
    try:
        return f.path.read_bytes()
    except OSError as exc:
        raise CrmError(f"event file {f.rel_path} cannot be read: {first_line(exc)}") from None


def _file_checksum(f: LandingFile) -> str:
    return hashlib.sha256(_read_bytes(f)).hexdigest()


def _read_file(f: LandingFile) -> ReadFile:
    """Read a file once: its checksum, and its lines."""
    data = _read_bytes(f)
    return ReadFile(f, _split_lines(f, data), len(data), hashlib.sha256(data).hexdigest())


def _split_lines(f: LandingFile, data: bytes) -> pa.Table:
    """The file's lines as (file_path, landing_date, line_number, line). A truncated .gz gets
    one extra pseudo-line carrying the reason `truncated_gzip` and the partial tail."""
    truncated = False
    if f.path.name.endswith(".gz"):
        data, truncated = _decompress(data)
    bad_utf8: np.ndarray | None = None
    lines = _utf8_lines(data)
    if lines is None:
        # Invalid UTF-8 somewhere (rare: Python per line is fine here). JSON text is UTF-8, so
        # such a line is rejected as invalid JSON, even when the bad bytes sit inside a string
        # value that would otherwise parse; its raw text keeps U+FFFD for each bad byte.
        raw = pc.split_pattern(pa.array([data], pa.large_binary()), b"\n").flatten().to_pylist()
        bad_utf8 = np.array([not _is_utf8(p) for p in raw], dtype=bool)
        lines = pa.array([p.decode("utf-8", errors="replace") for p in raw], pa.string())
    n = len(lines)
    if n and not truncated and lines[n - 1].as_py() == "":
        lines, n = lines.slice(0, n - 1), n - 1  # the empty piece after the last newline
    bad = np.zeros(n, dtype=bool) if bad_utf8 is None else bad_utf8[:n]
    # A truncated .gz: the last piece is the partial tail, kept as the `truncated_gzip` record
    # (empty when the stream broke exactly at a line end: the record still says data was lost).
    flags = np.zeros(n, dtype=bool)
    if truncated and n == 0:
        lines, n, flags = pa.array([""], pa.string()), 1, np.ones(1, dtype=bool)
        bad = np.zeros(1, dtype=bool)
    elif truncated:
        flags[-1] = True
    return pa.table({
        "file_path": pa.repeat(pa.scalar(f.rel_path, pa.string()), n),
        "landing_date": pa.repeat(pa.scalar(f.landing_date, pa.date32()), n),
        "line_number": pa.array(np.arange(1, n + 1, dtype=np.int64)),
        "line": lines,
        "truncated": pa.array(flags),
        "bad_utf8": pa.array(bad),
    })


def _utf8_lines(data: bytes) -> pa.StringArray | None:
    """The pieces of `data` between newlines (the last one after the final newline, maybe
    empty) as one Arrow string array, or None when `data` is not valid UTF-8.

    Built from buffers, not by a split kernel: numpy finds the newlines, the bytes without them
    become the array's data and the newline positions its offsets: no Python object per
    line, no split kernel and cast, one copy of the file."""
    if len(data) >= 2**31:  # beyond 32-bit offsets: Arrow's kernels split it
        pieces = pc.split_pattern(pa.array([data], pa.large_binary()), b"\n").flatten()
        try:
            return pieces.cast(pa.large_string()).cast(pa.string())
        except pa.ArrowInvalid:
            return None
    buf = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(buf == 10)
    k = len(newlines)
    # Piece j ends at its newline's position minus the j newlines removed before it.
    offsets = np.empty(k + 2, dtype=np.int32)
    offsets[0] = 0
    offsets[1:k + 1] = newlines - np.arange(k)
    offsets[k + 1] = len(buf) - k
    body = buf[buf != 10] if k else buf
    lines = pa.StringArray.from_buffers(k + 1, pa.py_buffer(offsets), pa.py_buffer(body))
    try:
        lines.validate(full=True)  # UTF-8 included
    except pa.ArrowInvalid:
        return None
    return lines


def _is_utf8(data: bytes) -> bool:
    try:
        data.decode("utf-8")
    except UnicodeDecodeError:
        return False
    return True


#: One vectorised pass: parse, validate, pick the reason of the first failed check.
PARSE_SQL = """
with extracted as (
    -- One JSON parse per line into a struct of text fields: `try` turns invalid JSON into NULL;
    -- numbers come out as their text (checked and cast below).
    select
        file_path, landing_date, line_number, line, truncated,
        case when not bad_utf8 then try(json_transform(line, '{event_struct}')) end as v
    from lines
    -- Blank lines (JSON white space only) carry no event. The copy `trim` makes is paid
    -- only by lines that start with white space.
    where truncated or (line <> '' and (ascii(line) not in (32, 9, 13)
                                        or trim(line, {ws}) <> ''))
),
fields as (
    select
        file_path, landing_date, line_number, line, truncated,
        -- a bare `null` is valid JSON (not an object) that transforms to NULL too
        -- (a CASE, so the trim's copy is paid only by lines that failed to transform)
        case when v is null then trim(line, {ws}) <> 'null' else false end as invalid_json,
        -- valid JSON that does not start with '{' is an array or a scalar
        (not starts_with(line, '{') and left(ltrim(line, {ws}), 1) <> '{') as not_an_object,
        v.specversion as specversion,
        v.id as event_id,
        v.source as event_source,
        v.type as event_type,
        v.time as time_text,
        -- RFC 3339 needs an offset: a time without one (read as UTC by a bare cast) could land
        -- on the wrong date, so it is unparseable
        case when right(v.time, 1) in ('Z', 'z')
                  or (substr(v.time, -6, 1) in ('+', '-') and substr(v.time, -3, 1) = ':')
             then try_cast(v.time as timestamptz) end as event_time,
        {int:v.data.campaign_id} as campaign_id,
        {int:v.data.contact_id} as contact_id,
        {int:v.data.lead_id} as lead_id,
        {int:v.data.deal_id} as deal_id,
        {int:v.data.business_id} as business_id,
        {int:v.data.branch_id} as branch_id,
        v.data.revenue as revenue_text,
        try_cast(v.data.revenue as decimal(15, 2)) as revenue
    from extracted
),
checked as (
    select *,
        case
            when truncated then 'truncated_gzip'
            when invalid_json then 'invalid_json'
            when not_an_object then 'not_an_object'
            when specversion is null then 'missing_specversion'
            when event_id is null then 'missing_id'
            when event_source is null then 'missing_source'
            when event_type is null then 'missing_type'
            when time_text is null then 'missing_time'
            when event_type not in ({event_types}) then 'unknown_type'
            when event_time is null then 'unparseable_time'
            when event_time >= cast(landing_date + interval 2 day as timestamptz)
                then 'time_after_landing'
            when event_type like 'erp.campaign.%' and campaign_id is null
                then 'missing_campaign_id'
            when event_type = 'erp.lead.qualified' and lead_id is null then 'missing_lead_id'
            when event_type = 'erp.opportunity.won' and deal_id is null then 'missing_deal_id'
            when revenue_text is not null and revenue is null then 'non_numeric_revenue'
            when revenue < 0 then 'negative_revenue'
        end as reason
    from fields
)
select
    event_source, event_id, event_type, event_time, campaign_id, contact_id, lead_id, deal_id,
    revenue, business_id, branch_id, landing_date, file_path, line_number,
    -- the raw text is kept for rejected lines only (no copy of every good line)
    reason, case when reason is not null then line end as raw_text
from checked
"""
#: The fields read from each line, all as text: `json_transform` then never fails on a type.
EVENT_STRUCT = json.dumps({
    "specversion": "VARCHAR", "id": "VARCHAR", "source": "VARCHAR", "type": "VARCHAR",
    "time": "VARCHAR", "data": {name: "VARCHAR" for name in (
        "campaign_id", "contact_id", "lead_id", "deal_id", "business_id", "branch_id",
        "revenue")},
})
PARSE_SQL = (PARSE_SQL.replace("{event_types}", ", ".join(f"'{t}'" for t in EVENT_TYPES))
             .replace("{event_struct}", EVENT_STRUCT)
             .replace("{ws}", "chr(32) || chr(9) || chr(13)"))  # JSON white space in a line
# An id is an integer literal (JSON integer, or a string of one) in BIGINT range: the text must
# read back unchanged, so 7.5 (which a bare cast rounds to 8), "0x10", " 7" or 1e3 never
# become some other campaign's id.
PARSE_SQL = re.sub(r"\{int:([a-z_.]+)\}",
                   r"case when cast(try_cast(\1 as bigint) as varchar) = \1 "
                   r"then try_cast(\1 as bigint) end", PARSE_SQL)
