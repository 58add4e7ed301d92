"""Loading campaign event files exactly once (docs/contract.md section 3).

`<events>/<YYYY-MM-DD>/*.jsonl[.gz]` → `raw.campaign_events` (every valid delivered line,
duplicates kept: the dbt layer keeps the first landed copy of each (source, id), which stays
right even when an earlier-dated folder arrives late), `raw.rejected_events` (file, line, reason,
raw text) and `raw.event_files` (the manifest: path, size, checksum).

Files are read as streams, block by block (a `.gz` is inflated as it is read), so memory is
bounded by the batch size whatever a file's compression ratio; a line longer than
`max_line_bytes` is rejected as `line_too_long` without ever being held whole, and a rejected
line keeps only its first `REJECTED_TEXT_CHARS` characters. Entries that lead outside the
landing folder are never read (crm_core/landing.py).

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
from collections.abc import Callable, Iterator, Sequence
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
from crm_core.landing import (
    MAX_LINE_BYTES,
    OUTSIDE_REASON,
    LandingEntry,
    landing_entries,
    scan_landing,
)
from ingestion.events.parts import EVENTS_VIEW, EventParts
from ingestion.warehouse import Warehouse, duckdb_landing

RAW = "raw"

#: Reason codes of `raw.rejected_events`, in the order they are checked.
REJECT_REASONS: dict[str, str] = {
    "line_too_long": "the line is longer than CRM_MAX_EVENT_LINE_BYTES (its start is kept)",
    "invalid_json": "the line is not valid JSON",
    "not_an_object": "valid JSON, but not a JSON object",
    "missing_specversion": "no `specversion`",
    "missing_id": "no `id`",
    "missing_source": "no `source`",
    "missing_type": "no `type`",
    "missing_time": "no `time`",
    "unknown_type": "`type` is not one of the six event types",
    "unparseable_time": "`time` is not an RFC 3339 timestamp (`YYYY-MM-DDThh:mm:ss[.f]` with "
                        "`Z` or a `+hh:mm` offset within ±23:59)",
    "time_before_1970": "`time` is before 1970-01-01T00:00:00Z",
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
    ("rejected", pa.int64()), ("replaced", pa.bool_()), ("skipped", pa.string()),
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
    #: Vectorised parse passes (one per batch of at most `BATCH_BYTES` of lines).
    batches: int = 0
    landing_dates: list[date] = field(default_factory=list)
    #: One line per landing entry a person should look at (a folder name that is not a date,
    #: a symlink out of the landing folder): printed once per run, never an error.
    warnings: list[str] = field(default_factory=list)

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


@dataclass
class ReadFile:
    """A landing file once read to its end: the size and checksum of the very bytes its lines
    came from (what the manifest records, so a file rewritten mid-load is caught at the next
    run)."""

    file: LandingFile
    size: int = 0
    checksum: str = ""


#: Characters of a rejected line kept in `raw.rejected_events.raw_text`: enough to see what
#: the line was, never a whole hostile payload.
REJECTED_TEXT_CHARS = 4096


def ensure_tables(wh: Warehouse, parts: EventParts | None = None) -> None:
    """Create the three tables when missing, so dbt always finds its sources; add the
    manifest's `skipped` column to a manifest created before it existed. With `parts` (a Spark
    warehouse's staging file), `campaign_events` is the view over its Parquet parts."""
    for name, schema in TABLES.items():
        if parts is not None and name == EVENTS_VIEW:
            parts.ensure()
        elif not wh.table_exists(RAW, name):
            wh.create_table(RAW, name, schema)
    wh.execute(f"alter table {RAW}.event_files add column if not exists skipped varchar")


def _discover(events_path: Path, as_of: date, landing_dates: Sequence[date] | None
              ) -> tuple[list[LandingFile], list[tuple[str, date | None]], list[str]]:
    """The loadable files, the entries never to be read (relative path, landing date when it
    has one) and the warnings of the landing folder's scan."""
    scan = scan_landing(events_path)
    wanted = set(landing_dates) if landing_dates is not None else None
    folders = {day: path for day, path in scan.folders.items()
               if day <= as_of and (wanted is None or day in wanted)}
    outside: list[tuple[str, date | None]] = []
    for name in scan.outside:
        outside.append((name, None))
    found = []
    try:
        entry: LandingEntry
        for entry in landing_entries(events_path, folders):
            if entry.outside:
                outside.append((entry.rel_path, entry.landing_date))
                continue
            if not entry.path.is_file():
                raise CrmError(f"event file {entry.path} is not a readable file")
            found.append(LandingFile(entry.path, entry.rel_path, entry.landing_date,
                                     entry.path.stat().st_size))
    except OSError as exc:
        raise CrmError(f"event files under {events_path} cannot be read: {first_line(exc)}") \
            from None
    warnings = scan.warnings() + [f"landing entry {rel!r} leads outside CRM_EVENTS_PATH: not read"
                                  for rel, day in outside if day is not None]
    return found, outside, warnings


def discover(events_path: Path, as_of: date,
             landing_dates: Sequence[date] | None = None) -> list[LandingFile]:
    """Every `.jsonl`/`.jsonl.gz` file in landing folders dated on or before `as_of` that
    stays inside `events_path`."""
    return _discover(events_path, as_of, landing_dates)[0]


def load_events(events_path: Path, warehouse: Warehouse, *, as_of: date,
                landing_dates: Sequence[date] | None = None,
                max_line_bytes: int = MAX_LINE_BYTES,
                on_files: Callable[[int, int], None] | None = None) -> EventLoadReport:
    """Load every new or changed landing file dated on or before `as_of`.
    `on_files(done, total)` is called as batches of files load (a progress display)."""
    report = EventLoadReport(load_id=uuid.uuid4().hex)
    files, outside, report.warnings = _discover(events_path, as_of, landing_dates)
    parts = _event_parts(warehouse)
    with warehouse.transaction():
        ensure_tables(warehouse, parts)
        if parts is not None:
            parts.sweep()  # what a failed load left
            parts.sync()  # a staging file's events table moved into parts
        known = {path: (size, checksum) for path, size, checksum in warehouse.fetchall(
            f"select file_path, size_bytes, checksum from {RAW}.event_files")}
        _record_outside(warehouse, [entry for entry in outside if entry[0] not in known],
                        report.load_id)
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
            if parts is not None and table == EVENTS_VIEW:
                parts.drop_files(replaced, report.load_id)
                continue
            for path in replaced:
                warehouse.execute(f"delete from {RAW}.{table} where file_path = ?", (path,))
        report.files_replaced = len(replaced)
        # A DuckDB warehouse parses in its own connection (no copy); otherwise a scratch one.
        own = getattr(warehouse, "con", None)
        parser = own if isinstance(own, duckdb.DuckDBPyConnection) else duckdb.connect()
        parser.execute("set TimeZone = 'UTC'")
        try:
            with duckdb_landing(parser) if parser is own else nullcontext():
                _load_files(parser, warehouse, todo, report, set(replaced), max_line_bytes,
                            on_files, parts)
        finally:
            if parser is not own:
                parser.close()
        if parts is not None:
            parts.sync()
            parts.refresh_view()
        report.landing_dates = sorted({f.landing_date for f in todo})
    if parts is not None:
        try:
            parts.sweep()  # the parts a replaced file superseded
        except CrmError as exc:  # the load has committed; the next one sweeps again
            report.warnings.append(str(exc))
    return report


def _event_parts(wh: Warehouse) -> EventParts | None:
    """The Parquet parts that hold a Spark warehouse's campaign events (its staging file's
    folder, `WarehouseTarget.event_parts`); None for a warehouse that stores them itself."""
    folder = wh.target.event_parts
    if folder is None:
        return None
    con = getattr(wh, "con", None)
    if not isinstance(con, duckdb.DuckDBPyConnection):
        raise CrmError(f"event parts ({folder}) belong to a DuckDB staging file, not to "
                       f"{wh.target.describe()}")
    return EventParts(con, folder, RAW, EVENTS_SCHEMA)


def _record_outside(wh: Warehouse, entries: list[tuple[str, date | None]], load_id: str) -> None:
    """A manifest row (no size, no checksum, `skipped` says why) for each entry that leads
    outside the landing folder, once: what was left unread stays on record."""
    if not entries:
        return
    now = datetime.now(UTC)
    wh.append(RAW, "event_files", pa.Table.from_pylist([{
        "file_path": rel, "landing_date": day, "size_bytes": None, "checksum": None,
        "loaded_at": now, "load_id": load_id, "lines": 0, "events": 0, "rejected": 0,
        "replaced": False, "skipped": OUTSIDE_REASON} for rel, day in entries],
        schema=MANIFEST_SCHEMA))


#: Bytes of event lines parsed in one vectorised pass: several landing folders at
#: once keeps the per-statement overheads small, and the bound keeps memory flat however long
#: the history is. Peak memory is dominated by the load's one transaction, not by the batch,
#: so batches this large cost no memory and save per-batch work (BENCHMARKS.md).
BATCH_BYTES = 512 << 20
#: Bytes of (inflated) text taken from a file at a time: the unit a batch is built from, so a
#: batch never exceeds `BATCH_BYTES` by more than one block whatever a file expands to.
READ_BLOCK = 16 << 20
#: Compressed bytes fed to the inflater at a time.
RAW_BLOCK = 1 << 20
#: Threads: one builds the next batch (reading, hashing and inflating release the GIL) while
#: DuckDB parses the current one; the checksums of unchanged candidates use both.
READ_THREADS = 2


@dataclass
class _Batch:
    """Line tables of at most about `BATCH_BYTES`, and the files whose last line is in it (or
    in an earlier batch): their manifest rows go in with this batch."""

    tables: list[pa.Table] = field(default_factory=list)
    done: list[ReadFile] = field(default_factory=list)
    size: int = 0


def _read_batches(files: list[LandingFile], max_line_bytes: int) -> Iterator[_Batch]:
    """The files' lines in landing order, cut into batches by bytes of text (not by file)."""
    batch = _Batch()
    for f in sorted(files, key=lambda f: (f.landing_date, f.rel_path)):
        read = ReadFile(f)
        for table in _file_tables(read, max_line_bytes):
            batch.tables.append(table)
            batch.size += table.column("line").nbytes
            if batch.size >= BATCH_BYTES:
                yield batch
                batch = _Batch()
        batch.done.append(read)
    if batch.tables or batch.done:
        yield batch


def _load_files(parser: duckdb.DuckDBPyConnection, wh: Warehouse, files: list[LandingFile],
                report: EventLoadReport, replaced: set[str], max_line_bytes: int,
                on_files: Callable[[int, int], None] | None = None,
                parts: EventParts | None = None) -> None:
    """Load `files` batch by batch, building batch i+1 in a thread while batch i is parsed:
    at most two batches are in memory at once. `on_files(done, total)` counts the files
    whose last line has been loaded."""
    batches = _read_batches(files, max_line_bytes)
    counts: dict[str, list[int]] = {}
    done = 0
    with ThreadPoolExecutor(max_workers=1) as pool:
        pending = pool.submit(next, batches, None)
        while (batch := pending.result()) is not None:
            pending = pool.submit(next, batches, None)
            _load_batch(parser, wh, batch, report, replaced, counts, parts)
            done += len(batch.done)
            if on_files is not None:
                on_files(done, len(files))


EVENT_COLUMNS = ", ".join(EVENTS_SCHEMA.names[:-1])
REJECTED_COLUMNS = "file_path, line_number, reason, raw_text, landing_date"


def _load_batch(parser: duckdb.DuckDBPyConnection, wh: Warehouse, batch: _Batch,
                report: EventLoadReport, replaced: set[str],
                counts: dict[str, list[int]], parts: EventParts | None = None) -> None:
    """Parse a batch's lines into the temp table `parsed`, then move its valid and rejected
    lines into the warehouse: by SQL when `parser` is the DuckDB warehouse itself (the valid
    ones into a Parquet part when `parts` is given), through Arrow batches otherwise
    (PostgreSQL). `counts` carries each file's (valid, rejected) lines across batches; the
    files finished by this batch get their manifest rows."""
    load_id = report.load_id
    if batch.tables:
        report.batches += 1
        parser.register("lines", pa.concat_tables(batch.tables))
        try:
            parser.execute(f"create or replace temp table parsed as {PARSE_SQL}")
        finally:
            parser.unregister("lines")
        valid_rows = 0
        for path, n_valid, n_bad in parser.execute(
                "select file_path, count(*) - count(reason), count(reason) from parsed "
                "group by 1").fetchall():  # one row per file
            total = counts.setdefault(path, [0, 0])
            total[0] += n_valid
            total[1] += n_bad
            valid_rows += n_valid
            report.lines += n_valid + n_bad
            report.events += n_valid
            report.rejected += n_bad
        valid_sql = f"select {EVENT_COLUMNS}, ? as load_id from parsed where reason is null"
        rejected_sql = (f"select {REJECTED_COLUMNS}, ? as load_id from parsed "
                        "where reason is not null")
        if parser is getattr(wh, "con", None):
            if parts is not None:
                parts.add(valid_sql, [load_id], load_id, report.batches, valid_rows)
            else:
                parser.execute(f"insert into {RAW}.campaign_events {valid_sql}", [load_id])
            parser.execute(f"insert into {RAW}.rejected_events {rejected_sql}", [load_id])
        else:
            wh.append(RAW, "campaign_events", _without_nul(parser.execute(valid_sql, [load_id])
                      .fetch_arrow_table().cast(EVENTS_SCHEMA)))
            wh.append(RAW, "rejected_events", _without_nul(parser.execute(
                rejected_sql, [load_id]).fetch_arrow_table().cast(REJECTED_SCHEMA)))
        parser.execute("drop table parsed")
    now = datetime.now(UTC)
    manifest = pa.Table.from_pylist([{
        "file_path": f.file.rel_path, "landing_date": f.file.landing_date, "size_bytes": f.size,
        "checksum": f.checksum, "loaded_at": now, "load_id": load_id,
        "lines": sum(counts.get(f.file.rel_path, (0, 0))),
        "events": counts.get(f.file.rel_path, (0, 0))[0],
        "rejected": counts.get(f.file.rel_path, (0, 0))[1],
        "replaced": f.file.rel_path in replaced, "skipped": None}
        for f in batch.done], schema=MANIFEST_SCHEMA)
    wh.append(RAW, "event_files", manifest)
    report.files_loaded += len(batch.done)


def _without_nul(table: pa.Table) -> pa.Table:
    """PostgreSQL text cannot hold NUL (a raw byte in a rejected line, or `\\u0000` in a
    string value): U+FFFD stands for it there, so one such line never fails the whole load."""
    for i, name in enumerate(table.column_names):
        if pa.types.is_string(table.schema.field(i).type):
            table = table.set_column(i, name, pc.replace_substring(table.column(i), "\x00",
                                                                  "\ufffd"))
    return table


# --------------------------------------------------------------------------------------------
# Reading a file as a stream


def _open(f: LandingFile):  # noqa: ANN202 - a binary file object
    try:
        return f.path.open("rb")
    except OSError as exc:
        raise CrmError(f"event file {f.rel_path} cannot be read: {first_line(exc)}") from None


def _file_checksum(f: LandingFile) -> str:
    with _open(f) as handle:
        try:
            return hashlib.file_digest(handle, "sha256").hexdigest()
        except OSError as exc:
            raise CrmError(f"event file {f.rel_path} cannot be read: {first_line(exc)}") \
                from None


def _raw_blocks(read: ReadFile, block: int) -> Iterator[bytes]:
    """The file's bytes, `block` at a time; its size and SHA-256 land in `read` at the end."""
    digest = hashlib.sha256()
    with _open(read.file) as handle:
        try:
            while chunk := handle.read(block):
                digest.update(chunk)
                read.size += len(chunk)
                yield chunk
        except OSError as exc:
            raise CrmError(f"event file {read.file.rel_path} cannot be read: "
                           f"{first_line(exc)}") from None
    read.checksum = digest.hexdigest()


class _Inflated:
    """A gzip (or zlib) stream inflated `READ_BLOCK` at a time, member after member; `broken`
    once it breaks or ends early (the rest of the file is still read, for its checksum)."""

    def __init__(self, raw: Iterator[bytes]) -> None:
        self.raw = raw
        self.broken = False

    def __iter__(self) -> Iterator[bytes]:
        d = zlib.decompressobj(wbits=47)  # gzip or zlib header, auto-detected
        started = False
        for data in self.raw:
            if self.broken:
                continue  # hashing the rest
            while data or started:
                started = True
                try:
                    out = d.decompress(data, READ_BLOCK)
                except zlib.error:
                    self.broken = True
                    break
                if out:
                    yield out
                if d.eof:  # a further gzip member may follow
                    data, d, started = d.unused_data, zlib.decompressobj(wbits=47), False
                    continue
                data = d.unconsumed_tail
                if not data and len(out) < READ_BLOCK:
                    break  # input used up and no output left inside zlib: read more
        if started and not self.broken:
            try:
                tail = d.flush()
            except zlib.error:
                tail = b""
            if tail:
                yield tail
            self.broken = True  # the last member never ended


def _file_tables(read: ReadFile, max_line_bytes: int) -> Iterator[pa.Table]:
    """The file's lines as tables of (file_path, landing_date, line_number, line, truncated,
    bad_utf8, too_long, maybe_blank), block by block. A truncated .gz gets one extra pseudo-line
    carrying the reason `truncated_gzip` and the partial tail."""
    f = read.file
    if f.path.name.endswith(".gz"):
        blocks = _Inflated(_raw_blocks(read, RAW_BLOCK))
    else:
        blocks = _raw_blocks(read, READ_BLOCK)
    splitter = _LineSplitter(f, max_line_bytes)
    for block in blocks:
        yield from splitter.feed(block)
    yield from splitter.finish(truncated=isinstance(blocks, _Inflated) and blocks.broken)


class _LineSplitter:
    """Cuts a stream of blocks into numbered lines. A line that grows past `max_line_bytes`
    is not kept: only its first bytes are, until its newline arrives, so a 200 MB line costs
    one block of memory, not its size."""

    def __init__(self, f: LandingFile, max_line_bytes: int) -> None:
        self.f = f
        self.max = max_line_bytes
        self.carry = b""  # the start of a line that continues in the next block
        self.overlong: bytes | None = None  # the kept start of a too-long line
        self.numbered = 0

    def _cap_carry(self) -> None:
        if len(self.carry) > self.max:
            self.overlong, self.carry = self.carry[:REJECTED_TEXT_CHARS * 4], b""

    def feed(self, block: bytes) -> Iterator[pa.Table]:
        if self.overlong is not None:
            end = block.find(b"\n")
            if end < 0:
                return  # still inside the too-long line
            yield self._overlong_record(truncated=False)
            block = block[end + 1:]
        last = block.rfind(b"\n")
        if last < 0:
            self.carry += block
            self._cap_carry()
            return
        body = self.carry + block[:last] if self.carry else block[:last]
        self.carry = block[last + 1:]
        self._cap_carry()
        yield self._table(body)

    def finish(self, *, truncated: bool) -> Iterator[pa.Table]:
        if self.overlong is not None:
            yield self._overlong_record(truncated=truncated)
        elif truncated:
            yield self._table(self.carry, truncated_tail=True)
        elif self.carry:
            yield self._table(self.carry)

    def _overlong_record(self, *, truncated: bool) -> pa.Table:
        text = (self.overlong or b"").decode("utf-8", errors="replace")[:REJECTED_TEXT_CHARS]
        self.overlong = None
        return self._columns(pa.array([text], pa.string()), bad_utf8=np.zeros(1, dtype=bool),
                             too_long=np.ones(1, dtype=bool),
                             truncated=np.array([truncated]), maybe_blank=np.zeros(1, dtype=bool))

    def _table(self, body: bytes, *, truncated_tail: bool = False) -> pa.Table:
        """The lines of `body` (no final newline: its last piece is a whole line)."""
        bad_utf8: np.ndarray | None = None
        split = _utf8_lines(body)
        if split is not None:
            lines, lengths, first = split
            maybe_blank = (lengths == 0) | np.isin(first, JSON_SPACE)
        else:
            # Invalid UTF-8 somewhere (rare: Python per line is fine here). JSON text is UTF-8,
            # so such a line is rejected as invalid JSON, even when the bad bytes sit inside a
            # string value that would otherwise parse; its raw text keeps U+FFFD for each bad
            # byte.
            raw = pc.split_pattern(pa.array([body], pa.large_binary()), b"\n").flatten() \
                .to_pylist()
            bad_utf8 = np.array([not _is_utf8(p) for p in raw], dtype=bool)
            lines = pa.array([p.decode("utf-8", errors="replace") for p in raw], pa.string())
            lengths = np.array([len(p) for p in raw], dtype=np.int64)
            maybe_blank = np.array([p[:1] in (b"", b" ", b"\t", b"\r") for p in raw], dtype=bool)
        n = len(lines)
        too_long = lengths > self.max
        if too_long.any():
            lines = pc.if_else(pa.array(too_long),
                               pc.utf8_slice_codeunits(lines, 0, REJECTED_TEXT_CHARS), lines)
        truncated = np.zeros(n, dtype=bool)
        if truncated_tail:
            truncated[-1] = True
        return self._columns(lines, bad_utf8=np.zeros(n, dtype=bool) if bad_utf8 is None
                             else bad_utf8, too_long=too_long, truncated=truncated,
                             maybe_blank=maybe_blank)

    def _columns(self, lines: pa.Array, *, bad_utf8: np.ndarray, too_long: np.ndarray,
                 truncated: np.ndarray, maybe_blank: np.ndarray) -> pa.Table:
        n = len(lines)
        first = self.numbered + 1
        self.numbered += n
        return pa.table({
            "file_path": pa.repeat(pa.scalar(self.f.rel_path, pa.string()), n),
            "landing_date": pa.repeat(pa.scalar(self.f.landing_date, pa.date32()), n),
            "line_number": pa.array(np.arange(first, first + n, dtype=np.int64)),
            "line": lines,
            "truncated": pa.array(truncated),
            "bad_utf8": pa.array(bad_utf8),
            "too_long": pa.array(too_long),
            "maybe_blank": pa.array(maybe_blank),
        })


#: JSON's white space within a line (RFC 8259: space, tab, carriage return; the newline ends
#: the line): a line that starts with one may hold nothing else, and is checked in SQL.
JSON_SPACE = np.array([32, 9, 13], dtype=np.uint8)


def _utf8_lines(data: bytes) -> tuple[pa.StringArray, np.ndarray, np.ndarray] | None:
    """The pieces of `data` between newlines (the last one after the final newline) as one
    Arrow string array, with each piece's length in bytes and its first byte (0 for an empty
    piece), or None when `data` is not valid UTF-8. `data` is at most a block and a line, so
    32-bit offsets always do.

    Built from buffers, not by a split kernel: numpy finds the newlines, the bytes without them
    become the array's data and the newline positions its offsets: no Python object per
    line, no split kernel and cast, one copy of the block. The lengths and first bytes come
    from the same offsets (what the too-long and blank-line checks need, without a kernel)."""
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
    lengths = np.diff(offsets)
    starts = offsets[:-1]
    first = np.zeros(k + 1, dtype=np.uint8)
    nonempty = lengths > 0
    first[nonempty] = body[starts[nonempty]]
    return lines, lengths, first


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
        file_path, landing_date, line_number, line, truncated, too_long,
        case when not bad_utf8 and not too_long
             then try(json_transform(line, '{event_struct}')) end as v
    from lines
    -- Blank lines (JSON white space only) carry no event. The reader marks the lines that are
    -- empty or start with white space; only those pay for the copy `trim` makes.
    where truncated or too_long or not maybe_blank or trim(line, {ws}) <> ''
),
fields as (
    select
        file_path, landing_date, line_number, line, truncated, too_long,
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
        -- RFC 3339 to the letter: four-digit year, `T` (or a space), an offset within ±23:59
        -- (a time without one, read as UTC by a bare cast, could land on the wrong date)
        case when regexp_full_match(v.time, '{rfc3339}')
             then try_cast(upper(v.time) as timestamptz) end as event_time,
        {int:v.data.campaign_id} as campaign_id,
        {int:v.data.contact_id} as contact_id,
        {int:v.data.lead_id} as lead_id,
        {int:v.data.deal_id} as deal_id,
        {int:v.data.business_id} as business_id,
        {int:v.data.branch_id} as branch_id,
        v.data.revenue as revenue_text,
        try_cast(v.data.revenue as decimal(15, 2)) as revenue,
        -- the sign is judged before rounding to cents: -0.004 is negative, not 0.00
        try_cast(v.data.revenue as double) < 0 as revenue_negative
    from extracted
),
checked as (
    select *,
        case
            when truncated then 'truncated_gzip'
            when too_long then 'line_too_long'
            when invalid_json then 'invalid_json'
            when not_an_object then 'not_an_object'
            when specversion is null then 'missing_specversion'
            when event_id is null then 'missing_id'
            when event_source is null then 'missing_source'
            when event_type is null then 'missing_type'
            when time_text is null then 'missing_time'
            when event_type not in ({event_types}) then 'unknown_type'
            when event_time is null then 'unparseable_time'
            when event_time < cast('1970-01-01 00:00:00+00' as timestamptz)
                then 'time_before_1970'
            when event_time >= cast(landing_date + interval 2 day as timestamptz)
                then 'time_after_landing'
            when event_type like 'erp.campaign.%' and campaign_id is null
                then 'missing_campaign_id'
            when event_type = 'erp.lead.qualified' and lead_id is null then 'missing_lead_id'
            when event_type = 'erp.opportunity.won' and deal_id is null then 'missing_deal_id'
            when revenue_text is not null and revenue is null then 'non_numeric_revenue'
            when revenue_negative then 'negative_revenue'
        end as reason
    from fields
)
select
    event_source, event_id, event_type, event_time, campaign_id, contact_id, lead_id, deal_id,
    revenue, business_id, branch_id, landing_date, file_path, line_number,
    -- the raw text is kept for rejected lines only (no copy of every good line)
    reason, case when reason is not null then left(line, {prefix}) end as raw_text
from checked
"""
#: An RFC 3339 date-time (section 5.6): the year has four digits (so no sign, no year 10000),
#: seconds are required, the offset is `Z` or `±hh:mm` with hh <= 23 and mm <= 59. Whether the
#: day and time exist is left to the cast (2026-02-30 does not).
RFC3339_PATTERN = (r"\d{4}-\d{2}-\d{2}[Tt ]\d{2}:\d{2}:\d{2}(\.\d+)?"
                   r"([Zz]|[+-]([01]\d|2[0-3]):[0-5]\d)")
#: The fields read from each line, all as text: `json_transform` then never fails on a type.
EVENT_STRUCT = json.dumps({
    "specversion": "VARCHAR", "id": "VARCHAR", "source": "VARCHAR", "type": "VARCHAR",
    "time": "VARCHAR", "data": {name: "VARCHAR" for name in (
        "campaign_id", "contact_id", "lead_id", "deal_id", "business_id", "branch_id",
        "revenue")},
})
PARSE_SQL = (PARSE_SQL.replace("{event_types}", ", ".join(f"'{t}'" for t in EVENT_TYPES))
             .replace("{event_struct}", EVENT_STRUCT)
             .replace("{ws}", "chr(32) || chr(9) || chr(13)")  # JSON white space in a line
             .replace("{prefix}", str(REJECTED_TEXT_CHARS))
             .replace("{rfc3339}", RFC3339_PATTERN))
# An id is an integer literal (JSON integer, or a string of one) in BIGINT range: the text must
# read back unchanged, so 7.5 (which a bare cast rounds to 8), "0x10", " 7" or 1e3 never
# become some other campaign's id.
PARSE_SQL = re.sub(r"\{int:([a-z_.]+)\}",
                   r"case when cast(try_cast(\1 as bigint) as varchar) = \1 "
                   r"then try_cast(\1 as bigint) end", PARSE_SQL)
