"""CRM_SYNC_MODE=cdc against the wire limit and against a full sync. Not a test.

    .venv/bin/python benchmarks/bench_cdc.py --scale medium   # or large

Starts its own PostgreSQL cluster with `wal_level=logical` and `pg_stat_statements` (the
shared server keeps its settings; `tests/helpers/logical_pg.py`), writes the generated ERP
tables into it (no event files), and uses the shared server (5432) for the PostgreSQL
warehouse. Every measurement runs in a fresh child process, one after the other, and the
ratios compare figures of the same run:

- wire: every ERP table as binary COPY to nowhere (`bench_sync.child_wire`), before and after
  the syncs — the faster is the limit;
- CDC full sync (first sync: creates its slot, copies every table) into a fresh DuckDB file,
  then into a fresh PostgreSQL database — one slot per warehouse;
- the read-only mode's full sync into the same two, for comparison;
- 1% of deals and leads change — 0.8% updated, 0.1% deleted, 0.1% inserted — in 100
  transactions; a CDC sync of each warehouse follows (warm-up); then another 1% and the CDC
  sync that is reported, with the source's statements (`pg_stat_statements`) and its table
  statistics (rows returned, sequential scans) around it;
- a CDC sync with nothing changed: rows the ERP tables returned (0 expected);
- ~170–190 MB of WAL written outside the publication (an ERP busy elsewhere), then two CDC syncs
  into DuckDB: their seconds, the WAL each peek decodes and what the slot keeps after them.

Prints one JSON line per measurement and a summary. `--profile DIR` also writes a cProfile
of each reported incremental sync (`DIR/cdc_incremental_<warehouse>.pstats`; profiled syncs
run slower, so take their times from a run without it).
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
sys.path.insert(0, str(Path(__file__).resolve().parent))

import bench_sync  # noqa: E402
from bench_sync import TABLES, child_wire  # noqa: E402

WAREHOUSE_PG = "host=127.0.0.1 port=5432 user=postgres"
DB = "bench_cdc"
#: Set (to a .pstats path) for the child whose sync is profiled.
PROFILE_ENV = "CRM_BENCH_CDC_PROFILE"


def child_sync(port: str, mode: str, warehouse_url: str, slot: str) -> dict:
    import pandas  # noqa: F401  (process start-up, not sync time: see bench_sync)

    from crm_core.urls import parse_warehouse_url
    from ingestion.erp.cdc_sync import sync_cdc
    from ingestion.erp.sync import sync_erp
    from ingestion.warehouse import open_warehouse

    source = f"postgresql+psycopg://postgres@127.0.0.1:{port}/{DB}"
    profile_to = os.environ.pop(PROFILE_ENV, None)
    profiler = None
    if profile_to:
        import cProfile

        profiler = cProfile.Profile()
        profiler.enable()
    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        started = time.monotonic()
        report = (sync_cdc(source, "public", wh, slot, 15 * 60_000) if mode == "cdc"
                  else sync_erp(source, "public", wh))
        seconds = time.monotonic() - started
    finally:
        closing = time.monotonic()
        wh.close()
        close_seconds = time.monotonic() - closing
        if profiler is not None:
            profiler.disable()
            profiler.dump_stats(profile_to)
    # `seconds` ends at the sync's commit; closing the warehouse after it (DuckDB may
    # checkpoint its WAL into the file then) is reported beside it.
    return {"rows": sum(report.rows_read.values()), "seconds": seconds,
            "close_seconds": round(close_seconds, 3),
            "changes_applied": sum(report.changes_applied.values()),
            "kinds": sorted(set(report.load_kind.values())), "warnings": report.warnings,
            "table_seconds": {t: round(s, 3) for t, s in report.table_seconds.items()}}


def run_child(*args: str) -> dict:
    return bench_sync.run_child(*args, script=__file__)


def change_one_percent(conninfo: str, remainder: int) -> int:
    """1% of deals and leads: ids ≡ remainder (mod 100) — of those, ids ≡ remainder (mod 1000)
    are deleted, the rest updated — plus as many new rows as deleted, in 100 transactions."""
    rows = 0
    with psycopg.connect(conninfo, autocommit=True) as conn:
        for table, column in (("crm_deals", "amount"), ("crm_leads", "value")):
            top = conn.execute(f"select max(id) from {table}").fetchone()[0]
            for part in range(50):
                with conn.transaction():
                    where = f"id % 100 = {remainder} and id % 5000 / 100 = {part}"
                    rows += conn.execute(
                        f"delete from {table} where {where} and id % 1000 = {remainder}"
                    ).rowcount
                    rows += conn.execute(
                        f"update {table} set {column} = {column} + 1, updated_at = now() "
                        f"where {where}").rowcount
            cols = [r[0] for r in conn.execute(
                "select column_name from information_schema.columns where table_name = %s "
                "and column_name <> 'id' order by ordinal_position", [table]).fetchall()]
            names = ", ".join(f'"{c}"' for c in cols)
            inserted = conn.execute(
                f"insert into {table} (id, {names}) select id + {top}, {names} from {table} "
                f"where id % 1000 = {(remainder + 5) % 1000} and id <= {top}"
            ).rowcount
            rows += inserted
    return rows


def source_counters(conninfo: str) -> dict:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        conn.execute("select pg_stat_clear_snapshot()")
        rows = conn.execute(
            "select relname, seq_scan, seq_tup_read, coalesce(idx_scan, 0), "
            "coalesce(idx_tup_fetch, 0) from pg_stat_user_tables where relname = any(%s)",
            [list(TABLES)]).fetchall()
    return {r[0]: r[1:] for r in rows}


def counter_delta(before: dict, after: dict) -> dict:
    delta = {t: [a - b for a, b in zip(after[t], before[t], strict=True)] for t in after}
    return {"rows_returned": sum(d[1] + d[3] for d in delta.values()),
            "seq_scans": {t: d[0] for t, d in delta.items() if d[0]},
            "seq_rows": {t: d[1] for t, d in delta.items() if d[1]}}


def statements(conninfo: str) -> list[dict]:
    with psycopg.connect(conninfo, autocommit=True) as conn:
        rows = conn.execute(
            "select regexp_replace(query, '\\s+', ' ', 'g'), calls, rows, "
            "round(total_exec_time::numeric, 2), shared_blks_hit + shared_blks_read "
            "from pg_stat_statements where dbid = (select oid from pg_database "
            "where datname = %s) and query not like '%%pg_stat_statements%%' "
            "order by total_exec_time desc", [DB]).fetchall()
    return [{"query": q[:220], "calls": c, "rows": r, "ms": float(ms), "blocks": b}
            for q, c, r, ms, b in rows]


def slot_spans(server: str) -> dict:
    """Per slot, the WAL its next peek decodes (from `restart_lsn`) and the part of it not yet
    confirmed (from `confirmed_flush_lsn`), in bytes."""
    with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
        rows = conn.execute(
            "select slot_name, pg_wal_lsn_diff(pg_current_wal_lsn(), restart_lsn)::bigint, "
            "pg_wal_lsn_diff(pg_current_wal_lsn(), confirmed_flush_lsn)::bigint "
            "from pg_replication_slots").fetchall()
    return {name: {"decoded_bytes": span, "unconfirmed_bytes": unconfirmed}
            for name, span, unconfirmed in rows}


def measure(port: int, scale: str, work: Path, profile: Path | None = None) -> dict:
    results: dict = {}
    source = f"host=127.0.0.1 port={port} user=postgres dbname={DB}"
    server = f"host=127.0.0.1 port={port} user=postgres"

    def record(step: str, figures: dict) -> None:
        results[step] = figures
        print(json.dumps({"scale": scale, "step": step, **figures}), flush=True)

    record("wire", run_child("wire", str(port)))
    wh_dbs = {kind: f"bench_cdc_{kind}_{uuid.uuid4().hex[:8]}" for kind in ("cdc", "ro")}
    with psycopg.connect(f"{WAREHOUSE_PG} dbname=postgres", autocommit=True) as conn:
        for name in wh_dbs.values():
            conn.execute(f'create database "{name}"')
    try:
        targets = {
            "duckdb": (f"duckdb:///{work}/cdc.duckdb", f"duckdb:///{work}/ro.duckdb"),
            "postgres": (f"postgresql://postgres@127.0.0.1:5432/{wh_dbs['cdc']}",
                         f"postgresql://postgres@127.0.0.1:5432/{wh_dbs['ro']}"),
        }
        for kind, (cdc_url, ro_url) in targets.items():
            record(f"cdc_full_{kind}", run_child("sync", str(port), "cdc", cdc_url,
                                                 f"bench_{kind}"))
            record(f"readonly_full_{kind}", run_child("sync", str(port), "readonly", ro_url,
                                                      "-"))
        record("changed_rows_warmup", {"rows": change_one_percent(source, 1)})
        for kind, (cdc_url, _) in targets.items():
            record(f"cdc_warmup_{kind}", run_child("sync", str(port), "cdc", cdc_url,
                                                   f"bench_{kind}"))
        record("changed_rows", {"rows": change_one_percent(source, 2)})
        for kind, (cdc_url, _) in targets.items():
            with psycopg.connect(source, autocommit=True) as conn:
                conn.execute("select pg_stat_statements_reset()")
            before = source_counters(source)
            spans = slot_spans(server)
            if profile is not None:
                os.environ[PROFILE_ENV] = str(profile / f"cdc_incremental_{kind}.pstats")
            try:
                figures = run_child("sync", str(port), "cdc", cdc_url, f"bench_{kind}")
            finally:
                os.environ.pop(PROFILE_ENV, None)
            time.sleep(1.0)  # an ended session's statistics arrive a moment later
            figures["source"] = counter_delta(before, source_counters(source))
            figures["statements"] = statements(source)
            figures["slot"] = spans[f"bench_{kind}"]
            record(f"cdc_incremental_{kind}", figures)
        before = source_counters(source)
        figures = run_child("sync", str(port), "cdc", targets["duckdb"][0], "bench_duckdb")
        time.sleep(1.0)
        figures["source"] = counter_delta(before, source_counters(source))
        record("cdc_nothing_changed_duckdb", figures)
        # The ERP busy outside the CRM tables: ~170–190 MB of WAL no published table is in. The
        # checkpoint stands in for the record of running transactions a busy server writes
        # every 15 s (where a slot's restart point can move to).
        with psycopg.connect(source, autocommit=True) as conn:
            conn.execute("create table ledger_entries (id bigint primary key, memo text)")
            conn.execute("insert into ledger_entries select g, repeat('x', 200) "
                         "from generate_series(1, 500000) g")
            conn.execute("checkpoint")
        for n in (1, 2):
            spans = slot_spans(server)
            figures = run_child("sync", str(port), "cdc", targets["duckdb"][0], "bench_duckdb")
            figures["slot"] = spans["bench_duckdb"]
            record(f"cdc_other_tables_{n}_duckdb", figures)
        record("slot_after_other_tables", slot_spans(server)["bench_duckdb"])
        record("wire_again", run_child("wire", str(port)))
    finally:
        with psycopg.connect(f"{WAREHOUSE_PG} dbname=postgres", autocommit=True) as conn:
            for name in wh_dbs.values():
                conn.execute(f'drop database if exists "{name}" with (force)')
        with psycopg.connect(f"{server} dbname=postgres", autocommit=True) as conn:
            conn.execute("select pg_drop_replication_slot(slot_name) from pg_replication_slots")
    return results


def summary(scale: str, r: dict) -> None:
    wire_s = min(r["wire"]["seconds"], r["wire_again"]["seconds"])
    wire = r["wire"]["rows"] / wire_s
    print(f"\n[{scale}] wire limit: {r['wire']['rows']:,} rows in {wire_s:.2f}s "
          f"= {wire:,.0f} rows/s")
    for kind in ("duckdb", "postgres"):
        for mode in ("cdc", "readonly"):
            full = r[f"{mode}_full_{kind}"]
            rate = full["rows"] / full["seconds"]
            print(f"[{scale}] {mode} full sync into {kind}: {full['seconds']:.2f}s, ratio to "
                  f"wire {rate / wire:.2f}")
        inc, full = r[f"cdc_incremental_{kind}"], r[f"cdc_full_{kind}"]
        print(f"[{scale}] CDC incremental into {kind} after {r['changed_rows']['rows']:,} "
              f"changed rows: {inc['seconds']:.2f}s = {inc['seconds'] / full['seconds']:.1%} "
              f"of the CDC full sync; {inc['changes_applied']:,} changed rows applied, "
              f"{inc['rows']:,} rows read; table seconds {inc['table_seconds']}; source: "
              f"{inc['source']}")
        for s in inc["statements"][:12]:
            print(f"    {s['ms']:>9.2f} ms {s['calls']:>4} calls {s['rows']:>7} rows "
                  f"{s['blocks']:>7} blocks  {s['query'][:150]}")
    none = r["cdc_nothing_changed_duckdb"]
    print(f"[{scale}] CDC sync with nothing changed (DuckDB): {none['seconds']:.2f}s, rows "
          f"read {none['rows']}, source tables returned {none['source']['rows_returned']} rows")
    for n in (1, 2):
        other = r[f"cdc_other_tables_{n}_duckdb"]
        print(f"[{scale}] CDC sync {n} after ~170–190 MB of WAL outside the publication (DuckDB): "
              f"{other['seconds']:.2f}s, the peek decodes "
              f"{other['slot']['decoded_bytes'] / 1e6:.1f} MB")
    print(f"[{scale}] then the slot keeps "
          f"{r['slot_after_other_tables']['decoded_bytes'] / 1e6:.1f} MB of WAL")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scale", choices=["medium", "large"], default="medium")
    parser.add_argument("--profile", type=Path, help="write cProfile stats of the "
                        "incremental syncs into this folder")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        if what == "wire":
            figures = child_wire(DB, f"host=127.0.0.1 port={rest[0]} user=postgres")
        else:
            figures = child_sync(*rest)
        figures["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    from crm_demo.generator import build_tables, write_tables
    from tests.helpers.logical_pg import logical_cluster

    conf = "shared_preload_libraries = 'pg_stat_statements'\nshared_buffers = 512MB\n"
    with logical_cluster(conf) as cluster, \
            tempfile.TemporaryDirectory(prefix="bench_cdc_") as tmp:
        cluster.create_database(DB)
        with psycopg.connect(cluster.conninfo(DB), autocommit=True) as conn:
            conn.execute("create extension pg_stat_statements")
        import datetime as dt

        started = time.monotonic()
        tables = build_tables(args.scale, 90, 42, dt.date(2026, 3, 14))
        write_tables(cluster.url(DB), "public", tables)
        del tables
        with psycopg.connect(cluster.conninfo(DB), autocommit=True) as conn:
            conn.execute("vacuum analyze")
        print(f"generated {args.scale} in {time.monotonic() - started:.0f}s", flush=True)
        if args.profile:
            args.profile.mkdir(parents=True, exist_ok=True)
        results = measure(cluster.port, args.scale, Path(tmp), args.profile)
        summary(args.scale, results)


if __name__ == "__main__":
    main()
