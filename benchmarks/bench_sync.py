"""ERP sync throughput against the wire limit, incremental cost, and peak memory. Not a test.

    .venv/bin/python benchmarks/bench_sync.py --source-db crm_large [--medium-db crm_medium]

Needs a PostgreSQL source already filled by `crm-analytics generate --scale large` (and,
for the memory comparison, one at `--scale medium`). Every measurement runs in a fresh child
process of this script, one after the other on the same tables, so each child's peak RSS is its
own; the ratios compare figures from the same run:

- wire: `COPY (SELECT * FROM t) TO STDOUT (FORMAT binary)` of every ERP table, read to nowhere
  (psycopg, chunk by chunk) — the fastest the source can hand the rows over;
- full sync into a fresh DuckDB file, then into a fresh PostgreSQL database (`sync_erp`);
- incremental sync of each warehouse after 1% of deals and leads changed in the source
  (stamped over the hour after the newest stamp; this WRITES to the source database: use a
  scratch one);
- floor: the source statements that incremental sync cannot skip, run bare, and the
  PostgreSQL warehouse's merge `delete` (rolled back) — what the sync costs before any work of
  its own (BENCHMARKS.md discusses how far cheaper statements could take it).

Prints one JSON line per measurement and a summary.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

import psycopg

PG = "host=127.0.0.1 port=5432 user=postgres"
TABLES = ("businesses", "branches", "customer_groups", "contacts", "contact_accounts",
          "crm_leads", "crm_pipeline_stages", "crm_deals", "crm_campaigns",
          "crm_campaign_performance")


def source_url(db: str) -> str:
    return f"postgresql+psycopg://postgres@127.0.0.1:5432/{db}"


def child_wire(db: str) -> dict:
    rows = 0
    started = time.monotonic()
    with psycopg.connect(f"{PG} dbname={db}") as conn:
        for table in TABLES:
            with conn.cursor() as cur:
                with cur.copy(f'copy (select * from "{table}") to stdout (format binary)') as cp:
                    for _chunk in cp:
                        pass
                rows += cur.rowcount
    return {"rows": rows, "seconds": time.monotonic() - started}


def child_sync(db: str, warehouse_url: str) -> dict:
    # Module imports are process start-up, not sync time. pandas is among them: DuckDB's
    # Python binding imports it at the first query with a bound parameter (~0.25 s here).
    import pandas  # noqa: F401

    from crm_core.urls import parse_warehouse_url
    from ingestion.erp.sync import sync_erp
    from ingestion.warehouse import open_warehouse

    wh = open_warehouse(parse_warehouse_url(warehouse_url, Path(".")))
    try:
        started = time.monotonic()
        report = sync_erp(source_url(db), "public", wh)
        seconds = time.monotonic() - started
    finally:
        wh.close()
    return {"rows": sum(report.rows_read.values()), "seconds": seconds,
            "kinds": sorted(set(report.load_kind.values())),
            "table_seconds": {t: round(s, 2) for t, s in report.table_seconds.items()}}


def run_child(*args: str) -> dict:
    proc = subprocess.run([sys.executable, __file__, "--child", *args], capture_output=True,
                          text=True, check=False)
    if proc.returncode != 0:
        raise SystemExit(f"child {args} failed: {proc.stderr.strip()[-2000:]}")
    return json.loads(proc.stdout.strip().splitlines()[-1])


def touch_one_percent(db: str, remainder: int) -> tuple[int, dt.datetime]:
    """1% of deals and leads change (ids ≡ `remainder` mod 100): amount/value, and an
    `updated_at` spread over the hour after the newest stamp, as if the ERP changed them
    throughout the hour between two hourly syncs. (Not one instant for all: the next sync's
    cursor would then equal every one of these stamps and its overlap window would read this
    batch again — 2% instead of 1%. Not `now()` either: the generator stamps rows up to the
    end of its last day, so `now()` may lie behind the cursor.) Returns the rows changed and
    the newest stamp before the change (the cursor of a sync that ran just before it)."""
    rows = 0
    with psycopg.connect(f"{PG} dbname={db}", autocommit=True) as conn:
        before = max(conn.execute(f"select max(updated_at) from {t}").fetchone()[0]
                     for t in ("crm_deals", "crm_leads"))
        for table, column in (("crm_deals", "amount"), ("crm_leads", "value")):
            rows += conn.execute(
                f"update {table} set {column} = {column} + 1, updated_at = %s + "
                "(1 + (id / 100) %% 3600) * interval '1 second' where id %% 100 = %s",
                [before, remainder]).rowcount
            conn.execute(f"vacuum analyze {table}")
    return rows, before


def child_floor(db: str, cursor: str, wh_db: str, remainder: str) -> dict:
    """The statements an incremental sync cannot skip, bare (psycopg, results read to nowhere,
    no warehouse work), in one REPEATABLE READ transaction as the sync reads: the cursor reads
    of deals and leads, the xmin reads of the two tables without `updated_at` (whole-table
    scans whatever they find), the key totals of the four big tables (the hard-delete check),
    and — separately, on the PostgreSQL warehouse, rolled back — the merge's `delete` of the
    changed deals and leads."""
    from ingestion.erp.sync import DEFAULT_OVERLAP

    since = dt.datetime.fromisoformat(cursor) - DEFAULT_OVERLAP
    parts: dict[str, float] = {}

    def timed(name: str, run) -> None:
        started = time.monotonic()
        run()
        parts[name] = round(time.monotonic() - started, 3)

    def to_nowhere(cur: psycopg.Cursor, query: str, *params: object) -> None:
        with cur.copy(f"copy ({query}) to stdout (format binary)", params) as cp:
            for _chunk in cp:
                pass

    with psycopg.connect(f"{PG} dbname={db}") as conn:
        conn.isolation_level = psycopg.IsolationLevel.REPEATABLE_READ
        conn.read_only = True
        cur = conn.cursor()
        xmin = cur.execute("select pg_snapshot_xmin(pg_current_snapshot())::text::bigint"
                           ).fetchone()[0] % 2**32
        for table in ("crm_deals", "crm_leads"):
            timed(f"cursor_{table}", lambda t=table: to_nowhere(
                cur, f"select * from {t} where updated_at >= %s or updated_at is null", since))
        for table in ("contacts", "contact_accounts"):
            timed(f"xmin_{table}", lambda t=table: to_nowhere(
                cur, f"select * from {t} where age(xmin) >= 0 and "
                f"age(xmin) <= age('{xmin}'::xid)"))
        for table in ("contacts", "contact_accounts", "crm_leads", "crm_deals"):
            timed(f"totals_{table}", lambda t=table: cur.execute(
                f"select count(*), sum(id)::text, sum(id::bigint * id)::text from {t}"
            ).fetchone())
    source = sum(parts.values())
    with psycopg.connect(f"{PG} dbname={wh_db}") as conn:
        for table in ("crm_deals", "crm_leads"):
            conn.execute(f"create temp table d as select id from raw.{table} "
                         f"where id % 100 = {int(remainder)}")
            timed(f"pg_warehouse_delete_{table}", lambda t=table: conn.execute(
                f"delete from raw.{t} r where exists (select 1 from d where d.id = r.id)"))
            conn.rollback()
    return {"seconds": round(source, 3),
            "pg_warehouse_seconds": round(sum(parts.values()) - source, 3), "parts": parts}


def measure(db: str, work: Path, label: str, incremental: bool) -> dict:
    results: dict[str, dict] = {}

    def record(step: str, figures: dict) -> None:
        results[step] = figures
        print(json.dumps({"scale": label, "step": step, **figures}), flush=True)

    record("wire", run_child("wire", db))
    wh_db = f"bench_sync_wh_{uuid.uuid4().hex[:8]}"
    with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
        conn.execute(f'create database "{wh_db}"')
    try:
        targets = {"duckdb": f"duckdb:///{work}/{label}.duckdb",
                   "postgres": f"postgresql://postgres@127.0.0.1:5432/{wh_db}"}
        for kind, url in targets.items():
            record(f"full_{kind}", run_child("sync", db, url))
        if incremental:
            # The first incremental sync after a full one re-reads the overlap window before
            # the generated data's newest stamp, where the generator crowds many rows; the
            # second one is the steady state that is measured.
            record("changed_rows_warmup", {"rows": touch_one_percent(db, 1)[0]})
            for kind, url in targets.items():
                record(f"first_incremental_{kind}", run_child("sync", db, url))
            changed, cursor = touch_one_percent(db, 2)
            record("changed_rows", {"rows": changed})
            for kind, url in targets.items():
                record(f"incremental_{kind}", run_child("sync", db, url))
            record("floor", run_child("floor", db, cursor.isoformat(), wh_db, "2"))
            record("wire_again", run_child("wire", db))
    finally:
        with psycopg.connect(f"{PG} dbname=postgres", autocommit=True) as conn:
            conn.execute(f'drop database if exists "{wh_db}" with (force)')
    return results


def summary(label: str, r: dict) -> None:
    # The faster of the wire runs before and after the syncs: the stricter limit.
    wire_seconds = min(r["wire"]["seconds"], r.get("wire_again", r["wire"])["seconds"])
    r["wire"]["seconds"] = wire_seconds
    wire = r["wire"]["rows"] / wire_seconds
    print(f"\n[{label}] wire limit: {r['wire']['rows']:,} rows in {r['wire']['seconds']:.2f}s "
          f"= {wire:,.0f} rows/s (peak RSS {r['wire']['max_rss_mb']:.0f} MB)")
    for kind in ("duckdb", "postgres"):
        full = r[f"full_{kind}"]
        rate = full["rows"] / full["seconds"]
        print(f"[{label}] full sync into {kind}: {full['seconds']:.2f}s = {rate:,.0f} rows/s, "
              f"ratio to wire {rate / wire:.2f}, peak RSS {full['max_rss_mb']:.0f} MB")
        inc = r.get(f"incremental_{kind}")
        if inc:
            print(f"[{label}] incremental into {kind} after {r['changed_rows']['rows']:,} "
                  f"changed rows: {inc['seconds']:.2f}s = {inc['seconds'] / full['seconds']:.1%}"
                  f" of the full sync ({inc['rows']:,} rows read), peak RSS "
                  f"{inc['max_rss_mb']:.0f} MB")
    floor = r.get("floor")
    if floor:
        source, merge = floor["seconds"], floor["pg_warehouse_seconds"]
        print(f"[{label}] floor: the source statements an incremental sync cannot skip, bare: "
              f"{source:.2f}s = {source / r['full_duckdb']['seconds']:.1%} of the full sync "
              f"into DuckDB; with the PostgreSQL warehouse's merge delete ({merge:.2f}s) "
              f"{(source + merge) / r['full_postgres']['seconds']:.1%} of the full sync into "
              f"PostgreSQL; {floor['parts']}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--source-db", help="PostgreSQL database at scale large")
    parser.add_argument("--medium-db", help="PostgreSQL database at scale medium (memory)")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        what, *rest = args.child
        children = {"wire": child_wire, "sync": child_sync, "floor": child_floor}
        figures = children[what](*rest)
        figures["max_rss_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(json.dumps(figures))
        return
    with tempfile.TemporaryDirectory(prefix="bench_sync_") as tmp:
        work = Path(tmp)
        runs = {}
        if args.medium_db:
            runs["medium"] = measure(args.medium_db, work, "medium", incremental=False)
        if args.source_db:
            runs["large"] = measure(args.source_db, work, "large", incremental=True)
        for label, r in runs.items():
            summary(label, r)


if __name__ == "__main__":
    main()
