"""Event loading throughput against DuckDB's bare `read_json`, in one process.

    .venv/bin/python benchmarks/bench_events.py [--scale medium] [--events PATH] [--repeat 3]

Generates the scale's event files (unless --events names a folder), then alternates: our
`load_events` (validation, rejects, manifest) into a fresh DuckDB file, and DuckDB's own
`read_json` of the same files into a table in a fresh DuckDB file. Prints MB/s of JSON (the
uncompressed size) and the ratio ours / read_json (goal: at least 0.5). Not a test.
"""

from __future__ import annotations

import argparse
import gzip
import statistics
import tempfile
import time
from datetime import date
from pathlib import Path

import duckdb

from crm_core.urls import parse_warehouse_url
from crm_demo.generator import SCALES, build_events, build_tables, write_event_files
from ingestion.events.files import load_events
from ingestion.warehouse import open_warehouse

END = date(2026, 11, 1)


def json_megabytes(root: Path) -> float:
    total = 0
    for path in root.rglob("*.jsonl*"):
        data = path.read_bytes()
        total += len(gzip.decompress(data) if path.suffix == ".gz" else data)
    return total / 1e6


def ours(events: Path, work: Path) -> float:
    target = parse_warehouse_url(f"duckdb:///{work}/ours.duckdb", work)
    (work / "ours.duckdb").unlink(missing_ok=True)
    wh = open_warehouse(target)
    started = time.perf_counter()
    report = load_events(events, wh, as_of=END)
    elapsed = time.perf_counter() - started
    wh.close()
    assert report.events > 0
    return elapsed


def baseline(events: Path, work: Path) -> float:
    (work / "base.duckdb").unlink(missing_ok=True)
    con = duckdb.connect(str(work / "base.duckdb"))
    started = time.perf_counter()
    con.execute("create table events as select * from read_json(?, format = 'newline_delimited',"
                " ignore_errors = true, union_by_name = true)",
                [[str(p) for p in sorted(events.rglob("*.jsonl*"))]])
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="medium")
    parser.add_argument("--events", type=Path, default=None)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        events = args.events
        if events is None:
            events = work / "events"
            tables = build_tables(args.scale, 90, 42, END)
            write_event_files(build_events(tables, args.scale, 42, END), events)
        mb = json_megabytes(events)
        ours_s, base_s = [], []
        for _ in range(args.repeat):
            ours_s.append(ours(events, work))
            base_s.append(baseline(events, work))
        o, b = statistics.median(ours_s), statistics.median(base_s)
        pairs = sorted(base / our for our, base in zip(ours_s, base_s, strict=True))
        print(f"JSON: {mb:,.1f} MB in {len(list(events.rglob('*.jsonl*')))} files")
        print(f"load_events : median {o:6.2f} s  {mb / o:7.1f} MB/s  (runs: "
              f"{', '.join(f'{x:.2f}' for x in ours_s)})")
        print(f"read_json   : median {b:6.2f} s  {mb / b:7.1f} MB/s  (runs: "
              f"{', '.join(f'{x:.2f}' for x in base_s)})")
        print(f"ratio (throughput ours / read_json): {b / o:.2f} of the medians; pair by "
              f"pair min {pairs[0]:.2f}, median {statistics.median(pairs):.2f}, max "
              f"{pairs[-1]:.2f}  (goal >= 0.5)")


if __name__ == "__main__":
    main()
