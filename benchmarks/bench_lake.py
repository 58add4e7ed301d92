"""The event files into a Spark warehouse's lake, against DuckDB's bare `read_json` ... `COPY
TO parquet` of the same files, in one process.

    .venv/bin/python benchmarks/bench_lake.py [--scale large] [--repeat 2]

Generates the scale's event files, then alternates, each into a fresh folder:

- **ours**: what `crm-analytics run` does on a Spark warehouse before Spark starts: the event
  loader (`load_events`: validation, dedup, rejects, manifest) into a fresh staging DuckDB
  file (the valid events as Parquet parts beside it), then `export_raw` of its `raw` event
  tables as Parquet version folders of a lake (the events' version links the parts);
- **bare**: DuckDB's `read_json` of the same files straight into one Parquet file with
  `COPY ... TO (FORMAT parquet, COMPRESSION zstd)`: no validation, no dedup, no manifest.

Prints each part's seconds, MB/s of JSON (uncompressed) and the ratio bare / ours (goal: at
least 0.5). Then a **daily load**: one more day's folder loaded into the staging file and the
event tables republished (a new version of each: the day's load written, the earlier load's
files linked), against the bare copy of that day's files alone. The catalog's
repointing (Spark) is not timed here: it costs a Spark session and two statements per table,
whatever the volume (docs/spark.md). Not a test.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import duckdb

# benchmarks/ is on sys.path when a benchmark runs as a script
from bench_events import json_megabytes

from crm_core.urls import WarehouseTarget
from crm_demo.generator import SCALES, build_events, build_tables, write_event_files
from ingestion.events.files import TABLES, load_events
from ingestion.spark_lake import export_raw
from ingestion.warehouse import open_warehouse

END = date(2026, 11, 1)


def ours(events: Path, staging: Path, lake: Path, as_of: date) -> tuple[float, float]:
    """(load seconds, export seconds): the loader into `staging`, then the lake's Parquet."""
    # the staging file of a Spark warehouse, as a run opens it (valid events as Parquet parts)
    wh = open_warehouse(WarehouseTarget(kind="spark", spark_method="session",
                                        duckdb_path=staging))
    started = time.perf_counter()
    report = load_events(events, wh, as_of=as_of)
    wh.close()  # the staging file's checkpoint is part of the load
    loaded = time.perf_counter() - started
    assert report.events > 0 or report.files == 0
    started = time.perf_counter()
    published = export_raw(staging, str(lake), tables=list(TABLES))
    exported = time.perf_counter() - started
    assert {p.name for p in published} == set(TABLES)
    return loaded, exported


def bare(files: list[Path], out: Path) -> float:
    """DuckDB's own reader and Parquet writer, nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    started = time.perf_counter()
    con.execute("copy (select * from read_json(?, format = 'newline_delimited', "
                "ignore_errors = true, union_by_name = true)) to "
                f"'{out / 'events.parquet'}' (format parquet, compression zstd)",
                [[str(p) for p in files]])
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        events = work / "events"
        tables = build_tables(args.scale, 90, 42, END)
        write_event_files(build_events(tables, args.scale, 42, END), events)
        last_day = max(p for p in events.iterdir() if p.is_dir())
        # the first load covers every day but the last; the daily load adds the last one
        held_back = work / "held_back" / last_day.name
        held_back.parent.mkdir()
        shutil.move(last_day, held_back)
        first_files = sorted(events.rglob("*.jsonl*"))
        day_files = sorted(held_back.rglob("*.jsonl*"))
        mb, day_mb = json_megabytes(events), json_megabytes(held_back)
        print(f"JSON: {mb:,.1f} MB in {len(first_files)} files; the daily load "
              f"{day_mb:,.1f} MB in {len(day_files)} files")

        rows: dict[str, list[float]] = {k: [] for k in
                                        ("load", "export", "bare", "d_load", "d_export", "d_bare")}
        for i in range(args.repeat):
            run = work / f"run{i}"
            run.mkdir()
            load_s, export_s = ours(events, run / "staging.duckdb", run / "lake",
                                    END - timedelta(days=1))
            rows["load"].append(load_s)
            rows["export"].append(export_s)
            rows["bare"].append(bare(first_files, run / "bare"))
            shutil.move(held_back, events / last_day.name)
            d_load, d_export = ours(events, run / "staging.duckdb", run / "lake", END)
            rows["d_load"].append(d_load)
            rows["d_export"].append(d_export)
            rows["d_bare"].append(bare(sorted((events / last_day.name).rglob("*.jsonl*")),
                                       run / "bare_day"))
            shutil.move(events / last_day.name, held_back)
            shutil.rmtree(run)

        med = {k: statistics.median(v) for k, v in rows.items()}

        def line(label: str, seconds: float, size: float) -> str:
            return f"{label:<34} median {seconds:7.2f} s  {size / seconds:7.1f} MB/s"

        print(line("ours: load_events", med["load"], mb))
        print(line("ours: export_raw (Parquet)", med["export"], mb))
        print(line("ours: both", med["load"] + med["export"], mb))
        print(line("bare: read_json -> COPY parquet", med["bare"], mb))
        print(f"ratio (throughput ours / bare): "
              f"{med['bare'] / (med['load'] + med['export']):.2f}  (goal >= 0.5); runs: "
              + "; ".join(f"{b / (lo + e):.2f}" for lo, e, b in
                          zip(rows["load"], rows["export"], rows["bare"], strict=True)))
        print(line("daily: load_events of one day", med["d_load"], day_mb))
        print(f"{'daily: export_raw (the new load)':<34} median {med['d_export']:7.2f} s")
        print(line("daily: bare copy of that day", med["d_bare"], day_mb))
        print(f"daily ratio (bare / ours): "
              f"{med['d_bare'] / (med['d_load'] + med['d_export']):.2f}; runs: "
              + "; ".join(f"{b / (lo + e):.2f}" for lo, e, b in
                          zip(rows["d_load"], rows["d_export"], rows["d_bare"], strict=True)))


if __name__ == "__main__":
    main()
