"""The ERP tables into a Spark warehouse's lake, against DuckDB's own PostgreSQL reader writing
the same tables to Parquet, in one process. Not a test.

    .venv/bin/python benchmarks/bench_lake_erp.py [--scale large] [--repeat 2]

Writes the scale's ERP tables into a fresh database on the shared PostgreSQL server (5432),
then alternates, each into a fresh folder:

- **ours**: what `crm-analytics run` does with the ERP on a Spark warehouse before Spark
  starts: the ERP sync (`sync_erp`, the read-only mode's first, full copy) into a fresh
  staging DuckDB file, then `export_raw` of the ERP tables as Parquet version folders;
- **bare**: DuckDB's postgres extension attached to the same database, each table written
  with `COPY (select * from …) TO … (FORMAT parquet, COMPRESSION zstd)`: no sync state, no
  column checks, no version folders.

A run republishes every `raw` table to the lake (`orchestration.spark_steps.publish_lake_raw`),
and an ERP table has no load column to publish by, so its whole table is rewritten each day:
the export alone, timed apart, is what a day costs on top of the incremental sync (whose own
figures are `bench_sync.py`'s). The catalog's repointing (Spark) is not timed here.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path

import duckdb
import psycopg

# benchmarks/ is on sys.path when a benchmark runs as a script
from bench_sync import PG, TABLES, child_sync, source_url

from crm_demo.generator import SCALES, build_tables, write_tables
from ingestion.erp.postgres_scan import load_postgres_extension
from ingestion.spark_lake import export_raw


def ours(db: str, staging: Path, lake: Path) -> tuple[float, float, int]:
    """(sync seconds, export seconds, rows): the ERP sync into `staging` (timed as
    `bench_sync.py` times it), then the lake."""
    synced = child_sync(db, f"duckdb:///{staging}")
    return synced["seconds"], export(staging, lake), synced["rows"]


def export(staging: Path, lake: Path) -> float:
    """Seconds to publish the ERP tables from the staging file, each written whole: the first
    export, and again each day after it."""
    started = time.perf_counter()
    published = export_raw(staging, str(lake), tables=list(TABLES))
    elapsed = time.perf_counter() - started
    assert {p.name for p in published} == set(TABLES)
    return elapsed


def bare(db: str, out: Path) -> float:
    """DuckDB's own PostgreSQL reader and Parquet writer, nothing else."""
    out.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect()
    load_postgres_extension(con)
    started = time.perf_counter()
    con.execute(f"attach '{PG} dbname={db}' as src (type postgres, read_only)")
    for table in TABLES:
        con.execute(f"copy (select * from src.public.{table}) to '{out / table}.parquet' "
                    "(format parquet, compression zstd)")
    elapsed = time.perf_counter() - started
    con.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=sorted(SCALES), default="large")
    parser.add_argument("--repeat", type=int, default=2)
    args = parser.parse_args()
    import pandas  # noqa: F401  (DuckDB's first bound query imports it: start-up, not sync)

    db = f"bench_lake_erp_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'create database "{db}"')
    try:
        write_tables(source_url(db), "public",
                     build_tables(args.scale, 90, 42, dt.date(2026, 11, 1)))
        with psycopg.connect(f"{PG} dbname={db}", autocommit=True) as conn:
            conn.execute("vacuum analyze")
        times: dict[str, list[float]] = {k: [] for k in ("sync", "export", "bare", "again")}
        rows = 0
        with tempfile.TemporaryDirectory(prefix="bench_lake_erp_") as tmp:
            for i in range(args.repeat):
                run = Path(tmp) / f"run{i}"
                run.mkdir()
                sync_s, export_s, rows = ours(db, run / "staging.duckdb", run / "lake")
                times["sync"].append(sync_s)
                times["export"].append(export_s)
                times["bare"].append(bare(db, run / "bare"))
                times["again"].append(export(run / "staging.duckdb", run / "lake"))
                shutil.rmtree(run)
    finally:
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'drop database if exists "{db}" with (force)')

    med = {k: statistics.median(v) for k, v in times.items()}

    def line(label: str, seconds: float) -> str:
        return f"{label:<40} median {seconds:7.2f} s  {rows / seconds:12,.0f} rows/s"

    print(f"{args.scale}: {rows:,} ERP rows in {len(TABLES)} tables")
    print(line("ours: sync_erp into the staging file", med["sync"]))
    print(line("ours: export_raw of the ERP tables", med["export"]))
    print(line("ours: both", med["sync"] + med["export"]))
    print(line("bare: postgres attach -> COPY parquet", med["bare"]))
    print(f"ratio (throughput ours / bare): {med['bare'] / (med['sync'] + med['export']):.2f}"
          "  (goal >= 0.5); runs: "
          + "; ".join(f"{b / (s + e):.2f}" for s, e, b in
                      zip(times["sync"], times["export"], times["bare"], strict=True)))
    print(line("daily: export_raw of the ERP tables again", med["again"]))


if __name__ == "__main__":
    main()
