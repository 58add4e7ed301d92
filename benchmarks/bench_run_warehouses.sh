#!/usr/bin/env bash
# `crm-analytics run` on the same generated inputs into each warehouse: DuckDB, PostgreSQL and
# Spark in-process (`spark+session://`, local[2], `raw` published to a lake folder). Each gets
# a first run (full load and build) and the same day's run again (nothing new to load; every
# model is still built and tested).
# Usage: benchmarks/bench_run_warehouses.sh [scale] [warehouses...]   (default: small, all three)
# Needs the [spark] extra and Java for Spark, and the PostgreSQL test server for PostgreSQL.
set -euo pipefail
ROOT="$(cd "$(dirname "$0")/.." && pwd)"
SCALE="${1:-small}"
shift || true
WAREHOUSES=("$@")
[ ${#WAREHOUSES[@]} -gt 0 ] || WAREHOUSES=(duckdb postgres spark)
WORK="$(mktemp -d)"
PG_DB="crm_bench_run_$$"
cleanup() {
  cd /  # psql cannot start in a deleted directory
  rm -rf "$WORK"
  psql -h 127.0.0.1 -U postgres -qAtc "drop database if exists $PG_DB with (force)" >/dev/null 2>&1 || true
}
trap cleanup EXIT
cd "$WORK"
CLI="$ROOT/.venv/bin/crm-analytics"
DAY=2026-11-01
export CRM_SOURCE_URL="sqlite:///$WORK/erp.sqlite" CRM_EVENTS_PATH="$WORK/events"

"$CLI" generate --scale "$SCALE" --end-date "$DAY" --quiet
echo "scale $SCALE; load average $(cut -d' ' -f1-3 /proc/loadavg)"

for wh in "${WAREHOUSES[@]}"; do
  case "$wh" in
    duckdb) url="duckdb:///$WORK/duck/wh.duckdb"; mkdir -p "$WORK/duck" ;;
    postgres)
      psql -h 127.0.0.1 -U postgres -qAtc "create database $PG_DB" >/dev/null
      url="postgresql://postgres@127.0.0.1:5432/$PG_DB" ;;
    spark)
      url="spark+session://"
      export CRM_LAKE_PATH="$WORK/spark/lake" CRM_SPARK_STAGING_PATH="$WORK/spark/staging.duckdb"
      mkdir -p "$WORK/spark" ;;
    *) echo "error: unknown warehouse $wh (duckdb, postgres or spark)"; exit 2 ;;
  esac
  export CRM_WAREHOUSE_URL="$url"
  for which in first again; do
    start=$(date +%s.%N)
    "$CLI" run --date "$DAY" --quiet
    end=$(date +%s.%N)
    printf '%-8s %-5s run: %6.1f s   (load average %s)\n' "$wh" "$which" \
      "$(echo "$end - $start" | bc)" "$(cut -d' ' -f1-3 /proc/loadavg)"
  done
done
